package bench

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// groupRSS is the resident memory, in bytes, of every process in process
// group pgid (nginx's master and workers; a single process for Hangar
// and HAProxy).
func groupRSS(pgid int) int64 {
	var total int64
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces) in parentheses:
		// state ppid pgrp ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}

// openIdle opens n keep-alive connections to c, sends one request on
// each and reads its answer, and returns the connections, left open and
// idle. The connections come from 127.0.0.2 up, 1000 per address, so
// that Hangar's per-client limit (MaxConnsPerIP, 1024) stays at its
// default.
func openIdle(b *testing.B, c contender, n int) []net.Conn {
	b.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(c.url, "http://"), "/")
	host := c.host
	if host == "" {
		host = addr
	}
	req := []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i/1000))}, Timeout: 10 * time.Second}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			closeAll(conns)
			b.Fatalf("%s: connection %d: %v", c.name, i, err)
		}
		conns = append(conns, conn)
		if _, err := conn.Write(req); err != nil {
			closeAll(conns)
			b.Fatalf("%s: connection %d: %v", c.name, i, err)
		}
	}
	for i, conn := range conns {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
		if err == nil {
			err = resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			closeAll(conns)
			b.Fatalf("%s: answer on connection %d: %v", c.name, i, err)
		}
	}
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// BenchmarkProxyIdleMemory: the resident memory of each proxy, idle,
// then holding HANGAR_BENCH_IDLE_CONNS (10,000) idle keep-alive client
// connections (each has made one request), and, with
// HANGAR_BENCH_IDLE_WAIT set (make bench sets 60s), that long after the
// connections closed. Contenders one at a time, each holding the
// connections for 10s before it is measured.
func BenchmarkProxyIdleMemory(b *testing.B) {
	n := 10000
	if v := os.Getenv("HANGAR_BENCH_IDLE_CONNS"); v != "" {
		if k, err := strconv.Atoi(v); err == nil && k > 0 && k <= 15000 {
			n = k
		}
	}
	var wait time.Duration
	if v := os.Getenv("HANGAR_BENCH_IDLE_WAIT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("HANGAR_BENCH_IDLE_WAIT: %v", err)
		}
		wait = d
	}
	e := newEnv(b, envOpts{maxConns: n})
	type row struct {
		name                     string
		idle, busy, after, delta int64
	}
	for i := 0; i < b.N; i++ {
		var rows []row
		for _, c := range e.cs {
			if c.pid == 0 || c.name == "hangar-1p" {
				continue
			}
			if c.name == "haproxy" && haproxyMaxConn(n) < n {
				b.Logf("haproxy: skipped, it would need %d file descriptors for %d connections and the limit is %d", 2*n+256, n, fileLimit())
				continue
			}
			time.Sleep(time.Second)
			r := row{name: c.name, idle: groupRSS(c.pid)}
			conns := openIdle(b, c, n)
			// Past Hangar's 1s buffer hold, the parking of idle
			// connections and its janitor's next tick (every 4s).
			time.Sleep(10 * time.Second)
			r.busy = groupRSS(c.pid)
			closeAll(conns)
			rows = append(rows, r)
		}
		if wait > 0 {
			time.Sleep(wait)
			for j := range rows {
				for _, c := range e.cs {
					if c.name == rows[j].name {
						rows[j].after = groupRSS(c.pid)
					}
				}
			}
		}
		var ng *row
		for j := range rows {
			if rows[j].name == "nginx" {
				ng = &rows[j]
			}
		}
		mib := func(v int64) string { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }
		var sb strings.Builder
		fmt.Fprintf(&sb, "\nproxy memory: resident set, idle, with %d idle keep-alive client connections, and %v after they closed\n", n, wait)
		fmt.Fprintf(&sb, "%-10s %12s %12s %14s %12s %12s %14s\n", "", "idle", "with conns", "per conn", "x nginx", "after", "after/idle")
		for _, r := range rows {
			vs := "-"
			if ng != nil {
				vs = fmt.Sprintf("%.2f", float64(r.busy)/float64(ng.busy))
			}
			after, back := "-", "(set HANGAR_BENCH_IDLE_WAIT)"
			if wait > 0 {
				after, back = mib(r.after), fmt.Sprintf("%.2f", float64(r.after)/float64(r.idle))
			}
			fmt.Fprintf(&sb, "%-10s %12s %12s %14s %12s %12s %14s\n", r.name, mib(r.idle), mib(r.busy),
				fmt.Sprintf("%.1f KiB", float64(r.busy-r.idle)/float64(n)/1024), vs, after, back)
			b.ReportMetric(float64(r.busy)/(1<<20), r.name+"-MiB")
		}
		b.Log(sb.String())
		fmt.Print(sb.String())
	}
}
