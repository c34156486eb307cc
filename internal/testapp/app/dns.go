package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"time"
)

// dnsHandlers let tests look names up and call other machines from inside
// a machine, through the machine's real /etc/resolv.conf:
//
//	/resolve?name=web.internal            {"addrs": [...]} (LookupIPAddr)
//	/resolve?name=_apps.internal&type=txt {"txt": [...]}
//	/fetch?url=http://<id>.vm.web.internal:8080/   the status line and body
func dnsHandlers(mux *http.ServeMux) {
	mux.HandleFunc("/resolve", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		out := map[string][]string{}
		var err error
		if r.URL.Query().Get("type") == "txt" {
			out["txt"], err = net.DefaultResolver.LookupTXT(ctx, name)
		} else {
			var addrs []net.IPAddr
			addrs, err = net.DefaultResolver.LookupIPAddr(ctx, name)
			for _, a := range addrs {
				out["addrs"] = append(out["addrs"], a.IP.String())
			}
			sort.Strings(out["addrs"])
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("lookup %s: %v", name, err), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		fmt.Fprintln(w, resp.Status)
		_, _ = io.Copy(w, resp.Body)
	})
}
