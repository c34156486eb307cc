// Command app is the test machine used by Hangar's tests and benchmarks: a
// small static HTTP server whose behaviour tests can steer.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "exit" {
		code, _ := strconv.Atoi(os.Args[2])
		fmt.Println("exiting with", code)
		os.Exit(code)
	}
	if len(os.Args) > 1 && os.Args[1] == "cat" {
		// For exec tests: stdin to stdout, the other arguments to stderr.
		_, _ = io.Copy(os.Stdout, os.Stdin)
		fmt.Fprint(os.Stderr, strings.Join(os.Args[2:], " "))
		os.Exit(len(os.Args) - 2)
	}
	if len(os.Args) > 2 && os.Args[1] == "sleep" {
		d, _ := time.ParseDuration(os.Args[2])
		time.Sleep(d)
		os.Exit(0)
	}
	if len(os.Args) > 2 && os.Args[1] == "alloc" {
		mb, _ := strconv.Atoi(os.Args[2])
		var keep [][]byte
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MB")
		os.Exit(0)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	var hits atomic.Int64
	start := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		fmt.Fprintf(w, "machine=%s region=%s hits=%d version=%s\n", os.Getenv("FLY_MACHINE_ID"), os.Getenv("FLY_REGION"), n, os.Getenv("APP_VERSION"))
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat("/tmp/unhealthy"); err == nil || os.Getenv("UNHEALTHY") == "1" {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		for _, e := range os.Environ() {
			fmt.Fprintln(w, e)
		}
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		for k, v := range r.Header {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	})
	// /sleep reports how many /sleep requests were in flight on this
	// machine when it began (the proxy's limits are visible in it).
	var sleeping atomic.Int64
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		n := sleeping.Add(1)
		defer sleeping.Add(-1)
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		fmt.Fprintln(w, "slept", d, "machine="+os.Getenv("FLY_MACHINE_ID"), "inflight="+strconv.FormatInt(n, 10))
	})
	mux.HandleFunc("/inflight", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "inflight=%d\n", sleeping.Load())
	})
	mux.HandleFunc("/uptime", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, time.Since(start).Round(time.Millisecond))
	})
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) {
		_ = os.WriteFile("/tmp/unhealthy", nil, 0o644)
		// ?d=3s: healthy again by itself after d.
		if d, err := time.ParseDuration(r.URL.Query().Get("d")); err == nil && d > 0 {
			time.AfterFunc(d, func() { _ = os.Remove("/tmp/unhealthy") })
		}
		fmt.Fprintln(w, "now unhealthy")
	})
	mux.HandleFunc("/well", func(w http.ResponseWriter, r *http.Request) {
		_ = os.Remove("/tmp/unhealthy")
		fmt.Fprintln(w, "now healthy")
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("crashing on request")
		os.Exit(3)
	})
	fileHandlers(mux)
	dnsHandlers(mux)
	protocolHandlers(mux)
	textHandlers(mux)
	blobHandlers(mux)
	logHandlers(mux)
	metricsHandlers(mux, &hits)
	protocolListeners()
	fmt.Println("listening on", port)
	if err := http.ListenAndServe(":"+port, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
