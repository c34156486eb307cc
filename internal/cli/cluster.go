package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/daemon"
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
	cmd.AddCommand(tok, members, newClusterInitCmd())
	return cmd
}

// newClusterInitCmd is `hangar cluster init --from-data-dir DIR`: a
// single-host data dir becomes the first member of a new cluster.
func newClusterInitCmd() *cobra.Command {
	var from, prefix, region string
	var cl clusterFlags
	cmd := &cobra.Command{
		Use:   "init --from-data-dir DIR",
		Short: "Make a single-host data dir the first member of a new cluster, its state copied into etcd",
		Long: `Make a single-host data dir the first member of a new cluster: the cluster
is made in DIR/cluster (as by hangar server --cluster-init), every key of
DIR/state.db is copied into its etcd and checked, and state.db is renamed
state.db.pre-cluster. Stop the daemon using DIR first: its machines keep
running, and the next hangar server --data-dir DIR (no other flag needed)
starts the member and re-adopts them. Other hosts then join with a token
from hangar cluster join-token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return &HintError{Err: errors.New("no data dir given"), Hint: "pass --from-data-dir DIR, the single-host daemon's --data-dir"}
			}
			if cl.voters != 3 && cl.voters != 5 {
				return &HintError{Err: fmt.Errorf("--voters %d", cl.voters), Hint: "a cluster has 3 or 5 voting members"}
			}
			if err := checkPrefix(prefix); err != nil {
				return err
			}
			o := daemon.DefaultOptions()
			o.DataDir, o.Region = from, region
			o.Cluster = &daemon.ClusterOptions{Init: true, Voters: cl.voters, Name: cl.name, AdvertiseAddr: cl.advertise,
				ClusterListen: cl.clusterListen, PeerListen: cl.peerListen, ClientListen: cl.clientListen, Prefix: prefix}
			o.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			n, err := daemon.ClusterInitFromDataDir(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Copied %d keys of %s into the new cluster's etcd; start the daemon again with `hangar server --data-dir %s`, then add hosts with `hangar cluster join-token`\n", n, from, from)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from-data-dir", "", "the single-host daemon's data dir (its daemon stopped)")
	f.StringVar(&region, "region", "local", "this host's region (as its daemon's --region)")
	f.StringVar(&prefix, "etcd-prefix", daemon.DefaultEtcdPrefix, "namespace of the state in etcd")
	f.IntVar(&cl.voters, "voters", 3, "how many hosts are voting etcd members, 3 or 5")
	f.StringVar(&cl.name, "member-name", "", "this host's name in the cluster (default: the hostname)")
	f.StringVar(&cl.advertise, "advertise-addr", "", "the IP or DNS name other hosts reach this one at (default 127.0.0.1)")
	f.StringVar(&cl.clusterListen, "cluster-listen", "", "HOST:PORT of the cluster listener (default: --advertise-addr port 4281)")
	f.StringVar(&cl.peerListen, "etcd-peer-listen", "", "HOST:PORT of the etcd member's peer listener (default: --advertise-addr port 2380)")
	f.StringVar(&cl.clientListen, "etcd-client-listen", "", "HOST:PORT of the etcd member's client listener (default: --advertise-addr port 2379)")
	return cmd
}
