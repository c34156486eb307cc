package cli

import (
	"errors"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/types"
)

// appName resolves -a, else the app of ./fly.toml (or -c).
func appName(app, configPath string) (string, error) {
	if app != "" {
		return app, nil
	}
	if configPath == "" {
		configPath = "fly.toml"
	}
	if cfg, err := appconfig.Load(configPath); err == nil && cfg.AppName != "" {
		return cfg.AppName, nil
	}
	return "", &HintError{Err: errors.New("no app given"), Hint: "pass -a APP, or run where a fly.toml names the app"}
}

func appFlags(cmd *cobra.Command, app, config *string) {
	cmd.Flags().StringVarP(app, "app", "a", "", "app name")
	cmd.Flags().StringVarP(config, "config", "c", "", "path to fly.toml (to find the app name)")
}

func newAppsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apps", Short: "Manage apps"}
	var asJSON bool
	list := &cobra.Command{
		Use: "list", Short: "List apps", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			apps, err := c.Apps(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), apps)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tORG\tMACHINES\tCREATED")
			for _, a := range apps {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", a.Name, a.Organization.Slug, a.MachineCount, ago(a.CreatedAt))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	create := &cobra.Command{
		Use: "create NAME", Short: "Create an app", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			a, err := c.CreateApp(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "New app created: %s\n", a.Name)
			return nil
		},
	}
	var yes bool
	destroy := &cobra.Command{
		Use: "destroy NAME", Aliases: []string{"delete"}, Short: "Destroy an app and all its machines", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return &HintError{Err: fmt.Errorf("destroying %s removes all its machines and releases", args[0]), Hint: "pass --yes to confirm"}
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			if err := c.DeleteApp(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Destroyed app %s\n", args[0])
			return nil
		},
	}
	destroy.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.AddCommand(list, create, destroy)
	return cmd
}

// StatusOutput is `hangar status --json`.
type StatusOutput struct {
	App      types.App       `json:"app"`
	URL      string          `json:"url"`
	Machines []types.Machine `json:"machines"`
	// Disk is the daemon's data dir's disk.
	Disk *types.DiskState `json:"disk,omitempty"`
}

func newStatusCmd() *cobra.Command {
	var app, config string
	var asJSON bool
	cmd := &cobra.Command{
		Use: "status", Short: "Show an app's machines, their state and checks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			var st StatusOutput
			if err := c.do(cmd.Context(), "GET", "/v1/apps/"+url.PathEscape(name), nil, &st.App); err != nil {
				return err
			}
			if err := c.do(cmd.Context(), "GET", "/v1/apps/"+url.PathEscape(name)+"/machines", nil, &st.Machines); err != nil {
				return err
			}
			var info types.Info
			if err := c.do(cmd.Context(), "GET", "/v1/info", nil, &info); err != nil {
				return err
			}
			st.URL = appURL(name, info)
			st.Disk = info.Disk
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "App\n  Name     = %s\n  Owner    = %s\n  URL      = %s\n\n", st.App.Name, st.App.Organization.Slug, st.URL)
			if d := st.Disk; d != nil && d.Full {
				fmt.Fprintf(out, "Warning: the daemon's disk is full (%s: %d MB free of %d MB): machines keep running and serving, but images, logs and volumes cannot grow; free space on it\n\n",
					d.Path, d.FreeBytes>>20, d.TotalBytes>>20)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PROCESS\tID\tVERSION\tREGION\tSTATE\tCHECKS\tIP\tUPDATED")
			for _, m := range st.Machines {
				group, version := "", ""
				if m.Config != nil {
					group, version = m.Config.Metadata[types.MetaProcessGroup], m.Config.Metadata[types.MetaRelease]
				}
				pass, total := 0, len(m.Checks)
				for _, ch := range m.Checks {
					if ch.Status == types.CheckPassing {
						pass++
					}
				}
				checks := fmt.Sprintf("%d/%d", pass, total)
				if total == 0 {
					checks = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", group, m.ID, version, m.Region, machineState(m), checks, m.PrivateIP, ago(m.UpdatedAt))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, m := range st.Machines {
				if m.HostNote != "" {
					fmt.Fprintf(out, "  %s: %s\n", m.ID, m.HostNote)
				}
				for _, ch := range m.Checks {
					if ch.Status != types.CheckPassing {
						fmt.Fprintf(out, "  %s %s: %s: %s\n", m.ID, ch.Name, ch.Status, ch.Output)
					}
				}
			}
			return nil
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// appAndClient resolves the app (-a, else fly.toml) and connects to the
// daemon: the start of every per-app command.
func appAndClient(app, config string) (string, *client, error) {
	name, err := appName(app, config)
	if err != nil {
		return "", nil, err
	}
	c, err := newClient()
	if err != nil {
		return "", nil, err
	}
	return name, c, nil
}
