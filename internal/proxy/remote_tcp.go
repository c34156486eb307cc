package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/netpipe"
)

// Raw TCP services across hosts: a connection for another host's machine
// is carried to that host's edge listener as an HTTP/1.1 upgrade
// ("Upgrade: hangar-tcp", with the app, the machine and the service's
// internal port in the edge headers); that host's proxy picks its machine
// under its limits (waking one if needed), dials the port and joins the
// two streams.

const (
	tcpUpgrade  = "hangar-tcp"
	hdrEdgePort = "Hangar-Edge-Port"
)

// PickConn implements tcpproxy.ConnPicker: a connection to a machine of
// app serving internalPort, on this host or, through its edge listener,
// on another; release ends its count.
func (p *Proxy) PickConn(ctx context.Context, name string, internalPort int) (net.Conn, func(), error) {
	return p.PickConnService(ctx, name, "", internalPort)
}

// PickConnService implements tcpproxy.ServiceConnPicker: PickConn among
// the machines where the service named by its RouteKey is up.
func (p *Proxy) PickConnService(ctx context.Context, name, service string, internalPort int) (net.Conn, func(), error) {
	a, m, code, msg := p.acquire(ctx, name, routing{service: service})
	if m == nil {
		if code == 0 {
			return nil, nil, ctx.Err()
		}
		return nil, nil, errors.New(msg)
	}
	var once sync.Once
	release := func() { once.Do(func() { p.release(a, m) }) }
	p.mu.Lock()
	addr, remote, dial := m.b.Addr, m.remote, p.edge.Dial
	p.mu.Unlock()
	if remote == nil {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("machine %s of app %s: address: %w", m.b.MachineID, name, err)
		}
		d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(internalPort)))
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("dial machine %s of app %s: %w", m.b.MachineID, name, err)
		}
		return c, release, nil
	}
	if dial == nil {
		release()
		return nil, nil, fmt.Errorf("machine %s of app %s is on host %s, and this proxy cannot reach other hosts", m.b.MachineID, name, remote.id)
	}
	c, err := p.dialRemoteTCP(ctx, dial, m, internalPort)
	if err != nil {
		p.mu.Lock()
		remote.downUntil = time.Now().Add(p.edge.DownFor)
		p.mu.Unlock()
		release()
		return nil, nil, fmt.Errorf("machine %s of app %s on host %s: %w", m.b.MachineID, name, remote.id, err)
	}
	return c, release, nil
}

// dialRemoteTCP opens the upgraded stream to another host's machine.
func (p *Proxy) dialRemoteTCP(ctx context.Context, dial func(context.Context, string) (net.Conn, error), m *machine, port int) (net.Conn, error) {
	c, err := dial(ctx, m.b.Addr)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest("GET", "/", nil)
	req.Host = m.b.App
	req.Header.Set(hdrEdgeApp, m.b.App)
	if m.b.MachineID != "" {
		req.Header.Set(hdrEdgePrefer, m.b.MachineID)
	}
	req.Header.Set(hdrEdgePort, strconv.Itoa(port))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", tcpUpgrade)
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(p.WakeTimeout))
	}
	if err := req.Write(c); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		c.Close()
		return nil, fmt.Errorf("the host answered %s: %s", resp.Status, b)
	}
	_ = c.SetDeadline(time.Time{})
	return &bufConn{Conn: c, r: br}, nil
}

// bufConn is a connection whose first bytes were read into r.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// CloseWrite ends the output alone when the connection can.
func (c *bufConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// serveEdgeTCP serves an upgraded raw TCP stream another host's edge
// forwarded: this host's machine, its limits, then the two streams
// joined.
func (p *Proxy) serveEdgeTCP(w http.ResponseWriter, r *http.Request, name string, rt routing) {
	port, err := strconv.Atoi(r.Header.Get(hdrEdgePort))
	if err != nil || port <= 0 || port > 65535 {
		http.Error(w, "hangar proxy: a forwarded TCP connection needs a valid "+hdrEdgePort, http.StatusBadRequest)
		return
	}
	a, m, code, msg := p.acquire(r.Context(), name, rt)
	if m == nil {
		if code != 0 {
			http.Error(w, msg, code)
		}
		return
	}
	defer p.release(a, m)
	p.mu.Lock()
	addr := m.b.Addr
	p.mu.Unlock()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		http.Error(w, "hangar proxy: machine address: "+err.Error(), http.StatusBadGateway)
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	mc, err := d.DialContext(r.Context(), "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		http.Error(w, fmt.Sprintf("hangar proxy: dial machine %s of app %s: %v", m.b.MachineID, name, err), http.StatusBadGateway)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		mc.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+tcpUpgrade+"\r\n\r\n"); err != nil {
		c.Close()
		mc.Close()
		return
	}
	netpipe.Join(netpipe.ReaderConn{Reader: brw.Reader, C: c}, mc)
}
