package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/google/shlex"
	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/types"
)

// The console machine's lease: refreshed every consoleHeartbeat for
// consoleLeaseTTL, so a CLI that dies leaves a machine the daemon's
// console reaper (every 5 s) destroys within consoleLeaseTTL + 5 s.
const (
	consoleLeaseTTL  = 15 * time.Second
	consoleHeartbeat = 4 * time.Second
)

// newConsoleCmd is `hangar console`: Fly's `fly console`, a shell or the
// app's console_command in an ephemeral machine made from the app's
// current release (its image, env and secrets), destroyed when the session
// ends, or by the daemon once the CLI stops keeping it alive.
func newConsoleCmd() *cobra.Command {
	var app, config, vmSize, command string
	var noPty bool
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Run a shell or the app's console_command in a new, temporary machine",
		Long: "Start a machine from the app's current release (its image, [env] and secrets; no services, no volumes),\n" +
			"open fly.toml's console_command (or -C COMMAND, else a shell) in it on a terminal, and destroy the\n" +
			"machine when the session ends. The CLI holds a lease on the machine and refreshes it while the\n" +
			"session lasts: if the CLI is killed, the daemon destroys the machine within 30 s. The machine runs\n" +
			"`sleep inf` meanwhile, as Fly's console machines do, so the image needs a `sleep`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			mc, consoleCmd, err := c.consoleMachineConfig(ctx, name, vmSize)
			if err != nil {
				return err
			}
			if command != "" {
				consoleCmd = command
			}
			var argv []string
			if consoleCmd != "" {
				if argv, err = shlex.Split(consoleCmd); err != nil {
					return &HintError{Err: fmt.Errorf("console command %q: %w", consoleCmd, err), Hint: "quote it as a shell would"}
				}
			}
			m, err := c.CreateMachine(ctx, name, types.CreateMachineRequest{Config: mc, LeaseTTL: int(consoleLeaseTTL.Seconds())})
			if err != nil {
				return &HintError{Err: fmt.Errorf("create the console machine of %s: %w", name, err), Hint: "see `hangar releases -a " + name + "`"}
			}
			nonce := m.Nonce
			// From here on the machine goes when this function returns,
			// however the session ended.
			defer func() {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				if _, err := c.sendWith(dctx, "DELETE", appPath(name, "machines", m.ID)+"?force=true", nil, "", map[string]string{types.LeaseNonceHeader: nonce}); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "hangar console: destroy machine %s: %v (the daemon destroys it within 30 s)\n", m.ID, err)
				}
			}()
			hbCtx, stopHB := context.WithCancel(ctx)
			defer stopHB()
			go c.keepLease(hbCtx, name, m.ID, nonce, cmd)
			if err := c.waitConsoleMachine(ctx, name, m.ID); err != nil {
				return err
			}
			tty := isTerminal(os.Stdin) && !noPty
			code, err := c.console(ctx, name, m.ID, consoleOptions{command: argv, tty: tty,
				stdin: os.Stdin, stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr()})
			return exitWith(code, err)
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().StringVar(&vmSize, "vm-size", "", "size preset of the machine, e.g. shared-cpu-2x (default: the app's)")
	cmd.Flags().StringVarP(&command, "command", "C", "", "run this instead of console_command or a shell")
	cmd.Flags().BoolVar(&noPty, "no-pty", false, "never allocate a terminal")
	return cmd
}

// waitConsoleMachine waits until the console machine runs, or says why it
// does not: its process (`sleep inf`) exiting at once is an image without
// `sleep`.
func (c *client) waitConsoleMachine(ctx context.Context, app, id string) error {
	var w struct {
		State string `json:"state"`
	}
	q := url.Values{"state": {types.StateStarted, types.StateStopped, types.StateFailed, types.StateDestroyed}, "timeout": {"60"}}
	if err := c.do(ctx, "GET", appPath(app, "machines", id, "wait")+"?"+q.Encode(), nil, &w); err != nil {
		return &HintError{Err: fmt.Errorf("console machine %s did not start: %w", id, err), Hint: "see `hangar logs -a " + app + " --machine " + id + "`"}
	}
	m, err := c.Machine(ctx, app, id)
	if err == nil && w.State == types.StateStarted && m.State == types.StateStarted {
		return nil
	}
	why := w.State
	if m != nil {
		why = m.State
		for _, e := range m.Events {
			if e.Type == "exit" {
				why += fmt.Sprintf(", its process exited: %v", e.Request["exit_event"])
				break
			}
		}
	}
	return &HintError{Err: fmt.Errorf("console machine %s did not stay up (%s)", id, why),
		Hint: "a console machine runs `sleep inf` while the session lasts, as Fly's do: the image needs a `sleep` (busybox's will do); see `hangar logs -a " + app + " --machine " + id + "`"}
}

// keepLease refreshes the console machine's lease until ctx ends.
func (c *client) keepLease(ctx context.Context, app, id, nonce string, cmd *cobra.Command) {
	t := time.NewTicker(consoleHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		path := appPath(app, "machines", id, "lease") + "?" + url.Values{"ttl": {fmt.Sprint(int(consoleLeaseTTL.Seconds()))}}.Encode()
		if _, err := c.sendWith(ctx, "POST", path, nil, "", map[string]string{types.LeaseNonceHeader: nonce}); err != nil && ctx.Err() == nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "\r\nhangar console: refresh the lease of machine %s: %v\r\n", id, err)
		}
	}
}

// consoleMachineConfig is the console machine of app's current release
// and the release's console_command: the config of its "app" group (or
// its first), with `sleep inf` as its process, no services, checks,
// volumes or schedule, never restarted, destroyed when it exits.
func (c *client) consoleMachineConfig(ctx context.Context, app, vmSize string) (*types.MachineConfig, string, error) {
	rels, err := c.Releases(ctx, app)
	if err != nil {
		return nil, "", fmt.Errorf("releases of %s: %w", app, err)
	}
	var rel *types.Release
	for i := range rels {
		if rels[i].Status == types.ReleaseComplete && (rel == nil || rels[i].Version > rel.Version) {
			rel = &rels[i]
		}
	}
	if rel == nil || len(rel.Machines) == 0 {
		return nil, "", &HintError{Err: fmt.Errorf("app %s has no complete release to start a console from", app), Hint: "deploy it first with `hangar deploy`"}
	}
	group := types.DefaultProcessGroup
	if rel.Machines[group] == nil {
		var groups []string
		for g := range rel.Machines {
			groups = append(groups, g)
		}
		sort.Strings(groups)
		group = groups[0]
	}
	// A deep copy: the release's config is not ours to change.
	b, err := json.Marshal(rel.Machines[group])
	if err != nil {
		return nil, "", err
	}
	var mc types.MachineConfig
	if err := json.Unmarshal(b, &mc); err != nil {
		return nil, "", err
	}
	if mc.Image == "" {
		mc.Image = rel.Image
	}
	mc.Init = types.MachineInit{Exec: []string{"sleep", "inf"}}
	mc.Services, mc.Checks, mc.Mounts, mc.Statics, mc.Processes = nil, nil, nil, nil, nil
	mc.Schedule = ""
	mc.Restart = &types.MachineRestart{Policy: types.RestartNo}
	mc.AutoDestroy = true
	if mc.DNS == nil {
		mc.DNS = &types.DNSConfig{}
	}
	mc.DNS.SkipRegistration = true
	if mc.Metadata == nil {
		mc.Metadata = map[string]string{}
	}
	mc.Metadata[types.MetaProcessGroup] = types.ConsoleGroup
	if mc.Env == nil {
		mc.Env = map[string]string{}
	}
	mc.Env["FLY_PROCESS_GROUP"] = types.ConsoleGroup
	if vmSize != "" {
		g, err := types.GuestForSize(vmSize)
		if err != nil {
			return nil, "", &HintError{Err: fmt.Errorf("--vm-size %q: %w", vmSize, err), Hint: "name a size preset, e.g. shared-cpu-1x, shared-cpu-2x, performance-1x"}
		}
		mc.Guest = &g
	}
	consoleCmd := ""
	if cfg, err := appconfig.Parse([]byte(rel.Config), rel.ConfigFile); err == nil {
		consoleCmd = cfg.ConsoleCommand
	}
	return &mc, consoleCmd, nil
}
