package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/netpipe"
	"github.com/hangar-dev/hangar/internal/types"
)

// newProxyCmd is `hangar proxy`: flyctl's `fly proxy`, a local port
// forwarded into the app's private network through the API (each local
// connection is one upgraded API connection; no WireGuard needed).
func newProxyCmd() *cobra.Command {
	var app, config, bind string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "proxy LOCAL_PORT[:REMOTE_PORT] [REMOTE_HOST]",
		Short: "Forward a local port to a port of the app's machines",
		Long: "Listen on LOCAL_PORT (0: any free port) and forward each connection to REMOTE_PORT (default: the same)\n" +
			"of a machine of the app, through the Hangar API. REMOTE_HOST names the machine as on Fly's private\n" +
			"network: <app>.internal (the default: a started machine), <region>.<app>.internal,\n" +
			"<id>.vm.<app>.internal, a machine id or its private_ip. Only the app's machines are reachable.\n" +
			"Example: `hangar proxy 5432 -a db`, then `psql -h localhost`.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			local, remote, err := parsePorts(args[0])
			if err != nil {
				return err
			}
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			host := name + ".internal"
			if len(args) == 2 {
				host = args[1]
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// Say now, not at the first connection, when the host is
			// no machine of the app or none is started.
			var target types.ProxyTarget
			if err := c.do(ctx, "GET", proxyPath(name, host, remote), nil, &target); err != nil {
				return proxyError(name, host, remote, err)
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(bind, strconv.Itoa(local)))
			if err != nil {
				return &HintError{Err: fmt.Errorf("listen on %s port %d: %w", bind, local, err), Hint: "pick another local port (0 picks a free one)"}
			}
			defer ln.Close()
			if !quiet {
				fmt.Fprintf(cmd.OutOrStdout(), "Proxying local port %d to remote [%s]:%d\n", ln.Addr().(*net.TCPAddr).Port, host, remote)
			}
			go func() {
				<-ctx.Done()
				ln.Close()
			}()
			for {
				lc, err := ln.Accept()
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
				}
				go func() {
					rc, err := c.dialProxy(ctx, name, host, remote)
					if err != nil {
						lc.Close()
						fmt.Fprintf(cmd.ErrOrStderr(), "hangar proxy: %v\n", proxyError(name, host, remote, err))
						return
					}
					netpipe.Join(lc, rc)
				}()
			}
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().StringVarP(&bind, "bind-addr", "b", "127.0.0.1", "local address to listen on")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "do not print the forwarding line")
	return cmd
}

// parsePorts reads LOCAL_PORT[:REMOTE_PORT].
func parsePorts(s string) (local, remote int, err error) {
	l, r, hasRemote := strings.Cut(s, ":")
	bad := &HintError{Err: fmt.Errorf("ports %q: want LOCAL_PORT or LOCAL_PORT:REMOTE_PORT", s), Hint: "e.g. `hangar proxy 15432:5432 -a db`"}
	if local, err = strconv.Atoi(l); err != nil {
		return 0, 0, bad
	}
	if local < 0 || local > 65535 {
		return 0, 0, &HintError{Err: fmt.Errorf("local port %d: a number from 0 to 65535", local), Hint: "0 picks a free port"}
	}
	remote = local
	if hasRemote {
		if remote, err = strconv.Atoi(r); err != nil {
			return 0, 0, bad
		}
	}
	if remote < 1 || remote > 65535 {
		return 0, 0, &HintError{Err: fmt.Errorf("remote port %d: a number from 1 to 65535", remote), Hint: "with a local port of 0, name the remote one: `hangar proxy 0:5432 -a db`"}
	}
	return local, remote, nil
}

func proxyPath(app, host string, port int) string {
	return appPath(app, "proxy") + "?" + url.Values{"host": {host}, "port": {strconv.Itoa(port)}}.Encode()
}

// proxyError names what was being reached in an error of the API.
func proxyError(app, host string, port int, err error) error {
	return &HintError{Err: fmt.Errorf("proxy to [%s]:%d of app %s: %w", host, port, app, err),
		Hint: fmt.Sprintf("see the app's machines with `hangar machine list -a %s`", app)}
}

// dialProxy opens one forwarded connection: an API connection upgraded to
// the raw stream of port in the machine host names.
func (c *client) dialProxy(ctx context.Context, app, host string, port int) (netpipe.Conn, error) {
	u, err := url.Parse(c.base)
	if err != nil {
		return nil, fmt.Errorf("API URL %q: %w", c.base, err)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[u.Scheme == "https"])
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	if u.Scheme == "https" {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: &tls.Config{ServerName: u.Hostname()}}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, &HintError{Err: fmt.Errorf("cannot reach the Hangar API at %s: %w", c.base, err),
			Hint: "is `hangar server` running? Set HANGAR_API_URL to its --api-listen address"}
	}
	req, _ := http.NewRequest("GET", c.base+proxyPath(app, host, port), nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", types.ProxyUpgrade)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send the proxy request: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read the proxy answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		var e types.ErrorResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, &apiError{Status: resp.StatusCode, Message: e.Error}
	}
	_ = conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return netpipe.ReaderConn{Reader: br, C: conn}, nil
	}
	return conn, nil
}
