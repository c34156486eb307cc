package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hangar-dev/hangar/internal/pg"
	"github.com/hangar-dev/hangar/internal/types"
)

// Backups of a Hangar Postgres with pgBackRest (internal/pg/backup.go):
// `pg create` makes the cluster's repository machine and takes a first
// full backup; `pg backup create|list`; `pg restore` makes a new cluster
// from a backup and the archived WAL, to a point in time.

// pgBackupFlags are `pg create`'s backup flags.
type pgBackupFlags struct {
	off                      bool
	schedule                 string
	retention                int
	volumeMB                 int
	s3Endpoint, s3Bucket     string
	s3Region                 string
	s3NoVerifyTLS            bool
	restoreFrom, restoreRepo string
}

func (f *pgBackupFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.off, "no-backup", false, "no backups and no WAL archiving (no repository machine)")
	fs.StringVar(&f.schedule, "backup-schedule", pg.DefaultBackupSchedule.String(), `scheduled backups: "full=24h,diff=1h" (a kind "off", or "off" for none)`)
	fs.IntVar(&f.retention, "backup-retention", 7, "full backups to keep (pgBackRest's repo1-retention-full)")
	fs.IntVar(&f.volumeMB, "backup-volume-size-mb", 0, "the repository volume's size in MB (default: twice a member's volume)")
	fs.StringVar(&f.s3Endpoint, "backup-s3-endpoint", "", "keep the repository in this S3-compatible endpoint (host[:port], HTTPS) instead of a volume; keys from $"+pg.SecretS3Key+" and $"+pg.SecretS3KeySecret+", stored as secrets")
	fs.StringVar(&f.s3Bucket, "backup-s3-bucket", "", "the S3 bucket")
	fs.StringVar(&f.s3Region, "backup-s3-region", "", "the S3 region")
	fs.BoolVar(&f.s3NoVerifyTLS, "backup-s3-no-verify-tls", false, "accept any certificate of the S3 endpoint (a local S3 with a self-signed one)")
}

// pgBackupPlan is what create does for backups.
type pgBackupPlan struct {
	opts     *pg.BackupOptions // nil: no backups
	restore  *pgRestoreSpec
	volumeMB int
	s3Keys   map[string]*string
	repoCert []byte
}

// pgRestoreSpec is a restore `pg restore` asks `pg create` for.
type pgRestoreSpec struct {
	from, fromRepo string // the source cluster and its repository machine
	target         time.Time
}

type pgRestoreKey struct{}

// plan checks the flags; it makes nothing.
func (f *pgBackupFlags) plan(ctx context.Context, memberMB int) (*pgBackupPlan, error) {
	p := &pgBackupPlan{}
	if r, ok := ctx.Value(pgRestoreKey{}).(*pgRestoreSpec); ok {
		p.restore = r
	}
	if f.off {
		if p.restore != nil {
			return nil, &HintError{Err: errors.New("a restored cluster needs its repository"), Hint: "leave out --no-backup"}
		}
		return p, nil
	}
	sched, err := pg.ParseBackupSchedule(f.schedule)
	if err != nil {
		return nil, &HintError{Err: err, Hint: `use --backup-schedule "full=24h,diff=1h" (Go durations, at least 1m; "off" for none)`}
	}
	if f.retention < 1 || f.retention > 9999999 {
		return nil, &HintError{Err: fmt.Errorf("--backup-retention %d", f.retention), Hint: "keep at least 1 full backup"}
	}
	o := &pg.BackupOptions{RetentionFull: f.retention, Schedule: sched}
	if f.s3Endpoint != "" || f.s3Bucket != "" || f.s3Region != "" {
		if p.restore != nil {
			return nil, &HintError{Err: errors.New("a restored cluster keeps its repository on a volume"), Hint: "leave out the --backup-s3-* flags"}
		}
		s3 := &pg.S3Options{Endpoint: f.s3Endpoint, Bucket: f.s3Bucket, Region: f.s3Region, VerifyTLS: !f.s3NoVerifyTLS}
		if err := s3.Validate(); err != nil {
			return nil, &HintError{Err: err, Hint: "pass --backup-s3-endpoint, --backup-s3-bucket and --backup-s3-region together"}
		}
		key, secret := os.Getenv(pg.SecretS3Key), os.Getenv(pg.SecretS3KeySecret)
		if key == "" || secret == "" {
			return nil, &HintError{Err: errors.New("no S3 credentials"), Hint: "export " + pg.SecretS3Key + " and " + pg.SecretS3KeySecret + " (they are stored as the app's secrets, never in a file or on a command line)"}
		}
		p.s3Keys = map[string]*string{pg.SecretS3Key: &key, pg.SecretS3KeySecret: &secret}
		o.S3 = s3
	}
	p.opts = o
	p.volumeMB = f.volumeMB
	if p.volumeMB == 0 {
		p.volumeMB = 2 * memberMB
	}
	if p.volumeMB < 64 && o.S3 == nil {
		return nil, &HintError{Err: fmt.Errorf("a repository volume of %d MB is too small", p.volumeMB), Hint: "use --backup-volume-size-mb 64 or more"}
	}
	return p, nil
}

// options are the members' backup and restore options.
func (p *pgBackupPlan) options() (*pg.BackupOptions, *pg.RestoreOptions) {
	if p.restore == nil {
		return p.opts, nil
	}
	return p.opts, &pg.RestoreOptions{From: p.restore.from, Target: p.restore.target}
}

// storeSecrets makes the repository machine's certificate and stores its
// key (and the S3 keys) as the app's secrets.
func (p *pgBackupPlan) storeSecrets(ctx context.Context, c *client, app string, caCert, caKey []byte, now time.Time) error {
	if p.opts == nil {
		return nil
	}
	cert, key, err := pg.NewServerCert(caCert, caKey, pg.BackupNames(app), now)
	if err != nil {
		return fmt.Errorf("make the backup repository's certificate: %w", err)
	}
	p.repoCert = cert
	k := string(key)
	values := map[string]*string{pg.SecretBackupKey: &k}
	for n, v := range p.s3Keys {
		values[n] = v
	}
	if _, err := c.setSecrets(ctx, app, values); err != nil {
		return fmt.Errorf("store the backup repository's secrets: %w", err)
	}
	return nil
}

// createRepo makes the repository machine (and its volume), waits for it
// to start and, for a restore, copies the source's stanza into it.
func (p *pgBackupPlan) createRepo(ctx context.Context, w io.Writer, c *client, app, imageRef string, guest types.MachineGuest, region string, caCert []byte) error {
	if p.opts == nil {
		return nil
	}
	volID := ""
	if p.opts.S3 == nil {
		fmt.Fprintf(w, "Creating the backup repository: volume %s (%d MB) and machine\n", pg.BackupVolume, p.volumeMB)
		vol, err := c.CreateVolume(ctx, app, types.CreateVolumeRequest{Name: pg.BackupVolume, Region: region, SizeMB: p.volumeMB})
		if err != nil {
			return fmt.Errorf("the backup repository's volume: %w", err)
		}
		volID = vol.ID
	} else {
		fmt.Fprintf(w, "Creating the backup repository machine (repository in s3://%s at %s)\n", p.opts.S3.Bucket, p.opts.S3.Endpoint)
	}
	cfg := pg.RepoMachineConfig(app, *p.opts, imageRef, guest, volID, p.repoCert, caCert)
	m, err := c.CreateMachine(ctx, app, types.CreateMachineRequest{Region: region, Config: cfg})
	if err != nil {
		return fmt.Errorf("the backup repository's machine: %w", err)
	}
	if err := pgWaitStarted(ctx, c, app, m.ID, 2*time.Minute); err != nil {
		return err
	}
	if p.opts.S3 != nil {
		if _, err := pgBackupCtl(ctx, c, app, m.ID, "repo-check"); err != nil {
			return &HintError{Err: fmt.Errorf("the S3 repository of %s: %w", app, err), Hint: pgBackupHint(err, p.opts)}
		}
	}
	if p.restore != nil {
		fmt.Fprintf(w, "Copying %s's backups and WAL archive into %s's repository\n", p.restore.from, app)
		if err := pgCopyStanza(ctx, c, p.restore.from, p.restore.fromRepo, app, m.ID); err != nil {
			return err
		}
	}
	return nil
}

// init creates the cluster's stanza and takes its first full backup.
func (p *pgBackupPlan) init(ctx context.Context, w io.Writer, c *client, app string) error {
	if p.opts == nil {
		return nil
	}
	fmt.Fprintf(w, "Creating the backup stanza and taking a first full backup\n")
	repo, err := pgRepoMachine(ctx, c, app)
	if err != nil {
		return err
	}
	if _, err := pgBackupCtl(ctx, c, app, repo.ID, "init"); err != nil {
		return &HintError{Err: fmt.Errorf("the first backup of %s: %w", app, err), Hint: pgBackupHint(err, p.opts)}
	}
	return nil
}

// pgBackupHint says what to check when pgBackRest failed.
func pgBackupHint(err error, o *pg.BackupOptions) string {
	s := err.Error()
	switch {
	case o != nil && o.S3 != nil && (strings.Contains(s, "403") || strings.Contains(s, "Forbidden")):
		return "the S3 endpoint refused the credentials (403): check " + pg.SecretS3Key + " and " + pg.SecretS3KeySecret + ", the bucket and the region"
	case o != nil && o.S3 != nil:
		return "check the S3 endpoint, bucket, region and credentials (--backup-s3-*)"
	}
	return "see `hangar logs` of the database app (its backup machine and the primary)"
}

// pgWaitStarted waits until a machine is started.
func pgWaitStarted(ctx context.Context, c *client, app, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ms, err := c.Machines(ctx, app)
		if err == nil {
			for _, m := range ms {
				if m.ID == id && m.State == types.StateStarted {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return &HintError{Err: fmt.Errorf("machine %s of %s did not start within %s", id, app, timeout), Hint: "see `hangar logs -a " + app + "`"}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// pgCopyStanza streams the source repository's stanza (its backups and
// WAL archive) into the new cluster's repository, machine console to
// machine console: the clusters share nothing afterwards.
func pgCopyStanza(ctx context.Context, c *client, from, fromRepo, to, toRepo string) error {
	// The repository directory is there (made by the machine's start
	// script) and the helper's user can write to it.
	deadline := time.Now().Add(time.Minute)
	for {
		code, err := c.console(ctx, to, toRepo, consoleOptions{command: []string{"test", "-w", pg.BackupMount + "/repo"}, user: "postgres", stdout: io.Discard, stderr: io.Discard})
		if err == nil && code == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's repository directory is not ready (%d %v): see `hangar logs -a %s`", to, code, err, to)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	var srcErr bytes.Buffer
	src := make(chan error, 1)
	go func() {
		code, err := c.console(ctx, from, fromRepo, consoleOptions{
			command: []string{"tar", "-C", pg.BackupMount + "/repo", "-cf", "-", "backup/" + from, "archive/" + from},
			user:    "postgres", stdout: w, stderr: &srcErr,
		})
		w.Close()
		if err == nil && code != 0 {
			err = fmt.Errorf("tar exited %d: %s", code, strings.TrimSpace(srcErr.String()))
		}
		src <- err
	}()
	var dstErr bytes.Buffer
	code, err := c.console(ctx, to, toRepo, consoleOptions{
		command: []string{"tar", "-C", pg.BackupMount + "/repo", "-xf", "-"},
		user:    "postgres", stdin: r, stdout: io.Discard, stderr: &dstErr,
	})
	// A reader that ended early must not leave the source writing into a
	// full pipe.
	r.Close()
	if err != nil || code != 0 {
		cancel()
	}
	if serr := <-src; serr != nil && err == nil && code == 0 {
		return fmt.Errorf("read %s's repository: %w", from, serr)
	}
	if err == nil && code != 0 {
		err = fmt.Errorf("tar exited %d: %s", code, strings.TrimSpace(dstErr.String()))
	}
	if err != nil {
		return fmt.Errorf("write %s's repository: %w", to, err)
	}
	return nil
}

// pgRepoMachine is the database app's backup repository machine, with
// errors that say why there is none.
func pgRepoMachine(ctx context.Context, c *client, app string) (*types.Machine, error) {
	ms, err := c.Machines(ctx, app)
	if err != nil {
		if isNotFound(err) {
			return nil, &HintError{Err: fmt.Errorf("no database %s", app), Hint: "see `hangar apps list`; create one with `hangar pg create --name " + app + "`"}
		}
		return nil, err
	}
	isPg := false
	for i := range ms {
		if ms[i].Config == nil {
			continue
		}
		if ms[i].Config.Metadata["hangar_pg_backup"] == app {
			if ms[i].State != types.StateStarted {
				return nil, &HintError{Err: fmt.Errorf("the backup repository machine %s of %s is %s", ms[i].ID, app, ms[i].State),
					Hint: "start it with `hangar machine start " + ms[i].ID + " -a " + app + "`"}
			}
			return &ms[i], nil
		}
		isPg = isPg || ms[i].Config.Metadata["role"] == pgRoleKey
	}
	if isPg {
		return nil, &HintError{Err: fmt.Errorf("the Hangar Postgres %s has no backup repository", app), Hint: "it was made with --no-backup (or before backups existed); `hangar pg restore` and backups need a cluster made with backups"}
	}
	return nil, &HintError{Err: fmt.Errorf("%s is not a Hangar Postgres app (no machine with role %s)", app, pgRoleKey), Hint: "backups are for databases made by `hangar pg create --name DB`"}
}

// pgBackupCtl runs the repository machine's helper (pg.BackupCtl).
func pgBackupCtl(ctx context.Context, c *client, app, id string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	code, err := c.console(ctx, app, id, consoleOptions{command: append([]string{"python3", pg.BackupCtl}, args...), user: "postgres", stdout: &out, stderr: &errb})
	if err != nil {
		return "", err
	}
	if code != 0 {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return "", fmt.Errorf("%s", msg)
	}
	return strings.TrimSpace(out.String()), nil
}

// pgBackrestInfo is what the helper's info prints: pgBackRest's info
// and the helper's record of successes and failures.
type pgBackrestInfo struct {
	Info  []pgStanzaInfo `json:"info"`
	State struct {
		Failures    int `json:"failures"`
		LastSuccess *struct {
			Time float64 `json:"time"`
			Type string  `json:"type"`
		} `json:"last_success"`
		LastFailure *struct {
			Time  float64 `json:"time"`
			Type  string  `json:"type"`
			Error string  `json:"error"`
		} `json:"last_failure"`
	} `json:"state"`
}

type pgStanzaInfo struct {
	Name    string         `json:"name"`
	Backups []pgBackupInfo `json:"backup"`
	Archive []struct {
		ID  string  `json:"id"`
		Min *string `json:"min"`
		Max *string `json:"max"`
	} `json:"archive"`
	Status struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
}

type pgBackupInfo struct {
	Label     string `json:"label"`
	Type      string `json:"type"`
	Error     bool   `json:"error"`
	Timestamp struct {
		Start int64 `json:"start"`
		Stop  int64 `json:"stop"`
	} `json:"timestamp"`
	Info struct {
		Size       int64 `json:"size"`
		Repository struct {
			Size int64 `json:"size"`
		} `json:"repository"`
	} `json:"info"`
}

// pgBackups reads the repository's info for the app's stanza.
func pgBackups(ctx context.Context, c *client, app string) (*pgBackrestInfo, *pgStanzaInfo, error) {
	repo, err := pgRepoMachine(ctx, c, app)
	if err != nil {
		return nil, nil, err
	}
	out, err := pgBackupCtl(ctx, c, app, repo.ID, "info")
	if err != nil {
		return nil, nil, &HintError{Err: fmt.Errorf("read %s's backups: %w", app, err), Hint: pgBackupHint(err, nil)}
	}
	var bi pgBackrestInfo
	if err := json.Unmarshal([]byte(out), &bi); err != nil {
		return nil, nil, fmt.Errorf("%s's backup info: %w (%q)", app, err, out)
	}
	for i := range bi.Info {
		if bi.Info[i].Name == app {
			sort.Slice(bi.Info[i].Backups, func(a, b int) bool {
				return bi.Info[i].Backups[a].Timestamp.Stop < bi.Info[i].Backups[b].Timestamp.Stop
			})
			return &bi, &bi.Info[i], nil
		}
	}
	return &bi, &pgStanzaInfo{Name: app}, nil
}

func newPgBackupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up a Hangar Postgres (pgBackRest, to the cluster's repository)",
	}
	cmd.AddCommand(newPgBackupCreateCmd(), newPgBackupListCmd())
	return cmd
}

func newPgBackupCreateCmd() *cobra.Command {
	var app, config, kind string
	cmd := &cobra.Command{
		Use:   "create -a DB",
		Short: "Take a backup now: full, diff (changes since the last full) or incr (since the last backup)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kind != "full" && kind != "diff" && kind != "incr" {
				return &HintError{Err: fmt.Errorf("--type %q", kind), Hint: "use full, diff or incr"}
			}
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			repo, err := pgRepoMachine(ctx, c, name)
			if err != nil {
				return err
			}
			start := time.Now()
			if _, err := pgBackupCtl(ctx, c, name, repo.ID, "backup", kind); err != nil {
				return &HintError{Err: fmt.Errorf("%s backup of %s: %w", kind, name, err), Hint: pgBackupHint(err, nil)}
			}
			_, st, err := pgBackups(ctx, c, name)
			if err != nil {
				return err
			}
			if n := len(st.Backups); n > 0 {
				b := st.Backups[n-1]
				fmt.Fprintf(cmd.OutOrStdout(), "Backup %s (%s) of %s done in %s: %s of data, %s in the repository.\n", b.Label, b.Type, name,
					time.Since(start).Round(100*time.Millisecond), humanBytes(b.Info.Size), humanBytes(b.Info.Repository.Size))
			}
			return nil
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().StringVar(&kind, "type", "full", "full, diff or incr")
	return cmd
}

func newPgBackupListCmd() *cobra.Command {
	var app, config string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list -a DB",
		Short: "List a Hangar Postgres' backups (pgBackRest's info)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			bi, st, err := pgBackups(cmd.Context(), c, name)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), bi.Info)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "LABEL\tTYPE\tSTARTED\tENDED\tSIZE\tIN REPOSITORY")
			for _, b := range st.Backups {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Label, b.Type, pgUnix(b.Timestamp.Start), pgUnix(b.Timestamp.Stop), humanBytes(b.Info.Size), humanBytes(b.Info.Repository.Size))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			for _, a := range st.Archive {
				if a.Min != nil && a.Max != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "WAL archive (%s): %s … %s\n", a.ID, *a.Min, *a.Max)
				}
			}
			if len(st.Backups) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "No backups yet (%s). Take one with `hangar pg backup create -a %s`.\n", st.Status.Message, name)
			}
			return nil
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print pgBackRest's info as JSON")
	return cmd
}

func pgUnix(s int64) string { return time.Unix(s, 0).UTC().Format(time.RFC3339) }

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return strconv.FormatInt(n, 10) + " B"
}

// pgParseTime reads a restore target: RFC 3339, or a date and time in
// UTC ("2026-01-02 15:04:05").
func pgParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04:05Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: use RFC 3339 (2026-01-02T15:04:05Z) or a UTC date and time (2026-01-02 15:04:05)", s)
}

func newPgRestoreCmd() *cobra.Command {
	var to, at, vmSize, region, schedule string
	var size, volumeMB, retention int
	cmd := &cobra.Command{
		Use:   "restore DB --to NEW --time T",
		Short: "Restore a Hangar Postgres as it was at a point in time into a new cluster (the old one keeps running)",
		Long: `Make a new Hangar Postgres cluster NEW from DB's backups and WAL archive as
of --time: the latest backup before that time is restored into NEW's first
member and PostgreSQL replays the archived WAL up to the time, then NEW
becomes a cluster of its own (its own passwords, repository and backups).
DB's backups and archive are copied into NEW's repository; DB keeps running.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			from := args[0]
			if to == "" {
				return &HintError{Err: errors.New("no name for the restored cluster"), Hint: "pass --to NEW (a new app)"}
			}
			if to == from {
				return &HintError{Err: fmt.Errorf("cannot restore %s into itself", from), Hint: "restore into a new cluster: --to NEW"}
			}
			if at == "" {
				return &HintError{Err: errors.New("no --time"), Hint: "pass --time 2026-01-02T15:04:05Z (see `hangar pg backup list -a " + from + "`)"}
			}
			target, err := pgParseTime(at)
			if err != nil {
				return &HintError{Err: err, Hint: "pass the time to restore to"}
			}
			if target.After(time.Now()) {
				return &HintError{Err: fmt.Errorf("%s is in the future", target.UTC().Format(time.RFC3339)), Hint: "restore to a time that has passed"}
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			if _, err := c.App(ctx, to); err == nil {
				return &HintError{Err: fmt.Errorf("an app named %s already exists", to), Hint: "choose another --to, or `hangar apps destroy " + to + "` first"}
			} else if !isNotFound(err) {
				return err
			}
			repo, err := pgRepoMachine(ctx, c, from)
			if err != nil {
				return err
			}
			_, st, err := pgBackups(ctx, c, from)
			if err != nil {
				return err
			}
			var first *pgBackupInfo
			for i := range st.Backups {
				if !st.Backups[i].Error {
					first = &st.Backups[i]
					break
				}
			}
			if first == nil {
				return &HintError{Err: fmt.Errorf("%s has no backup to restore", from), Hint: "take one with `hangar pg backup create -a " + from + "`"}
			}
			if !target.After(time.Unix(first.Timestamp.Stop, 0)) {
				return &HintError{Err: fmt.Errorf("%s is before the first backup of %s (%s ended at %s)", target.UTC().Format(time.RFC3339), from, first.Label, pgUnix(first.Timestamp.Stop)),
					Hint: "restore to a later time; `hangar pg backup list -a " + from + "` lists the backups"}
			}
			// WAL written until now is archived before the copy, so the
			// target is reachable.
			fmt.Fprintf(cmd.ErrOrStderr(), "Archiving %s's current WAL\n", from)
			if _, err := pgBackupCtl(ctx, c, from, repo.ID, "check"); err != nil {
				return &HintError{Err: fmt.Errorf("archive %s's current WAL: %w", from, err), Hint: "its WAL archiving fails: see `hangar pg status -a " + from + "`"}
			}
			create := newPgCreateCmd()
			cargs := []string{"--name", to, "--initial-cluster-size", strconv.Itoa(size), "--vm-size", vmSize,
				"--backup-schedule", schedule, "--backup-retention", strconv.Itoa(retention)}
			if volumeMB > 0 {
				cargs = append(cargs, "--volume-size-mb", strconv.Itoa(volumeMB))
			}
			if region != "" {
				cargs = append(cargs, "--region", region)
			}
			create.SetArgs(cargs)
			create.SetOut(cmd.OutOrStdout())
			create.SetErr(cmd.ErrOrStderr())
			create.SilenceUsage, create.SilenceErrors = true, true
			rctx := context.WithValue(ctx, pgRestoreKey{}, &pgRestoreSpec{from: from, fromRepo: repo.ID, target: target})
			fmt.Fprintf(cmd.ErrOrStderr(), "Restoring %s as of %s into a new cluster %s\n", from, target.UTC().Format(time.RFC3339Nano), to)
			if err := create.ExecuteContext(rctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\n%s is %s as of %s (%s keeps running).\n", to, from, target.UTC().Format(time.RFC3339Nano), from)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the new cluster's name (a new app)")
	f.StringVar(&at, "time", "", "the point in time to restore to (RFC 3339)")
	f.IntVar(&size, "initial-cluster-size", 1, "members of the new cluster")
	f.IntVar(&volumeMB, "volume-size-mb", 0, "a member's volume size in MB (default: 1 GB)")
	f.StringVar(&vmSize, "vm-size", "shared-cpu-1x", "machine size")
	f.StringVarP(&region, "region", "r", "", "region (default: the daemon's)")
	f.StringVar(&schedule, "backup-schedule", pg.DefaultBackupSchedule.String(), "the new cluster's backup schedule")
	f.IntVar(&retention, "backup-retention", 7, "the new cluster's full backups to keep")
	return cmd
}

// pgBackupStatus is the backup part of `pg status`.
type pgBackupStatus struct {
	LastBackup *struct {
		Label string    `json:"label"`
		Type  string    `json:"type"`
		Ended time.Time `json:"ended"`
		Size  int64     `json:"size"`
	} `json:"last_backup,omitempty"`
	Backups        int       `json:"backups"`
	Failures       int       `json:"failures"`
	LastFailure    string    `json:"last_failure,omitempty"`
	LastFailureAt  time.Time `json:"last_failure_at,omitempty"`
	ArchivedWAL    string    `json:"last_archived_wal,omitempty"`
	ArchivedAt     string    `json:"last_archived_at,omitempty"`
	ArchiveFails   int       `json:"archive_failed_count"`
	ArchiveFailWAL string    `json:"last_failed_wal,omitempty"`
	ArchiveFailAt  string    `json:"last_failed_at,omitempty"`
	Error          string    `json:"error,omitempty"`
}

// pgStatusBackup reads the backups' state and the primary's archiver's;
// nil when the cluster has no repository.
func pgStatusBackup(ctx context.Context, c *client, app, primary string) *pgBackupStatus {
	if _, err := pgRepoMachine(ctx, c, app); err != nil {
		var he *HintError
		if errors.As(err, &he) && strings.Contains(he.Err.Error(), "no backup repository") {
			return nil
		}
		return &pgBackupStatus{Error: err.Error()}
	}
	s := &pgBackupStatus{}
	bi, st, err := pgBackups(ctx, c, app)
	if err != nil {
		s.Error = err.Error()
	} else {
		s.Backups = len(st.Backups)
		if n := len(st.Backups); n > 0 {
			b := st.Backups[n-1]
			s.LastBackup = &struct {
				Label string    `json:"label"`
				Type  string    `json:"type"`
				Ended time.Time `json:"ended"`
				Size  int64     `json:"size"`
			}{b.Label, b.Type, time.Unix(b.Timestamp.Stop, 0).UTC(), b.Info.Size}
		}
		s.Failures = bi.State.Failures
		if f := bi.State.LastFailure; f != nil {
			s.LastFailure = f.Type + ": " + f.Error
			s.LastFailureAt = time.Unix(int64(f.Time), 0).UTC()
		}
	}
	if primary != "" {
		out, err := pgSQL(ctx, c, app, primary, "postgres", "select coalesce(last_archived_wal,'')||'|'||coalesce(last_archived_time::text,'')||'|'||failed_count||'|'||coalesce(last_failed_wal,'')||'|'||coalesce(last_failed_time::text,'') from pg_stat_archiver;")
		if f := strings.Split(out, "|"); err == nil && len(f) == 5 {
			s.ArchivedWAL, s.ArchivedAt = f[0], f[1]
			s.ArchiveFails, _ = strconv.Atoi(f[2])
			s.ArchiveFailWAL, s.ArchiveFailAt = f[3], f[4]
		}
	}
	return s
}

// printBackupStatus is the text form of the backup part of `pg status`.
func (s *pgBackupStatus) print(w io.Writer) {
	if s == nil {
		fmt.Fprintln(w, "\nBackups: none (made with --no-backup)")
		return
	}
	fmt.Fprintln(w)
	if s.Error != "" {
		fmt.Fprintf(w, "Backups: cannot read them: %s\n", s.Error)
	} else if s.LastBackup == nil {
		fmt.Fprintln(w, "Last backup: none yet")
	} else {
		b := s.LastBackup
		fmt.Fprintf(w, "Last backup: %s (%s), ended %s, %s; %d backups kept\n", b.Label, b.Type, b.Ended.Format(time.RFC3339), humanBytes(b.Size), s.Backups)
	}
	if s.Failures > 0 {
		fmt.Fprintf(w, "Failed backups: %d; last at %s: %s\n", s.Failures, s.LastFailureAt.Format(time.RFC3339), s.LastFailure)
	}
	if s.ArchivedWAL != "" {
		fmt.Fprintf(w, "WAL archive: last %s at %s\n", s.ArchivedWAL, s.ArchivedAt)
	}
	if s.ArchiveFails > 0 {
		fmt.Fprintf(w, "WAL archive errors: %d; last %s at %s (see the primary's log)\n", s.ArchiveFails, s.ArchiveFailWAL, s.ArchiveFailAt)
	}
}
