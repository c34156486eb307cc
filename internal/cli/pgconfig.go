package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/pg"
	"github.com/hangar-dev/hangar/internal/types"
)

// `hangar pg config show|update`: a cluster's PostgreSQL parameters, set
// cluster-wide through Patroni (PATCH /config, run inside a member by
// pg.CtlScript); those that need a server start are applied with a
// rolling restart, replicas first.

func newPgConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Show or change a Hangar Postgres cluster's PostgreSQL parameters"}
	cmd.AddCommand(newPgConfigShowCmd(), newPgConfigUpdateCmd())
	return cmd
}

// pgSettingRow is a parameter as `config show` prints it.
type pgSettingRow struct {
	pg.Setting
	Value          string `json:"value"` // current_setting(): with its unit
	PendingRestart bool   `json:"pending_restart"`
	Cluster        any    `json:"cluster_value,omitempty"` // what Patroni's configuration sets
}

// pgSettings reads names' rows of pg_settings on the primary (unknown
// names are missing from the answer).
func pgSettings(ctx context.Context, c *client, app, id string, names []string) (map[string]pgSettingRow, error) {
	quoted := make([]string, 0, len(names))
	for _, n := range names {
		if !pg.ValidName(n) {
			continue
		}
		quoted = append(quoted, "'"+strings.ReplaceAll(n, "'", "''")+"'")
	}
	sql := `select coalesce(json_agg(json_build_object('name', name, 'setting', setting, 'unit', coalesce(unit, ''), 'vartype', vartype,
  'context', context, 'min_val', coalesce(min_val, ''), 'max_val', coalesce(max_val, ''), 'enumvals', coalesce(enumvals, '{}'),
  'value', current_setting(name), 'pending_restart', pending_restart)), '[]') from pg_settings where name in (` + strings.Join(quoted, ",") + `);`
	out, err := pgSQL(ctx, c, app, id, "postgres", sql)
	if err != nil {
		return nil, err
	}
	var rows []pgSettingRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return nil, fmt.Errorf("pg_settings of %s: %w (%q)", app, err, out)
	}
	m := map[string]pgSettingRow{}
	for _, r := range rows {
		m[r.Name] = r
	}
	return m, nil
}

// pgClusterParameters are the parameters Patroni's cluster-wide
// configuration sets (postgresql.parameters of GET /config).
func pgClusterParameters(ctx context.Context, c *client, app string) (map[string]any, error) {
	out, err := pgCtl(ctx, c, app, "config")
	if err != nil {
		return nil, err
	}
	var conf struct {
		PostgreSQL struct {
			Parameters map[string]any `json:"parameters"`
		} `json:"postgresql"`
	}
	if err := json.Unmarshal([]byte(out), &conf); err != nil {
		return nil, fmt.Errorf("patroni's /config in %s: %w (%q)", app, err, out)
	}
	return conf.PostgreSQL.Parameters, nil
}

func newPgConfigShowCmd() *cobra.Command {
	var app, config string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show -a DB",
		Short: "Show the cluster's PostgreSQL parameters: flyctl's, and every one Patroni's configuration sets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			m, err := pgMachine(ctx, c, name)
			if err != nil {
				return err
			}
			params, err := pgClusterParameters(ctx, c, name)
			if err != nil {
				return err
			}
			names := []string{}
			for _, f := range pg.FlagParameters {
				names = append(names, f.Name)
			}
			for n := range params {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
			rows, err := pgSettings(ctx, c, name, m.ID, names)
			if err != nil {
				return err
			}
			list := make([]pgSettingRow, 0, len(rows))
			for _, n := range names {
				if r, ok := rows[n]; ok {
					r.Cluster = params[n]
					list = append(list, r)
				}
			}
			sort.SliceStable(list, func(i, j int) bool { return list[i].Name < list[j].Name })
			if asJSON {
				return printJSON(cmd.OutOrStdout(), list)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVALUE\tSET BY\tCHANGE TAKES\tPENDING RESTART")
			for _, r := range list {
				by := "default"
				if r.Cluster != nil {
					by = "cluster config"
				}
				takes := "reload"
				if r.NeedsRestart() {
					takes = "restart"
				}
				pending := ""
				if r.PendingRestart {
					pending = "yes"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Value, by, takes, pending)
			}
			return w.Flush()
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newPgConfigUpdateCmd() *cobra.Command {
	var app, config string
	var force bool
	var sets []string
	values := make([]string, len(pg.FlagParameters))
	cmd := &cobra.Command{
		Use:   "update -a DB [--max-connections N] [--shared-buffers SIZE] [--work-mem SIZE] [--log-min-duration-statement DURATION] [--set NAME=VALUE]…",
		Short: "Change the cluster's PostgreSQL parameters (on every member; a rolling restart when a parameter needs one)",
		Long: `Change PostgreSQL parameters on every member of a Hangar Postgres cluster,
through Patroni's cluster-wide configuration. Each name and value is checked
against the server's own description first (pg_settings: its type, unit,
minimum, maximum, allowed values), so a typo is an error, not a server that
does not start; --force skips the value check (never the name check).
Parameters that take effect at a reload are applied at once; those that
need a server start (max_connections, shared_buffers, …) are applied with
a rolling restart: each replica in turn, then the primary (restarted in
place: its clients reconnect), and the command says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			want := map[string]string{}
			var order []string
			add := func(n, v string) error {
				if err := pg.CheckName(n); err != nil {
					return &HintError{Err: err, Hint: "see `hangar pg config show -a " + name + "`; parameter names are PostgreSQL's, lowercase with underscores"}
				}
				if _, dup := want[n]; !dup {
					order = append(order, n)
				}
				want[n] = v
				return nil
			}
			for i, f := range pg.FlagParameters {
				if cmd.Flags().Changed(f.Flag) {
					if err := add(f.Name, values[i]); err != nil {
						return err
					}
				}
			}
			for _, s := range sets {
				n, v, ok := strings.Cut(s, "=")
				if !ok {
					return &HintError{Err: fmt.Errorf("--set %q", s), Hint: "use --set NAME=VALUE, e.g. --set random_page_cost=1.1"}
				}
				if err := add(strings.TrimSpace(n), v); err != nil {
					return err
				}
			}
			if len(want) == 0 {
				return &HintError{Err: errors.New("nothing to change"), Hint: "pass a parameter flag (see --help) or --set NAME=VALUE"}
			}
			m, err := pgMachine(ctx, c, name)
			if err != nil {
				return err
			}
			rows, err := pgSettings(ctx, c, name, m.ID, order)
			if err != nil {
				return err
			}
			patch := map[string]any{}
			var restart, changed []string
			for _, n := range order {
				r, ok := rows[n]
				if !ok {
					return &HintError{Err: types.NewError(types.ErrInvalid, fmt.Sprintf("PostgreSQL %s has no parameter %s", name, n)),
						Hint: "see `hangar pg config show -a " + name + "` and PostgreSQL's documentation (runtime-config); an extension's parameters exist only once it is loaded"}
				}
				v := want[n]
				norm := v
				if !force {
					if norm, err = pg.Normalize(r.Setting, v); err != nil {
						return &HintError{Err: err, Hint: "memory takes B, kB, MB, GB, TB; time us, ms, s, min, h, d; --force skips this check"}
					}
				}
				patch[n] = v
				if norm != r.Setting.Setting {
					changed = append(changed, n)
					if r.NeedsRestart() {
						restart = append(restart, n)
					}
				}
			}
			body, _ := json.Marshal(map[string]any{"postgresql": map[string]any{"parameters": patch}})
			if out, err := pgCtl(ctx, c, name, "patch-config", string(body)); err != nil {
				return fmt.Errorf("set the parameters through Patroni in %s: %w %s", name, err, out)
			}
			out := cmd.OutOrStdout()
			if len(changed) == 0 {
				fmt.Fprintf(out, "%s already has these values: nothing changed.\n", name)
				return nil
			}
			if len(restart) == 0 {
				fmt.Fprintf(out, "Set %s on every member of %s (applied at a reload, no restart needed).\n", strings.Join(changed, ", "), name)
				return pgWaitApplied(ctx, c, name, m.ID, order, want, force, 30*time.Second)
			}
			fmt.Fprintf(out, "Set %s on every member of %s; a change of %s takes effect only at a server start: restarting the members one by one, replicas first, then the primary.\n",
				strings.Join(changed, ", "), name, strings.Join(restart, ", "))
			if err := pgRollingRestart(ctx, c, name, out); err != nil {
				return err
			}
			m, err = pgMachine(ctx, c, name)
			if err != nil {
				return err
			}
			return pgWaitApplied(ctx, c, name, m.ID, order, want, force, time.Minute)
		},
	}
	appFlags(cmd, &app, &config)
	for i, f := range pg.FlagParameters {
		cmd.Flags().StringVar(&values[i], f.Flag, "", f.Usage)
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "any other parameter, NAME=VALUE (repeatable)")
	cmd.Flags().BoolVar(&force, "force", false, "skip checking the values against pg_settings (names are still checked)")
	return cmd
}

// pgWaitApplied waits until the primary runs with the values asked for.
func pgWaitApplied(ctx context.Context, c *client, app, id string, names []string, want map[string]string, unchecked bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		rows, err := pgSettings(ctx, c, app, id, names)
		last := fmt.Sprint(err)
		if err == nil {
			ok := true
			for _, n := range names {
				r := rows[n]
				norm := want[n]
				if !unchecked {
					norm, _ = pg.Normalize(r.Setting, want[n])
				}
				if norm != r.Setting.Setting && want[n] != r.Value {
					ok = false
					last = fmt.Sprintf("%s is %s", n, r.Value)
				}
			}
			if ok {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return &HintError{Err: fmt.Errorf("the primary of %s did not take the new values within %s (%s)", app, timeout, last),
				Hint: "PostgreSQL may have refused a value: see `hangar logs -a " + app + "`"}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// pgRollingRestart restarts every member that Patroni marks as needing a
// restart: the replicas one at a time (each back and streaming before the
// next), then the primary, in place.
func pgRollingRestart(ctx context.Context, c *client, app string, out io.Writer) error {
	// Patroni applies the new configuration within a loop (1 s) and then
	// marks the members whose server needs a start.
	var v *pgClusterView
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		v, err = pgCluster(ctx, c, app)
		if err == nil {
			pending := 0
			for _, m := range v.Members {
				if m.PendingRestart {
					pending++
				}
			}
			if pending == len(v.Members) {
				break
			}
			if pending > 0 && time.Now().After(deadline) {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no member of %s was marked as needing a restart within 30 s (%v)", app, err)
		}
		time.Sleep(time.Second)
	}
	// A member whose Patroni marks the restart late (a slow loop, a
	// store it reached late) is restarted in a later pass: no member is
	// left running with the old value.
	for pass := 0; ; pass++ {
		primary := v.primary()
		members := append([]pgMember(nil), v.Members...)
		sort.SliceStable(members, func(i, j int) bool { return members[j].Name == primary && members[i].Name != primary })
		for _, m := range members {
			if !m.PendingRestart {
				continue
			}
			role := "replica"
			if m.Name == primary {
				role = "primary"
			}
			start := time.Now()
			fmt.Fprintf(out, "Restarting the %s %s…\n", role, m.Name)
			if res, err := pgCtl(ctx, c, app, "restart", m.Name); err != nil {
				return &HintError{Err: fmt.Errorf("restart %s of %s: %w %s", m.Name, app, err, res), Hint: "see `hangar pg status -a " + app + "` and `hangar logs -a " + app + "`"}
			}
			if err := pgWaitMember(ctx, c, app, m.Name, 2*time.Minute); err != nil {
				return err
			}
			fmt.Fprintf(out, "  %s is back (%s)\n", m.Name, time.Since(start).Round(100*time.Millisecond))
		}
		var err error
		if v, err = pgCluster(ctx, c, app); err != nil {
			return err
		}
		pending := false
		for _, m := range v.Members {
			pending = pending || m.PendingRestart
		}
		if !pending {
			return nil
		}
		if pass == 2 {
			break
		}
	}
	var still []string
	for _, m := range v.Members {
		if m.PendingRestart {
			still = append(still, m.Name)
		}
	}
	return &HintError{Err: fmt.Errorf("members of %s still need a restart after three passes: %s", app, strings.Join(still, ", ")), Hint: "run `hangar pg config update` again, or see `hangar pg status -a " + app + "`"}
}

// pgWaitMember waits until a member runs (a replica streams) without a
// pending restart.
func pgWaitMember(ctx context.Context, c *client, app, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		v, err := pgCluster(ctx, c, app)
		if err == nil {
			for _, m := range v.Members {
				if m.Name == name {
					if !m.PendingRestart && (m.State == "running" || m.State == "streaming") {
						return nil
					}
					last = m.State
				}
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("member %s of %s not back within %s (%s)", name, app, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
