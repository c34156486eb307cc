package api

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/netpipe"
	"github.com/hangar-dev/hangar/internal/types"
)

// proxyQuery is the query of GET .../proxy, documented in routes.go.
var proxyQuery = []Param{
	{Name: "port", Type: "integer", Desc: "the port to reach in the machine (required)"},
	{Name: "host", Type: "string", Desc: "which machine: <app>.internal (default: a started machine of the app), <region>.<app>.internal, <id>.vm.<app>.internal, a machine id, or a machine's private_ip; never an address of another app"},
}

// privateProxy forwards one TCP connection into the app's private network
// (`hangar proxy`): the daemon dials the port of the machine the host
// names, and with `Upgrade: hangar-tcp` the connection then carries its
// bytes. The machine is dialled before the upgrade, so a host that is no
// machine of the app (403), an app without a started machine (409) or a
// closed port (503) answer with an HTTP error. Without the Upgrade header
// it only resolves the host and answers {"machine_id", "address"}: the
// CLI's check before it listens.
func (s *Server) privateProxy(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	q := r.URL.Query()
	port, err := strconv.Atoi(q.Get("port"))
	if err != nil || port < 1 || port > 65535 {
		return badRequest("port %q: a number from 1 to 65535", q.Get("port"))
	}
	host := q.Get("host")
	if !strings.EqualFold(r.Header.Get("Upgrade"), types.ProxyUpgrade) {
		t, err := s.sup.ResolvePrivate(r.Context(), app, host)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, types.ProxyTarget{MachineID: t.MachineID, Address: net.JoinHostPort(t.Addr, strconv.Itoa(port))})
		return nil
	}
	mc, t, err := s.sup.DialPrivate(r.Context(), app, host, port)
	if err != nil {
		return err
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		mc.Close()
		return err
	}
	// The server's deadlines, if any, are not the stream's.
	_ = conn.SetDeadline(time.Time{})
	_, err = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + types.ProxyUpgrade + "\r\nHangar-Machine-Id: " + t.MachineID + "\r\n\r\n")
	if err == nil {
		err = buf.Flush()
	}
	if err != nil {
		conn.Close()
		mc.Close()
		return nil
	}
	client := netpipe.Conn(conn)
	if n := buf.Reader.Buffered(); n > 0 {
		client = netpipe.ReaderConn{Reader: buf.Reader, C: conn}
	}
	up, down := netpipe.Join(client, mc)
	s.log.Debug("proxy: connection done", "app", app, "machine", t.MachineID, "port", port, "sent", up, "received", down)
	return nil
}
