package cli

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

func newVolumesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "volumes",
		Aliases: []string{"volume", "vol"},
		Short:   "Manage volumes: size-limited filesystems attached to one machine, with snapshots",
	}
	var app, config string
	var asJSON bool
	path := func(name string, parts ...string) string { return appPath(name, "volumes", parts...) }
	withApp := func(c *cobra.Command) *cobra.Command {
		appFlags(c, &app, &config)
		return c
	}
	jsonFlag := func(c *cobra.Command) *cobra.Command {
		c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
		return c
	}
	clientFor := func() (*client, string, error) {
		name, err := appName(app, config)
		if err != nil {
			return nil, "", err
		}
		c, err := newClient()
		return c, name, err
	}

	var (
		size, sizeMB, retention int
		region, snapshotID      string
		sourceVolume            string
		scheduled               bool
	)
	create := withApp(&cobra.Command{
		Use: "create NAME", Short: "Create a volume (empty, --snapshot-id to restore, --source-volume-id to fork)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, name, err := clientFor()
			if err != nil {
				return err
			}
			req := types.CreateVolumeRequest{Name: args[0], Region: region, SizeGB: size, SizeMB: sizeMB, SnapshotID: snapshotID, SourceVolumeID: sourceVolume}
			if cmd.Flags().Changed("snapshot-retention") {
				req.SnapshotRetention = &retention
			}
			if cmd.Flags().Changed("scheduled-snapshots") {
				req.AutoBackupEnabled = &scheduled
			}
			v, err := c.CreateVolume(cmd.Context(), name, req)
			if err != nil {
				return volumeHint(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			return printVolume(cmd.OutOrStdout(), v)
		},
	})
	create.Flags().IntVarP(&size, "size", "s", 0, "size in GB (default 1, or the source's size)")
	create.Flags().IntVar(&sizeMB, "size-mb", 0, "size in MB (Hangar; for small test volumes)")
	create.Flags().StringVarP(&region, "region", "r", "", "region (default: the answering host's); the volume is made on a host of that region, which its machine will run on")
	create.Flags().IntVar(&retention, "snapshot-retention", types.DefaultSnapshotRetention, "days to keep snapshots")
	create.Flags().BoolVar(&scheduled, "scheduled-snapshots", true, "take a snapshot every day")
	create.Flags().StringVar(&snapshotID, "snapshot-id", "", "restore this snapshot into the new volume")
	create.Flags().StringVar(&sourceVolume, "source-volume-id", "", "fork this volume (a consistent copy)")
	jsonFlag(create)

	list := jsonFlag(withApp(&cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List volumes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, name, err := clientFor()
			if err != nil {
				return err
			}
			vs, err := c.Volumes(cmd.Context(), name)
			if err != nil {
				return volumeHint(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, vs)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tNAME\tSIZE\tREGION\tATTACHED VM\tUSED\tCREATED AT")
			for i := range vs {
				v := &vs[i]
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.State, v.Name, sizeOf(v), v.Region, attached(v), used(v), ago(v.CreatedAt))
			}
			return tw.Flush()
		},
	}))

	show := jsonFlag(withApp(&cobra.Command{
		Use: "show ID", Short: "Show a volume", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, name, err := clientFor()
			if err != nil {
				return err
			}
			v, err := c.Volume(cmd.Context(), name, args[0])
			if err != nil {
				return volumeHint(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			return printVolume(cmd.OutOrStdout(), v)
		},
	}))

	var extSize, extSizeMB int
	extend := jsonFlag(withApp(&cobra.Command{
		Use: "extend ID", Short: "Grow a volume (online; volumes never shrink)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, name, err := clientFor()
			if err != nil {
				return err
			}
			if extSize <= 0 && extSizeMB <= 0 {
				return &HintError{Err: fmt.Errorf("no size given"), Hint: "pass the new size: hangar volumes extend " + args[0] + " --size 10"}
			}
			var res types.ExtendVolumeResponse
			if err := c.do(cmd.Context(), "PUT", path(name, args[0], "extend"), map[string]int{"size_gb": extSize, "size_mb": extSizeMB}, &res); err != nil {
				return volumeHint(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, res)
			}
			if err := printVolume(out, res.Volume); err != nil {
				return err
			}
			if res.NeedsRestart {
				fmt.Fprintf(out, "The filesystem grows when its machine restarts: hangar machine restart %s\n", attached(res.Volume))
			} else {
				fmt.Fprintln(out, "The filesystem was grown online; no restart needed")
			}
			return nil
		},
	}))
	extend.Flags().IntVarP(&extSize, "size", "s", 0, "new size in GB")
	extend.Flags().IntVar(&extSizeMB, "size-mb", 0, "new size in MB (Hangar)")

	destroy := jsonFlag(withApp(&cobra.Command{
		Use: "destroy ID", Aliases: []string{"delete", "rm"}, Short: "Destroy a volume no machine holds (its snapshots stay until they expire)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, name, err := clientFor()
			if err != nil {
				return err
			}
			v, err := c.DestroyVolume(cmd.Context(), name, args[0])
			if err != nil {
				return volumeHint(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Destroyed volume %s (%s)\n", v.ID, v.Name)
			return nil
		},
	}))
	_ = destroy.Flags().BoolP("yes", "y", false, "do not ask (there is no prompt)")

	snaps := &cobra.Command{Use: "snapshots", Aliases: []string{"snapshot", "snaps"}, Short: "Manage volume snapshots"}
	slist := jsonFlag(withApp(&cobra.Command{
		Use: "list VOLUME_ID", Aliases: []string{"ls"}, Short: "List a volume's snapshots", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, name, err := clientFor()
			if err != nil {
				return err
			}
			ss, err := c.Snapshots(cmd.Context(), name, args[0])
			if err != nil {
				return volumeHint(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, ss)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tSIZE\tSTORED\tFROZEN\tCREATED AT\tEXPIRES")
			for _, s := range ss {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%dms\t%s\t%s\n", s.ID, s.Type, bytesOf(s.Size), bytesOf(s.StoredSize), s.FrozenMS, ago(s.CreatedAt), s.ExpiresAt)
			}
			return tw.Flush()
		},
	}))
	screate := jsonFlag(withApp(&cobra.Command{
		Use: "create VOLUME_ID", Short: "Snapshot a volume now (the filesystem is frozen while it is cut)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, name, err := clientFor()
			if err != nil {
				return err
			}
			s, err := c.CreateSnapshot(cmd.Context(), name, args[0])
			if err != nil {
				return volumeHint(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), s)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Snapshot %s of volume %s: %s stored as %s, filesystem frozen %d ms\nRestore it with: hangar volumes create NAME --snapshot-id %s -a %s\n",
				s.ID, s.VolumeID, bytesOf(s.Size), bytesOf(s.StoredSize), s.FrozenMS, s.ID, name)
			return nil
		},
	}))
	snaps.AddCommand(slist, screate)
	cmd.AddCommand(create, list, show, extend, destroy, snaps)
	return cmd
}

func sizeOf(v *types.Volume) string {
	if v.SizeMB%1024 == 0 {
		return fmt.Sprintf("%dGB", v.SizeMB/1024)
	}
	return fmt.Sprintf("%dMB", v.SizeMB)
}

func attached(v *types.Volume) string {
	if v.AttachedMachineID == nil {
		return ""
	}
	return *v.AttachedMachineID
}

func used(v *types.Volume) string {
	if v.Blocks == 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", 100*(v.Blocks-v.BlocksAvail)/v.Blocks)
}

func bytesOf(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func printVolume(w io.Writer, v *types.Volume) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rows := [][2]string{
		{"ID", v.ID}, {"Name", v.Name}, {"App", v.App}, {"State", v.State}, {"Size", sizeOf(v)},
		{"Used", used(v)}, {"Region", v.Region}, {"Filesystem", v.FSType},
		{"Attached VM", attached(v)}, {"Mounted at", v.AttachedMountPoint},
		{"Snapshot retention", fmt.Sprintf("%d days", v.SnapshotRetention)},
		{"Scheduled snapshots", fmt.Sprint(v.AutoBackupEnabled)}, {"Created at", v.CreatedAt},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

func volumeHint(err error) error {
	var ae *apiError
	if isNotFound(err) {
		return &HintError{Err: err, Hint: "list volumes and snapshots with `hangar volumes list` and `hangar volumes snapshots list VOLUME_ID`"}
	}
	if errors.As(err, &ae) && ae.Status == 409 {
		return &HintError{Err: err, Hint: "a volume attaches to one machine at a time; see `hangar volumes list` for which machine holds it"}
	}
	return err
}
