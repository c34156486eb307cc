package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

// newClusterCmd is `hangar cluster`: join tokens for new hosts and the
// list of the cluster's hosts (docs/cluster-join.md).
func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Manage the cluster of Hangar hosts (join tokens, members)"}

	var ttl time.Duration
	var tokJSON bool
	tok := &cobra.Command{
		Use:   "join-token",
		Short: "Print a one-time token for a new host to join this cluster",
		Long: `Print a one-time token for a new host to join this cluster. On the new host:

  hangar server --join https://THIS-HOST:4281 --join-token TOKEN --region REGION

The token pins the cluster's CA and holds a secret that works once, until
--ttl passes. Run on any member of the cluster (org token).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var out types.JoinTokenResponse
			req := types.JoinTokenRequest{}
			if ttl != 0 {
				req.TTL = ttl.String()
			}
			if err := c.do(cmd.Context(), "POST", "/v1/cluster/join-tokens", req, &out); err != nil {
				return err
			}
			if tokJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "Valid once, until %s. On the new host:\n  hangar server --join %s --join-token %s --region REGION\n",
				out.ExpiresAt.Local().Format(time.RFC3339), out.JoinURL, out.Token)
			return nil
		},
	}
	tok.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token may be used (1m to 168h)")
	tok.Flags().BoolVar(&tokJSON, "json", false, "print JSON")

	var listJSON bool
	members := &cobra.Command{
		Use: "members", Short: "List the cluster's hosts: voters (etcd members) and clients", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var out types.ClusterMembers
			if err := c.do(cmd.Context(), "GET", "/v1/cluster/members", nil, &out); err != nil {
				return err
			}
			if listJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Cluster %s, %d voters", out.ClusterID, out.Voters)
			if !out.Quorum {
				fmt.Fprint(w, " — NO QUORUM: writes fail until a majority of the voters run (this list is this host's last copy)")
			}
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tREGION\tROLE\tHEALTH\tCLUSTER URL\tJOINED")
			for _, m := range out.Members {
				role := m.Role
				switch {
				case m.Leader:
					role += " (leader)"
				case m.Learner:
					role += " (learner)"
				}
				health := m.Health
				if health == "" {
					health = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Region, role, health, m.ClusterURL, m.JoinedAt.Local().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	members.Flags().BoolVar(&listJSON, "json", false, "print JSON")
	cmd.AddCommand(tok, members)
	return cmd
}
