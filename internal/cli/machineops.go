package cli

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

// machineOpCmds are flyctl's machine verbs over the Machines API:
// restart, clone, suspend, kill, update, cordon, uncordon, leases.
func machineOpCmds(app, config *string) []*cobra.Command {
	withApp := func(c *cobra.Command) *cobra.Command {
		appFlags(c, app, config)
		return c
	}
	client := func() (string, *client, error) { return appAndClient(*app, *config) }
	path := func(name string, parts ...string) string { return appPath(name, "machines", parts...) }
	// each runs fn for every id, naming the machine in an error.
	each := func(args []string, fn func(id string) error) error {
		for _, id := range args {
			if err := fn(id); err != nil {
				return fmt.Errorf("machine %s: %w", id, err)
			}
		}
		return nil
	}

	var (
		rsSignal string
		rsTime   int
		rsForce  bool
	)
	restart := withApp(&cobra.Command{
		Use: "restart ID...", Short: "Stop and start machines", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if rsSignal != "" {
				q.Set("signal", rsSignal)
			}
			if rsTime > 0 {
				q.Set("timeout", strconv.Itoa(rsTime))
			}
			if rsForce {
				q.Set("force_stop", "true")
			}
			return each(args, func(id string) error {
				p := path(name, id, "restart")
				if len(q) > 0 {
					p += "?" + q.Encode()
				}
				if err := c.do(cmd.Context(), "POST", p, nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Machine %s restarted\n", id)
				return nil
			})
		},
	})
	restart.Flags().StringVarP(&rsSignal, "signal", "s", "", "signal to stop the machine with (default: its kill_signal)")
	restart.Flags().IntVar(&rsTime, "time", 0, "seconds to wait for the machine to stop before killing it")
	restart.Flags().BoolVar(&rsForce, "force", false, "kill the machine (SIGKILL) instead of stopping it")
	restart.Flags().Bool("skip-health-checks", false, "return without waiting for health checks (hangar's restart never waits for them)")

	var clRegion, clName string
	var clJSON bool
	clone := withApp(&cobra.Command{
		Use: "clone ID", Short: "Create a machine with the config of another", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := client()
			if err != nil {
				return err
			}
			src, err := c.Machine(cmd.Context(), name, args[0])
			if err != nil {
				return fmt.Errorf("clone %s: %w", args[0], err)
			}
			region := src.Region
			if clRegion != "" && clRegion != src.Region {
				if err := knownRegion(cmd.Context(), c, clRegion); err != nil {
					return fmt.Errorf("clone %s: %w", args[0], err)
				}
				region = clRegion // placed on a host of that region
			}
			m, err := c.CreateMachine(cmd.Context(), name, types.CreateMachineRequest{Name: clName, Region: region, Config: src.Config})
			if err != nil {
				return fmt.Errorf("clone %s: %w", args[0], err)
			}
			if clJSON {
				return printJSON(cmd.OutOrStdout(), m)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Machine %s cloned from %s is %s (private IP %s)\n", m.ID, src.ID, m.State, m.PrivateIP)
			return nil
		},
	})
	clone.Flags().StringVarP(&clRegion, "region", "r", "", "region of the new machine (default: the source's); it goes to a host of that region")
	clone.Flags().StringVar(&clName, "name", "", "name of the new machine")
	clone.Flags().BoolVar(&clJSON, "json", false, "print the new machine as JSON")

	// post is a verb that is one POST per machine with no body.
	post := func(use, short, verb, done string) *cobra.Command {
		return withApp(&cobra.Command{
			Use: use + " ID...", Short: short, Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				name, c, err := client()
				if err != nil {
					return err
				}
				return each(args, func(id string) error {
					if err := c.do(cmd.Context(), "POST", path(name, id, verb), nil, nil); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Machine %s %s\n", id, done)
					return nil
				})
			},
		})
	}
	suspend := post("suspend", "Suspend machines (frozen in memory; `machine start` resumes them)", "suspend", "suspended")
	cordon := post("cordon", "Take machines out of proxy routing (they keep running)", "cordon", "cordoned")
	uncordon := post("uncordon", "Return machines to proxy routing", "uncordon", "uncordoned")

	kill := withApp(&cobra.Command{
		Use: "kill ID", Short: "Kill a machine's main process (SIGKILL); its restart policy applies", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := client()
			if err != nil {
				return err
			}
			if err := c.do(cmd.Context(), "POST", path(name, args[0], "signal"), map[string]string{"signal": "SIGKILL"}, nil); err != nil {
				return fmt.Errorf("kill %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Machine %s killed\n", args[0])
			return nil
		},
	})

	var (
		upEnv       []string
		upImage     string
		upSize      string
		upMemory    int
		upSchedule  string
		upSkipStart bool
		upJSON      bool
	)
	update := withApp(&cobra.Command{
		Use: "update ID", Short: "Change a machine's config (env, image, size, schedule): it is replaced by a new version", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := client()
			if err != nil {
				return err
			}
			m, err := c.Machine(cmd.Context(), name, args[0])
			if err != nil {
				return fmt.Errorf("update %s: %w", args[0], err)
			}
			cfg := m.Config
			if cfg == nil {
				cfg = &types.MachineConfig{}
			}
			if err := applyMachineFlags(cfg, upEnv, upImage, upSize, upMemory, upSchedule); err != nil {
				return err
			}
			var out types.Machine
			req := types.CreateMachineRequest{Config: cfg, SkipLaunch: upSkipStart}
			if err := c.do(cmd.Context(), "POST", path(name, args[0]), req, &out); err != nil {
				return fmt.Errorf("update %s: %w", args[0], err)
			}
			if upJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Machine %s updated to version %s (%s)\n", out.ID, out.InstanceID, out.State)
			return nil
		},
	})
	update.Flags().StringArrayVarP(&upEnv, "env", "e", nil, "NAME=VALUE to set (repeatable)")
	update.Flags().StringVar(&upImage, "image", "", "the image to run")
	update.Flags().StringVar(&upSize, "vm-size", "", "size preset, e.g. shared-cpu-2x")
	update.Flags().IntVar(&upMemory, "vm-memory", 0, "memory in MB")
	update.Flags().StringVar(&upSchedule, "schedule", "", "hourly, daily, weekly, monthly or a 5-field cron expression")
	update.Flags().BoolVar(&upSkipStart, "skip-start", false, "leave the new version stopped")
	update.Flags().BoolVar(&upJSON, "json", false, "print the updated machine as JSON")

	leases := &cobra.Command{Use: "leases", Aliases: []string{"lease"}, Short: "View or clear machine leases"}
	var lvJSON bool
	view := withApp(&cobra.Command{
		Use: "view ID...", Short: "Show machines' leases", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := client()
			if err != nil {
				return err
			}
			all := map[string]*types.MachineLease{}
			for _, id := range args {
				l, err := getLease(cmd, c, path(name, id, "lease"))
				if err != nil {
					return fmt.Errorf("machine %s: %w", id, err)
				}
				all[id] = l
			}
			if lvJSON {
				return printJSON(cmd.OutOrStdout(), all)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MACHINE\tOWNER\tEXPIRES\tNONCE\tDESCRIPTION")
			for _, id := range args {
				l := all[id]
				if l == nil {
					fmt.Fprintf(tw, "%s\t-\t-\t-\tno lease\n", id)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, l.Owner, time.Unix(l.ExpiresAt, 0).UTC().Format(time.RFC3339), l.Nonce, l.Description)
			}
			return tw.Flush()
		},
	})
	view.Flags().BoolVar(&lvJSON, "json", false, "print JSON")
	clear := withApp(&cobra.Command{
		Use: "clear ID...", Short: "Release machines' leases (whoever holds them)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := client()
			if err != nil {
				return err
			}
			return each(args, func(id string) error {
				l, err := getLease(cmd, c, path(name, id, "lease"))
				if err != nil {
					return err
				}
				if l == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "Machine %s has no lease\n", id)
					return nil
				}
				resp, err := c.sendWith(cmd.Context(), "DELETE", path(name, id, "lease"), nil, "", map[string]string{types.LeaseNonceHeader: l.Nonce})
				if err != nil {
					return err
				}
				resp.Body.Close()
				fmt.Fprintf(cmd.OutOrStdout(), "Machine %s: lease of %s cleared\n", id, l.Owner)
				return nil
			})
		},
	})
	leases.AddCommand(view, clear)

	return []*cobra.Command{restart, clone, suspend, kill, update, cordon, uncordon, leases}
}

// getLease reads a machine's lease; nil if it has none.
func getLease(cmd *cobra.Command, c *client, p string) (*types.MachineLease, error) {
	var ans struct {
		Data *types.MachineLease `json:"data"`
	}
	err := c.do(cmd.Context(), "GET", p, nil, &ans)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && strings.Contains(ae.Message, "lease") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ans.Data, nil
}

// applyMachineFlags sets the config fields that machine run and update
// take as flags.
func applyMachineFlags(cfg *types.MachineConfig, env []string, image, size string, memory int, schedule string) error {
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return &HintError{Err: fmt.Errorf("--env %q", kv), Hint: "use --env NAME=VALUE"}
		}
		if cfg.Env == nil {
			cfg.Env = map[string]string{}
		}
		cfg.Env[k] = v
	}
	if image != "" {
		cfg.Image = image
	}
	if size != "" {
		g, err := types.GuestForSize(size)
		if err != nil {
			return err
		}
		cfg.Guest = &g
	}
	if memory > 0 {
		if cfg.Guest == nil {
			g := types.DefaultGuest
			cfg.Guest = &g
		}
		cfg.Guest.MemoryMB = memory
	}
	if schedule != "" {
		if _, err := types.ParseSchedule(schedule); err != nil {
			return &HintError{Err: fmt.Errorf("--schedule: %w", err), Hint: "use --schedule hourly, daily, weekly, monthly, or a cron expression in quotes: --schedule '*/15 * * * *'"}
		}
		cfg.Schedule = schedule
	}
	return nil
}
