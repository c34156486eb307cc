package cli

import (
	"errors"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

func newIPsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ips",
		Short: "Manage an app's IP addresses (Flycast)",
		Long: `Manage an app's IP addresses. Public traffic reaches every app on the
proxy's listen addresses, so the only address to allocate is a Flycast
address: a private IPv6 address on the machines' network, served by the
proxy (load balancing, concurrency limits, autostart and autostop, as for
public traffic). Machines reach it as <app>.flycast. See docs/flycast.md.`,
	}
	var app, config, network, org string
	var asJSON, private bool
	withApp := func(c *cobra.Command) *cobra.Command {
		appFlags(c, &app, &config)
		return c
	}
	base := func(name string) string { return "/v1/apps/" + url.PathEscape(name) + "/ips" }

	list := withApp(&cobra.Command{
		Use:   "list",
		Short: "List the app's IP addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			var ips []types.IPAddress
			if err := c.do(cmd.Context(), "GET", base(name), nil, &ips); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ips)
			}
			if len(ips) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "App %s has no IP addresses; allocate a Flycast address with `hangar ips allocate-v6 --private -a %s`\n", name, name)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tIP\tTYPE\tNETWORK\tREGION\tCREATED AT")
			for _, ip := range ips {
				fmt.Fprintf(tw, "v6\t%s\t%s\t%s\t%s\t%s\n", ip.Address, ip.Type, ip.Network, ip.Region, ago(ip.CreatedAt))
			}
			return tw.Flush()
		},
	})
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	alloc := withApp(&cobra.Command{
		Use:   "allocate-v6",
		Short: "Allocate the app's Flycast address (--private)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !private {
				return &HintError{Err: errors.New("Hangar has no public IPv6 addresses to allocate: public traffic reaches every app on the proxy's listen addresses"),
					Hint: "for a private address that machines reach through the proxy, run `hangar ips allocate-v6 --private`"}
			}
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			var ip types.IPAddress
			if err := c.do(cmd.Context(), "POST", base(name), types.AllocateIPRequest{Type: types.IPTypePrivateV6, Network: network, OrgSlug: org}, &ip); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ip)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "VERSION  IP  TYPE  REGION\nv6  %s  %s  %s\n", ip.Address, ip.Type, ip.Region)
			fmt.Fprintf(cmd.OutOrStdout(), "Machines reach %s's services at http://%s.flycast/ (plain HTTP; the ports of its [[services]] and [http_service]).\n", name, name)
			return nil
		},
	})
	alloc.Flags().BoolVar(&private, "private", false, "allocate a private (Flycast) address")
	alloc.Flags().StringVar(&network, "network", "", "the network the address is on (only the app's own)")
	alloc.Flags().StringVarP(&org, "org", "o", "", "the organization (only this daemon's)")
	alloc.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	release := withApp(&cobra.Command{
		Use:   "release IP [IP...]",
		Short: "Release IP addresses of the app",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			for _, ip := range args {
				if err := c.do(cmd.Context(), "DELETE", base(name)+"/"+url.PathEscape(ip), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Released %s from %s\n", ip, name)
			}
			return nil
		},
	})

	priv := withApp(&cobra.Command{
		Use:   "private",
		Short: "List the private IP addresses of the app's machines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			ms, err := c.Machines(cmd.Context(), name)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ms)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tREGION\tSTATE\tIP")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.Region, m.State, m.PrivateIP)
			}
			return tw.Flush()
		},
	})
	priv.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	cmd.AddCommand(list, alloc, release, priv)
	return cmd
}
