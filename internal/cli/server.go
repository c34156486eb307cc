package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hangar-dev/hangar/internal/daemon"
	"github.com/hangar-dev/hangar/internal/network"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/acme"
)

func init() { register(newServerCmd) }

func newServerCmd() *cobra.Command {
	o := daemon.Options{Network: network.DefaultConfig}
	var debug, rotate bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Hangar daemon (API, proxy, machines)",
		Long: `Run the Hangar daemon: the Machines API, the edge proxy and the machine
supervisor. Machines keep running when the daemon stops; the next start
re-adopts them. SIGHUP reloads: the binary now at this path takes over the
listening sockets without refusing a connection (an upgrade), and this
process exits once its requests in flight are done; <data-dir>/hangar.pid
names the serving daemon. Needs root (containers, network namespaces).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// SIGHUP: hand the listeners to a new process of the binary at
			// the same path (an upgrade) without refusing a connection.
			reload := make(chan os.Signal, 1)
			signal.Notify(reload, syscall.SIGHUP)
			defer signal.Stop(reload)
			o.Reload = reload
			if rotate {
				n, err := daemon.RotateSecretsKey(ctx, o.DataDir)
				if err != nil {
					return &HintError{Err: err, Hint: "stop the daemon using --data-dir first; a rerun finishes an interrupted rotation"}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Rotated the secrets key: %d secret values re-encrypted; start the daemon again\n", n)
				return nil
			}
			return daemon.Run(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", DefaultDataDir, "where state, images, logs and the admin token live")
	f.StringVar(&o.APIListen, "api-listen", "127.0.0.1:4280", "address of the API")
	f.StringVar(&o.HTTPListen, "http-listen", ":80", "address of the HTTP proxy")
	f.StringVar(&o.HTTPSListen, "https-listen", "", "address of the HTTPS proxy, e.g. :443 (default: off)")
	f.StringVar(&o.ACMEDirectory, "acme-directory", acme.LetsEncryptURL, "ACME directory URL for custom hostnames' certificates (\"off\": self-signed)")
	f.StringVar(&o.Domain, "domain", "localhost", "apps are served at <app>.<domain>")
	f.StringVar(&o.Region, "region", "local", "this host's region")
	f.StringVar(&o.Org, "org", "personal", "the organization this daemon serves")
	f.StringVar(&o.Runtime, "runtime", "", "OCI runtime: crun or runc (default: crun, or runc where crun cannot run)")
	f.StringVar(&o.Network.Bridge, "bridge", network.DefaultConfig.Bridge, "host bridge for machine networks")
	f.StringVar(&o.Network.Subnet4, "subnet", network.DefaultConfig.Subnet4, "IPv4 subnet for machines")
	f.StringVar(&o.Network.Subnet6, "subnet6", network.DefaultConfig.Subnet6, "IPv6 (6PN) subnet for machines")
	f.DurationVar(&o.AutostopInterval, "autostop-interval", autostopDefault(), "how often idle machines beyond min_machines_running are stopped or suspended (auto_stop_machines); 0 turns it off")
	f.BoolVar(&debug, "debug", false, "log debug messages")
	f.BoolVar(&rotate, "rotate-secrets-key", false, "re-encrypt every secret under a new key, then exit (the daemon must be stopped)")
	return cmd
}

// autostopDefault is 60s, or HANGAR_AUTOSTOP_INTERVAL (a Go duration) when
// set, so tests that start the daemon can step autostop quickly.
func autostopDefault() time.Duration {
	if v := os.Getenv("HANGAR_AUTOSTOP_INTERVAL"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return 60 * time.Second
}
