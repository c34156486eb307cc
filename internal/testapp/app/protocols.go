package main

// Endpoints and listeners for the edge proxy's protocol tests (issue 6):
// WebSocket echo, SSE, fly-replay, an h2c server (H2C_PORT) and a raw TCP
// echo that reads a PROXY protocol header (TCP_ECHO_PORT), and a plain
// byte echo that passes a half-close on (RAW_ECHO_PORT, `hangar proxy`).

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hangar-dev/hangar/internal/proxyproto"
)

func protocolHandlers(mux *http.ServeMux) {
	// /ws echoes every WebSocket message back.
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	})
	// /sse sends one event, holds the response open for ?hold= (default
	// 2s), then sends a last event and ends.
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		hold, err := time.ParseDuration(r.URL.Query().Get("hold"))
		if err != nil {
			hold = 2 * time.Second
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		fmt.Fprintf(w, "data: first %s\n\n", os.Getenv("FLY_MACHINE_ID"))
		http.NewResponseController(w).Flush()
		select {
		case <-time.After(hold):
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: last\n\n")
	})
	// /replay answers the first delivery with fly-replay (?to=<machine>
	// as instance=, ?region=<r> as region=, else elsewhere=true) and a replayed one with the
	// machine, the fly-replay-src header and the body's SHA-256.
	mux.HandleFunc("/replay", func(w http.ResponseWriter, r *http.Request) {
		src := r.Header.Get("Fly-Replay-Src")
		if src == "" {
			if to := r.URL.Query().Get("to"); to != "" {
				w.Header().Set("Fly-Replay", "instance="+to)
			} else if region := r.URL.Query().Get("region"); region != "" {
				w.Header().Set("Fly-Replay", "region="+region)
			} else {
				w.Header().Set("Fly-Replay", "elsewhere=true")
			}
			fmt.Fprintln(w, "replay me")
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "machine=%s src=%s len=%d sha256=%s\n", os.Getenv("FLY_MACHINE_ID"), src, n, hex.EncodeToString(h.Sum(nil)))
	})
}

// protocolListeners starts the h2c and TCP echo listeners their variables
// ask for.
func protocolListeners() {
	if port := os.Getenv("H2C_PORT"); port != "" {
		// gRPC (the standard health service, SERVING) and a plain h2c echo.
		gs := grpc.NewServer()
		healthpb.RegisterHealthServer(gs, health.NewServer())
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				gs.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Trailer", "X-Echo-Trailer")
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "proto=%s machine=%s te=%s body=%s\n", r.Proto, os.Getenv("FLY_MACHINE_ID"), r.Header.Get("Te"), b)
			w.Header().Set("X-Echo-Trailer", "done")
		})
		srv := &http.Server{Addr: ":" + port, Handler: h2c.NewHandler(h, &http2.Server{})}
		go func() {
			if err := srv.ListenAndServe(); err != nil {
				fmt.Fprintln(os.Stderr, "h2c:", err)
			}
		}()
	}
	if port := os.Getenv("RAW_ECHO_PORT"); port != "" {
		ln, err := net.Listen("tcp", ":"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, "raw echo:", err)
			return
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go rawEcho(c.(*net.TCPConn))
			}
		}()
	}
	if port := os.Getenv("TCP_ECHO_PORT"); port != "" {
		ln, err := net.Listen("tcp", ":"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tcp echo:", err)
			return
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go tcpEcho(c)
			}
		}()
	}
}

// tcpEcho reads a PROXY header, answers "src=<client> dst=<port it
// connected to> version=<v>", then echoes lines.
func tcpEcho(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	pc, err := proxyproto.NewConn(c)
	if err != nil {
		fmt.Fprintf(c, "error: %v\n", err)
		return
	}
	fmt.Fprintf(pc, "src=%s dst=%s version=%d\n", pc.RemoteAddr(), pc.Header.Destination, pc.Header.Version)
	sc := bufio.NewScanner(pc)
	for sc.Scan() {
		fmt.Fprintf(pc, "echo %s\n", sc.Text())
	}
}

// rawEcho sends back every byte it reads and, once the client has ended
// its output (half-close), ends its own: a client that half-closes reads
// everything back and then EOF.
func rawEcho(c *net.TCPConn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			_ = c.CloseWrite()
			return
		}
		if err != nil {
			return
		}
	}
}
