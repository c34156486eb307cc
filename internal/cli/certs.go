package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

func newCertsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "certs",
		Aliases: []string{"certificates"},
		Short:   "Manage custom hostnames and their TLS certificates",
		Long: `Manage an app's custom hostnames. Adding one makes the proxy route it to the
app and gets a certificate for it from the daemon's ACME server (Let's
Encrypt unless --acme-directory says otherwise), with the HTTP-01 or
TLS-ALPN-01 challenge: point the hostname's DNS A/AAAA records at this
server first, with ports 80 and 443 reachable. Certificates renew by
themselves 30 days before they expire. <app>.<domain> hosts are covered by
the daemon's default certificate and need no entry here.`,
	}
	var app, config string
	var asJSON bool
	var wait time.Duration
	base := func(name string) string { return "/v1/apps/" + url.PathEscape(name) + "/certificates" }
	withApp := func(c *cobra.Command, read bool) *cobra.Command {
		appFlags(c, &app, &config)
		if read {
			c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
		}
		return c
	}
	hint := func(err error, name, host string) error {
		switch {
		case isNotFound(err) && host != "":
			return &HintError{Err: err, Hint: fmt.Sprintf("list the app's hostnames with `hangar certs list -a %s`", name)}
		case isNotFound(err) && strings.Contains(err.Error(), "not configured"):
			return &HintError{Err: err, Hint: "this daemon serves no certificates API; upgrade it"}
		}
		return err
	}
	show := func(out io.Writer, in *types.Certificate) error {
		if asJSON {
			return printJSON(out, in)
		}
		printCert(out, in)
		return nil
	}

	add := withApp(&cobra.Command{
		Use:   "add HOSTNAME",
		Short: "Add a custom hostname and get its certificate",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			var in *types.Certificate
			if err := c.do(cmd.Context(), "POST", base(name), types.AddCertRequest{Hostname: args[0]}, &in); err != nil {
				return hint(err, name, "")
			}
			if wait > 0 {
				checked, err := c.CheckCertificate(cmd.Context(), name, in.Hostname, wait.String())
				if err != nil {
					return hint(err, name, in.Hostname)
				}
				in = checked
			}
			if err := show(cmd.OutOrStdout(), in); err != nil || asJSON {
				return err
			}
			if in.ClientStatus != types.CertReady {
				fmt.Fprintf(cmd.OutOrStdout(), "\nPoint the DNS A/AAAA records of %s at this server (ports 80 and 443 open), then run `hangar certs check %s -a %s`.\n", in.Hostname, in.Hostname, name)
			}
			return nil
		},
	}, true)
	add.Flags().DurationVar(&wait, "wait", 0, "wait this long for the certificate (e.g. 1m)")

	list := withApp(&cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List an app's custom hostnames",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			var res types.CertsList
			if err := c.do(cmd.Context(), "GET", base(name), nil, &res); err != nil {
				return hint(err, name, "")
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, res.Certificates)
			}
			if len(res.Certificates) == 0 {
				fmt.Fprintf(out, "No custom hostnames for %s; add one with `hangar certs add HOSTNAME -a %s`\n", name, name)
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST NAME\tSTATUS\tSOURCE\tEXPIRES\tADDED")
			for _, in := range res.Certificates {
				exp := "-"
				if !in.NotAfter.IsZero() {
					exp = in.NotAfter.Format("2006-01-02")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Hostname, in.ClientStatus, in.Source, exp, ago(in.CreatedAt.Format(time.RFC3339)))
			}
			return tw.Flush()
		},
	}, true)

	// one is a command that shows one hostname's certificate after call.
	type certCall func(ctx context.Context, c *client, app, host string) (*types.Certificate, error)
	one := func(use, short string, call certCall) *cobra.Command {
		return withApp(&cobra.Command{
			Use:   use + " HOSTNAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				name, c, err := appAndClient(app, config)
				if err != nil {
					return err
				}
				in, err := call(cmd.Context(), c, name, strings.ToLower(args[0]))
				if err != nil {
					return hint(err, name, args[0])
				}
				return show(cmd.OutOrStdout(), in)
			},
		}, true)
	}
	showCmd := one("show", "Show a hostname's certificate", func(ctx context.Context, c *client, app, host string) (*types.Certificate, error) {
		return c.Certificate(ctx, app, host)
	})
	check := one("check", "Check a hostname, retrying its certificate if it is not ready", func(ctx context.Context, c *client, app, host string) (*types.Certificate, error) {
		return c.CheckCertificate(ctx, app, host, "")
	})
	remove := withApp(&cobra.Command{
		Use:     "remove HOSTNAME",
		Aliases: []string{"delete", "rm"},
		Short:   "Remove a custom hostname and its certificate",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			if err := c.RemoveCertificate(cmd.Context(), name, strings.ToLower(args[0])); err != nil {
				return hint(err, name, args[0])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Hostname %s removed from %s\n", args[0], name)
			return nil
		},
	}, false)
	cmd.AddCommand(add, list, showCmd, check, remove)
	return cmd
}

func printCert(w io.Writer, in *types.Certificate) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t= %s\n", k, v)
		}
	}
	row("Hostname", in.Hostname)
	row("App", in.App)
	row("Status", in.ClientStatus)
	row("Source", in.Source)
	row("Configured", fmt.Sprint(in.Configured))
	row("Issuer", in.CertificateAuthority)
	row("Names", strings.Join(in.DNSNames, ", "))
	if !in.NotAfter.IsZero() {
		row("Expires", in.NotAfter.Format(time.RFC3339))
	}
	row("Serial", in.Serial)
	row("Added", in.CreatedAt.Format(time.RFC3339))
	row("Error", in.Error)
	_ = tw.Flush()
}
