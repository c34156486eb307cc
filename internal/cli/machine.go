package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

func newMachineCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "machine", Aliases: []string{"machines", "m"}, Short: "Manage machines"}
	var app, config string
	var asJSON bool
	path := func(name string, parts ...string) string { return appPath(name, "machines", parts...) }
	withApp := func(c *cobra.Command) *cobra.Command {
		appFlags(c, &app, &config)
		return c
	}

	var (
		runEnv     []string
		runPort    int
		runName    string
		runSize    string
		runMemory  int
		runDetach  bool
		runRegion  string
		runSched   string
		runRestart string
	)
	run := withApp(&cobra.Command{
		Use: "run IMAGE [COMMAND...]", Short: "Create and start a machine", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := &types.MachineConfig{Image: args[0], Env: map[string]string{}}
			if len(args) > 1 {
				cfg.Init.Cmd = args[1:]
			}
			if err := applyMachineFlags(cfg, runEnv, "", runSize, runMemory, runSched); err != nil {
				return err
			}
			if runRestart != "" {
				policy, ok := map[string]string{"no": types.RestartNo, "always": types.RestartAlways, "on-fail": types.RestartOnFailure, "on-failure": types.RestartOnFailure}[runRestart]
				if !ok {
					return &HintError{Err: fmt.Errorf("--restart %q", runRestart), Hint: "use --restart no, always or on-fail"}
				}
				cfg.Restart = &types.MachineRestart{Policy: policy}
			}
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			if runPort > 0 {
				cfg.Services = []types.MachineService{{Protocol: "tcp", InternalPort: runPort,
					Ports: []types.MachinePort{{Port: types.Ptr(80), Handlers: []string{"http"}}}}}
			}
			if _, err := c.App(cmd.Context(), name); isNotFound(err) {
				if _, err := c.CreateApp(cmd.Context(), name); err != nil {
					return err
				}
			}
			m, err := c.CreateMachine(cmd.Context(), name, types.CreateMachineRequest{Name: runName, Region: runRegion, Config: cfg})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Machine %s is %s (instance %s, private IP %s)\n", m.ID, m.State, m.InstanceID, m.PrivateIP)
			if m.NextRunAt != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Runs %s; next run at %s (list runs with `hangar machine list -a %s`)\n", cfg.Schedule, m.NextRunAt, name)
			}
			return nil
		},
	})
	run.Flags().StringArrayVarP(&runEnv, "env", "e", nil, "NAME=VALUE (repeatable)")
	run.Flags().IntVarP(&runPort, "port", "p", 0, "internal port to expose through the proxy")
	run.Flags().StringVar(&runName, "name", "", "machine name")
	run.Flags().StringVar(&runSize, "vm-size", "", "size preset, e.g. shared-cpu-1x")
	run.Flags().IntVar(&runMemory, "vm-memory", 0, "memory in MB")
	run.Flags().StringVarP(&runRegion, "region", "r", "", "region")
	run.Flags().StringVar(&runSched, "schedule", "", "run the machine once per interval: hourly, daily, weekly, monthly, or a 5-field cron expression (UTC; Hangar only)")
	run.Flags().StringVar(&runRestart, "restart", "", "restart policy: no, always or on-fail (default on-fail)")
	run.Flags().BoolVarP(&runDetach, "detach", "d", false, "return at once (machines always start detached)")

	list := withApp(&cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List machines", Args: cobra.NoArgs,
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
			return printMachines(cmd.OutOrStdout(), ms)
		},
	})
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	status := withApp(&cobra.Command{
		Use: "status ID", Short: "Show a machine", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			m, err := c.Machine(cmd.Context(), name, args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), m)
		},
	})

	var stopSignal string
	var stopTimeout time.Duration
	action := func(use, short, verb string) *cobra.Command {
		return withApp(&cobra.Command{
			Use: use + " ID...", Short: short, Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				name, c, err := appAndClient(app, config)
				if err != nil {
					return err
				}
				for _, id := range args {
					var body any
					if verb == "stop" {
						req := types.StopRequest{Signal: stopSignal}
						if stopTimeout > 0 {
							req.Timeout = types.DurationPtr(stopTimeout)
						}
						body = req
					}
					if err := c.do(cmd.Context(), "POST", path(name, id, verb), body, nil); err != nil {
						return fmt.Errorf("%s %s: %w", verb, id, err)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Machine %s: %s requested\n", id, verb)
				}
				return nil
			},
		})
	}
	start := action("start", "Start machines", "start")
	stop := action("stop", "Stop machines", "stop")
	stop.Flags().StringVarP(&stopSignal, "signal", "s", "", "signal to send (default: the machine's kill_signal)")
	stop.Flags().DurationVar(&stopTimeout, "timeout", 0, "wait this long before killing")

	var force bool
	destroy := withApp(&cobra.Command{
		Use: "destroy ID...", Aliases: []string{"rm"}, Short: "Destroy machines", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			for _, id := range args {
				q := ""
				if force {
					q = "?force=true"
				}
				if err := c.do(cmd.Context(), "DELETE", path(name, id)+q, nil, nil); err != nil {
					return &HintError{Err: fmt.Errorf("destroy %s: %w", id, err), Hint: "stop it first, or pass --force"}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Machine %s destroyed\n", id)
			}
			return nil
		},
	})
	destroy.Flags().BoolVarP(&force, "force", "f", false, "destroy even if running")
	cmd.AddCommand(run, list, status, start, stop, destroy, newMachineExecCmd())
	cmd.AddCommand(machineOpCmds(&app, &config)...)
	return cmd
}

// printMachines writes the machine list table; with scheduled machines
// among them, also their schedule, last and next run.
func printMachines(w io.Writer, ms []types.Machine) error {
	scheduled := false
	for _, m := range ms {
		scheduled = scheduled || (m.Config != nil && m.Config.Schedule != "")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "ID\tNAME\tSTATE\tREGION\tIMAGE\tIP\tCREATED"
	if scheduled {
		head += "\tSCHEDULE\tLAST RUN\tNEXT RUN"
	}
	fmt.Fprintln(tw, head)
	for _, m := range ms {
		img, sched := "", ""
		if m.Config != nil {
			img, sched = m.Config.Image, m.Config.Schedule
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", m.ID, m.Name, machineState(m), m.Region, img, m.PrivateIP, ago(m.CreatedAt))
		if scheduled {
			last, next := "-", "-"
			if m.LastRunAt != "" {
				last = ago(m.LastRunAt)
			}
			if m.NextRunAt != "" {
				next = m.NextRunAt
			}
			if sched == "" {
				sched = "-"
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s", sched, last, next)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Aliases: []string{"images"}, Short: "Manage images on the daemon"}
	var ref string
	imp := &cobra.Command{
		Use:   "import PATH",
		Short: "Import an OCI layout directory, OCI archive or docker-save tarball",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			p := args[0]
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				// An OCI layout directory: pack it as an OCI archive first.
				tmp, err := os.MkdirTemp("", "hangar-import-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				archive := filepath.Join(tmp, "layout.tar")
				if err := tarDir(p, archive); err != nil {
					return fmt.Errorf("pack %s: %w", p, err)
				}
				p = archive
			}
			img, err := c.UploadImage(cmd.Context(), p, ref)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Imported %s (%s)\n", img.Ref, img.Digest)
			return nil
		},
	}
	imp.Flags().StringVar(&ref, "ref", "", "name for the image (default: from the archive)")
	var asJSON bool
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List images", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			imgs, err := c.Images(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), imgs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REF\tDIGEST\tSIZE")
			for _, i := range imgs {
				fmt.Fprintf(tw, "%s\t%s\t%.1f MB\n", i.Ref, i.Digest, float64(i.Size)/1e6)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var insecure bool
	pull := &cobra.Command{
		Use: "pull REF", Short: "Pull an image from a registry onto the daemon", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			img, err := c.PullImage(cmd.Context(), types.PullImageRequest{Ref: args[0], Insecure: insecure})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Pulled %s (%s)\n", img.Ref, img.Digest)
			return nil
		},
	}
	pull.Flags().BoolVar(&insecure, "insecure", false, "allow a plain-HTTP registry")
	cmd.AddCommand(imp, list, pull)
	return cmd
}
