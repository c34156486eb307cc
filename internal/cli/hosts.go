package cli

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

// newHostsCmd is `hangar hosts`: the hosts of the installation.
func newHostsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "The hosts of this installation: region, state, capacity used",
		Long: `The hosts of this installation. Every hangar server on one state (one
etcd) is a host: it registers itself with its region and capacity, and is
the authority for the machines it runs. A host whose daemon stopped renewing
its lease reads unreachable; its machines read unknown. See docs/cluster.md.`,
	}
	var asJSON bool
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List the hosts, their regions, states and capacity used", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var hs []types.Host
			if err := c.do(cmd.Context(), "GET", "/v1/hosts", nil, &hs); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), hs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tREGION\tSTATE\tRTT\tWIREGUARD\tMACHINES\tMEMORY USED\tCPUS\tAPI")
			for _, h := range hs {
				rtt := "-" // this host, or not measured
				if h.RTTMicros > 0 {
					rtt = fmt.Sprintf("%.1fms", float64(h.RTTMicros)/1000)
				}
				wg := h.WireGuard
				if wg == "" {
					wg = "-" // not on the mesh
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d/%d MB\t%d\t%s\n", h.ID, h.Region, h.State, rtt, wg, h.Used.Machines,
					h.Used.MemoryMB, h.Capacity.MemoryMB, h.Capacity.CPUs, h.APIURL)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var force, drainJSON bool
	drain := &cobra.Command{
		Use:   "drain HOST",
		Short: "Move a host's machines to other hosts of their regions; it takes no new ones",
		Long: `Move the machines off HOST: for each, a machine like it starts on another
host of its region (placed as any create), and once it is started the old
one is destroyed. The host is draining from then on: it takes no new
machines until ` + "`hangar hosts undrain HOST`" + `. Machines that a volume keeps on the
host cannot move: the drain refuses, naming them, unless --force, which
moves the others and leaves those.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			p := "/v1/hosts/" + url.PathEscape(args[0]) + "/drain"
			if force {
				p += "?force=true"
			}
			var res types.DrainResult
			if err := c.do(cmd.Context(), "POST", p, nil, &res); err != nil {
				return err
			}
			if drainJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			for _, m := range res.Moved {
				fmt.Fprintf(out, "Moved machine %s of %s to %s on host %s\n", m.From, m.App, m.To, m.ToHost)
			}
			for _, m := range res.Left {
				fmt.Fprintf(out, "Left machine %s on the host: a volume keeps it there\n", m)
			}
			fmt.Fprintf(out, "Host %s is draining: %d machine(s) moved, %d left\n", res.Host, len(res.Moved), len(res.Left))
			return nil
		},
	}
	drain.Flags().BoolVar(&force, "force", false, "move the other machines and leave those that volumes keep on the host")
	drain.Flags().BoolVar(&drainJSON, "json", false, "print JSON")
	undrain := &cobra.Command{
		Use: "undrain HOST", Short: "Let a draining host take new machines again", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var h types.Host
			if err := c.do(cmd.Context(), "DELETE", "/v1/hosts/"+url.PathEscape(args[0])+"/drain", nil, &h); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Host %s is %s\n", h.ID, h.State)
			return nil
		},
	}
	var removeForce, removeJSON bool
	remove := &cobra.Command{
		Use:   "remove HOST",
		Short: "Forget a host that is gone for good (its daemon stopped)",
		Long: `Forget HOST for good: a dead or decommissioned server. Its daemon must be
stopped (` + "`hangar hosts list`" + ` shows it unreachable). Hangar forgets its record,
its 6PN /64, its round trips, its place in the cluster (its etcd member,
when it has one) and the records of its machines that failover already
replaced on other hosts. Machines that only it ran and volumes kept on it
refuse the removal, naming them, unless --force, which forgets them too:
their data is on that server and lost to Hangar. Ask any other host.

A daemon started again with the removed host's data dir refuses to run;
empty the data dir and join again to bring the server back as a new host.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			p := "/v1/hosts/" + url.PathEscape(args[0])
			if removeForce {
				p += "?force=true"
			}
			var res types.HostRemoval
			if err := c.do(cmd.Context(), "DELETE", p, nil, &res); err != nil {
				return err
			}
			if removeJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			for _, m := range res.Machines {
				fmt.Fprintf(out, "Forgot machine %s\n", m)
			}
			for _, v := range res.Volumes {
				fmt.Fprintf(out, "Forgot volume %s\n", v)
			}
			member := ""
			if res.ClusterMember {
				member = ", and its cluster membership"
			}
			fmt.Fprintf(out, "Removed host %s: %d machine record(s), %d volume(s)%s\n", res.Host, len(res.Machines), len(res.Volumes), member)
			return nil
		},
	}
	remove.Flags().BoolVar(&removeForce, "force", false, "also forget the machines only it ran and the volumes kept on it")
	remove.Flags().BoolVar(&removeJSON, "json", false, "print JSON")
	cmd.AddCommand(list, drain, undrain, remove)
	return cmd
}

// newRegionsCmd is flyctl's `regions list`: where an app's machines run
// (with -a), and the installation's regions and their hosts.
func newRegionsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "regions", Short: "The installation's regions, and where an app runs"}
	var app, config string
	var asJSON bool
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List the regions and their hosts; with -a, the app's machines in each", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var regs types.Regions
			if err := c.do(cmd.Context(), "GET", "/v1/platform/regions", nil, &regs); err != nil {
				return err
			}
			name, _ := appName(app, config)
			perRegion := map[string]int{}
			if name != "" {
				var ms []types.Machine
				if err := c.do(cmd.Context(), "GET", "/v1/apps/"+url.PathEscape(name)+"/machines", nil, &ms); err != nil {
					return err
				}
				for _, m := range ms {
					perRegion[m.Region]++
				}
			}
			if asJSON {
				type region struct {
					types.Region
					Machines *int `json:"machines,omitempty"`
				}
				out := []region{}
				for _, r := range regs.Regions {
					rr := region{Region: r}
					if name != "" {
						rr.Machines = types.Ptr(perRegion[r.Code])
					}
					out = append(out, rr)
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			header := "REGION\tHOSTS"
			if name != "" {
				header += "\tMACHINES OF " + name
			}
			fmt.Fprintln(tw, header)
			sort.Slice(regs.Regions, func(i, j int) bool { return regs.Regions[i].Code < regs.Regions[j].Code })
			for _, r := range regs.Regions {
				line := r.Code + "\t" + strings.Join(r.Hosts, ",")
				if name != "" {
					line += fmt.Sprintf("\t%d", perRegion[r.Code])
				}
				fmt.Fprintln(tw, line)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVarP(&app, "app", "a", "", "also show how many machines of this app run in each region")
	list.Flags().StringVarP(&config, "config", "c", "", "path to fly.toml (for the app name)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

// knownRegion refuses a region where the installation has no host, before
// a request is sent (a single host places any region on itself).
func knownRegion(ctx context.Context, c *client, region string) error {
	var regs types.Regions
	if err := c.do(ctx, "GET", "/v1/platform/regions", nil, &regs); err != nil {
		return err
	}
	var codes []string
	for _, r := range regs.Regions {
		if r.Code == region {
			return nil
		}
		codes = append(codes, r.Code)
	}
	return &HintError{Err: fmt.Errorf("region %s: this installation has no host in region %s (regions: %s)", region, region, strings.Join(codes, ", ")),
		Hint: fmt.Sprintf("pick a region `hangar regions list` shows, or add a host there with `hangar server --join … --region %s` on a new machine; `hangar cluster join-token` prints the command (docs/cluster.md)", region)}
}

// machineState is a machine's state as the tables show it: with the host
// that cannot be reached when the state is unknown.
func machineState(m types.Machine) string {
	if m.State == types.StateUnknown && m.HostID != "" {
		return fmt.Sprintf("unknown (host %s unreachable)", m.HostID)
	}
	return m.State
}
