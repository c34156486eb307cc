package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

func newReleasesCmd() *cobra.Command {
	var app, config string
	var asJSON bool
	cmd := &cobra.Command{
		Use: "releases", Short: "List an app's releases", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			rels, err := c.Releases(cmd.Context(), name)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rels)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tSTATUS\tSTRATEGY\tIMAGE\tSECRETS\tUSER\tCREATED\tDESCRIPTION")
			for _, r := range rels {
				desc := r.Description
				if r.Reason != "" {
					desc = strings.SplitN(r.Reason, "\n", 2)[0]
				}
				fmt.Fprintf(tw, "v%d\t%s\t%s\t%s\tv%d\t%s\t%s\t%s\n", r.Version, r.Status, r.Strategy, r.Image, r.SecretsVersion, r.User, r.CreatedAt.Format("2006-01-02 15:04:05"), desc)
			}
			return tw.Flush()
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show := &cobra.Command{
		Use: "show VERSION", Short: "Show a release and its config diff against the previous one", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := appName(app, config)
			if err != nil {
				return err
			}
			v, err := strconv.Atoi(strings.TrimPrefix(args[0], "v"))
			if err != nil {
				return &HintError{Err: fmt.Errorf("version %q", args[0]), Hint: "pass a release number like 3 or v3 (see `hangar releases`)"}
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			rel, err := c.Release(cmd.Context(), name, v)
			if err != nil {
				return err
			}
			var prev *types.Release
			if v > 1 {
				prev, _ = c.Release(cmd.Context(), name, v-1) // no diff without it
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rel)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Release v%d of %s: %s\n  strategy  %s\n  image     %s (%s)\n  secrets   v%d\n  user      %s\n  created   %s\n",
				rel.Version, rel.App, rel.Status, rel.Strategy, rel.Image, rel.ImageDigest, rel.SecretsVersion, rel.User, rel.CreatedAt.Format("2006-01-02 15:04:05"))
			if rel.Reason != "" {
				fmt.Fprintf(out, "  reason    %s\n", rel.Reason)
			}
			if prev != nil {
				fmt.Fprintf(out, "\nChanges from v%d:\n", prev.Version)
				writeDiff(out, configLines(prev), configLines(rel))
			}
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	appFlags(show, &app, &config)
	cmd.AddCommand(show)
	return cmd
}

// configLines flattens what a release deploys (image, fly.toml, machine
// configs) into comparable lines.
func configLines(r *types.Release) []string {
	lines := []string{"image = " + r.Image, fmt.Sprintf("secrets_version = %d", r.SecretsVersion)}
	lines = append(lines, strings.Split(strings.TrimRight(r.Config, "\n"), "\n")...)
	groups := make([]string, 0, len(r.Machines))
	for g := range r.Machines {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		b, _ := json.Marshal(r.Machines[g].Guest)
		lines = append(lines, fmt.Sprintf("[%s] count = %d guest = %s", g, r.Counts[g], b))
	}
	return lines
}

// writeDiff prints a line diff (longest common subsequence).
func writeDiff(out io.Writer, a, b []string) {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	changed := false
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(out, "+ %s\n", b[j])
			changed = true
			j++
		default:
			fmt.Fprintf(out, "- %s\n", a[i])
			changed = true
			i++
		}
	}
	if !changed {
		fmt.Fprintln(out, "  (no changes)")
	}
}

func releaseStreamCmd(cmd *cobra.Command, path string, body any, asJSON bool, what string) error {
	c, err := newClient()
	if err != nil {
		return err
	}
	resp, err := c.send(cmd.Context(), "POST", path, body, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out := cmd.OutOrStdout()
	final, err := printReleaseStream(out, resp.Body, asJSON)
	if err != nil {
		return err
	}
	if final.Error != "" {
		return &HintError{Err: fmt.Errorf("%s failed: %s", what, final.Error), Hint: "the previous release keeps serving; see `hangar releases` and `hangar logs`"}
	}
	if final.Release == nil {
		return errors.New(what + ": the stream ended without a result; check `hangar releases`")
	}
	if !asJSON {
		fmt.Fprintf(out, "%s done: release v%d is %s\n", what, final.Release.Version, final.Release.Status)
	}
	return nil
}

func newRollbackCmd() *cobra.Command {
	var app, config string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rollback [VERSION]",
		Short: "Redeploy an earlier release: its image, its config and its secrets version",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := appName(app, config)
			if err != nil {
				return err
			}
			v := 0
			if len(args) == 1 {
				if v, err = strconv.Atoi(strings.TrimPrefix(args[0], "v")); err != nil || v < 1 {
					return &HintError{Err: fmt.Errorf("version %q", args[0]), Hint: "pass a release number from `hangar releases`, or nothing for the previous release"}
				}
			}
			return releaseStreamCmd(cmd, fmt.Sprintf("/v1/apps/%s/releases/%d/rollback", url.PathEscape(name), v), nil, asJSON, "rollback")
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print machine-readable progress events")
	return cmd
}

// regionList reads scale count's --region, a comma-separated list as
// flyctl's, without blanks or repeats: the daemon runs N machines in each
// region, on the regions' hosts.
func regionList(flag string) string {
	var regions []string
	for _, r := range strings.Split(flag, ",") {
		if r = strings.TrimSpace(r); r != "" && !slices.Contains(regions, r) {
			regions = append(regions, r)
		}
	}
	return strings.Join(regions, ",")
}

// groupCount is one process group's count of a `scale count`.
type groupCount struct {
	group string // "" for --process-group's, or every group
	n     int
}

// parseScaleCounts reads `scale count`'s arguments in flyctl's forms: one
// number (for --process-group, or every group), or GROUP=N pairs.
func parseScaleCounts(args []string, flagGroup string) ([]groupCount, error) {
	hint := "pass a whole number (`hangar scale count 3`) or GROUP=N pairs (`hangar scale count web=2 worker=1`)"
	if len(args) == 1 && !strings.Contains(args[0], "=") {
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 0 {
			return nil, &HintError{Err: fmt.Errorf("count %q", args[0]), Hint: hint}
		}
		return []groupCount{{group: flagGroup, n: n}}, nil
	}
	var out []groupCount
	seen := map[string]bool{}
	for _, a := range args {
		g, v, ok := strings.Cut(a, "=")
		n, err := strconv.Atoi(v)
		if !ok || g == "" || err != nil || n < 0 {
			return nil, &HintError{Err: fmt.Errorf("count %q: not GROUP=N", a), Hint: hint}
		}
		if flagGroup != "" {
			return nil, &HintError{Err: fmt.Errorf("count %q and --process-group %s: name the group once", a, flagGroup),
				Hint: "use `hangar scale count web=2` or `hangar scale count 2 --process-group web`"}
		}
		if seen[g] {
			return nil, &HintError{Err: fmt.Errorf("count: process group %s named twice", g), Hint: hint}
		}
		seen[g] = true
		out = append(out, groupCount{group: g, n: n})
	}
	return out, nil
}

func newScaleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "scale", Short: "Change an app's machine count, or its machines' size (a rolling release)"}
	var app, config, group, region string
	var asJSON bool
	flags := func(c *cobra.Command) *cobra.Command {
		appFlags(c, &app, &config)
		c.Flags().StringVarP(&group, "process-group", "g", "", "only this process group")
		c.Flags().BoolP("yes", "y", false, "accept all confirmations (hangar asks none)")
		c.Flags().BoolVar(&asJSON, "json", false, "print machine-readable progress events")
		return c
	}
	scale := func(c *cobra.Command, req types.ScaleRequest) error {
		name, err := appName(app, config)
		if err != nil {
			return err
		}
		if req.ProcessGroup == "" {
			req.ProcessGroup = group
		}
		req.Region = regionList(region)
		return releaseStreamCmd(c, "/v1/apps/"+url.PathEscape(name)+"/scale", req, asJSON, "scale")
	}
	count := flags(&cobra.Command{
		Use:   "count N | GROUP=N...",
		Short: "Run N machines (of --process-group), or N of each group named: adds or removes machines, the others keep running",
		Example: `  hangar scale count 3
  hangar scale count 2 --process-group worker
  hangar scale count web=2 worker=1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			counts, err := parseScaleCounts(args, group)
			if err != nil {
				return err
			}
			for _, gc := range counts {
				if len(counts) > 1 {
					fmt.Fprintf(c.OutOrStdout(), "Scaling process group %s to %d\n", gc.group, gc.n)
				}
				if err := scale(c, types.ScaleRequest{ProcessGroup: gc.group, Count: types.Ptr(gc.n)}); err != nil {
					if gc.group != "" {
						return fmt.Errorf("process group %s: %w", gc.group, err)
					}
					return err
				}
			}
			return nil
		},
	})
	count.Flags().StringVarP(&region, "region", "r", "", "run N in each of these regions, comma-separated (e.g. fra,iad), on the regions' hosts (docs/cluster.md)")
	vm := flags(&cobra.Command{
		Use: "vm SIZE", Short: "Use a VM size preset (e.g. shared-cpu-2x)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return scale(c, types.ScaleRequest{VMSize: args[0]}) },
	})
	memory := flags(&cobra.Command{
		Use: "memory MB", Short: "Set machine memory in MB", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			mb, err := strconv.Atoi(args[0])
			if err != nil || mb <= 0 {
				return &HintError{Err: fmt.Errorf("memory %q", args[0]), Hint: "pass megabytes, e.g. `hangar scale memory 512`"}
			}
			return scale(c, types.ScaleRequest{MemoryMB: mb})
		},
	})
	cmd.AddCommand(count, vm, memory)
	return cmd
}
