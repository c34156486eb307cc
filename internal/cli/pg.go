package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/pg"
	"github.com/hangar-dev/hangar/internal/pgmigrate"
	"github.com/hangar-dev/hangar/internal/types"
)

func newPgCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pg",
		Short: "Work with PostgreSQL databases",
	}
	cmd.AddCommand(newPgMigrateCmd(), newPgImageCmd(), newPgCreateCmd(), newPgAttachCmd(), newPgDetachCmd(), newPgConnectCmd(), newPgCACmd(), newPgStatusCmd(), newPgFailoverCmd(),
		newPgConfigCmd(), newPgImportCmd(), newPgBackupCmd(), newPgRestoreCmd())
	return cmd
}

func newPgImageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "The Hangar Postgres image"}
	var version int
	var mirror, save string
	var force, asJSON bool
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the Hangar Postgres image from Debian's packages and give it to the daemon",
		Long: `Build the image Hangar Postgres machines run: Debian's PostgreSQL, Patroni,
pgBackRest and prometheus-postgres-exporter, installed with mmdebstrap from
Debian's archive (no container registry is used), plus Hangar's start
script. It runs on the Hangar host, as root, and uploads the image to the
daemon as hangar/postgres:VERSION-DIGEST, where DIGEST covers the package
set and the script: an image already there is not built again (--force
builds anyway). The first build downloads about 100 MB of packages and
takes a few minutes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			img, built, err := ensurePgImage(cmd.Context(), cmd, c, version, mirror, save, force, asJSON)
			if err != nil {
				return err
			}
			if save != "" && !built {
				fmt.Fprintf(cmd.ErrOrStderr(), "Nothing saved to %s: the image was not built (--force builds it again)\n", save)
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"ref": img.Ref, "image": img, "built": built})
			}
			fmt.Fprintln(cmd.OutOrStdout(), img.Ref)
			return nil
		},
	}
	build.Flags().IntVar(&version, "postgres-version", pg.DefaultVersion, "PostgreSQL major version")
	build.Flags().StringVar(&mirror, "mirror", "", "Debian mirror (default "+image.DefaultDebianMirror+")")
	build.Flags().BoolVar(&force, "force", false, "build even if the daemon has the image")
	build.Flags().StringVar(&save, "save", "", "also keep the image built as an OCI archive at this path (`hangar images import` it on another daemon)")
	build.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.AddCommand(build)
	return cmd
}

func newPgMigrateCmd() *cobra.Command {
	var o pgmigrate.Options
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "migrate --from URL --to URL",
		Short: "Copy a PostgreSQL database and prove the copy is complete",
		Long: `Copy schema and data from a consistent snapshot of the source database
into an empty target database (pg_dump/pg_restore in parallel), then verify
both sides: tables and columns, extensions, exact row counts, a checksum of
every row, and sequences. Exits 2 and names the tables when they differ.

With --live, keep the target in sync with logical replication, show the
lag, and cut over: make the source read-only, wait for zero lag, copy the
sequences, verify, and drop the subscription.

Passwords in URLs are never printed. See docs/pg-migrate.md.`,
		Example: `  hangar pg migrate --from postgres://app:PW@old-db:5432/app --to postgres://app:PW@new-db:5432/app --jobs 8
  hangar pg migrate --from ... --to ... --verify-only --json
  hangar pg migrate --from ... --to ... --live --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Progress = cmd.ErrOrStderr()
			if o.Live && !o.Yes && isTerminal(os.Stdin) {
				o.Confirm = terminalConfirm(cmd.InOrStdin(), cmd.ErrOrStderr())
			}
			report, err := pgmigrate.Run(ctx, o)
			if report != nil && report.Status != "" {
				if perr := printPgReport(cmd.OutOrStdout(), report, asJSON); perr != nil && err == nil {
					err = perr
				}
			}
			return pgCLIError(err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.From, "from", "", "source database URL (postgres://USER:PASSWORD@HOST:PORT/DB)")
	f.StringVar(&o.To, "to", "", "target database URL; must be an empty database unless --verify-only or --cutover")
	f.BoolVar(&o.Live, "live", false, "replicate with logical replication, then cut over")
	f.BoolVar(&o.Cutover, "cutover", false, "finish a live migration: stop writes on the source, drain, sync sequences, verify")
	f.BoolVar(&o.Yes, "yes", false, "with --live, cut over without asking once the target has caught up")
	f.BoolVar(&o.VerifyOnly, "verify-only", false, "only compare the two databases")
	f.IntVarP(&o.Jobs, "jobs", "j", 4, "parallel connections for dump, restore and checksums")
	f.StringVar(&o.PgBin, "pg-bin", "", "directory with pg_dump and pg_restore (default: PATH, then /usr/lib/postgresql/*/bin)")
	f.StringVar(&o.SubscriptionConnInfo, "subscription-conninfo", "", "with --live, the source URL as the target server reaches it, if not --from")
	f.Int64Var(&o.LagThreshold, "lag-threshold", 64<<10, "with --live, lag in bytes under which the target counts as caught up")
	f.BoolVar(&asJSON, "json", false, "print the verification report as JSON")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// pgCLIError maps pgmigrate errors to the CLI's error types: exit code 2
// for a verification that found differences, a hint for the rest.
func pgCLIError(err error) error {
	if err == nil {
		return nil
	}
	if code := pgmigrate.ExitCode(err); code != pgmigrate.ExitFailed {
		return &ExitError{Code: code, Err: err}
	}
	var pe *pgmigrate.Error
	if errors.As(err, &pe) {
		return &HintError{Err: errors.New(pe.Msg), Hint: pe.Hint}
	}
	return &HintError{Err: errors.New(pgmigrate.RedactText(err.Error()))}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func terminalConfirm(in io.Reader, out io.Writer) func(context.Context, int64) (bool, error) {
	r := bufio.NewReader(in)
	return func(ctx context.Context, lag int64) (bool, error) {
		fmt.Fprintf(out, "The target has caught up (lag %d bytes).\n"+
			"Cut over now? This makes the SOURCE database read-only and ends its other sessions. [y/N] ", lag)
		answer := make(chan string, 1)
		go func() {
			line, _ := r.ReadString('\n')
			answer <- line
		}()
		select {
		case <-ctx.Done():
			// Ctrl-C at the prompt: leave replication running.
			fmt.Fprintln(out)
			return false, nil
		case line := <-answer:
			a := strings.ToLower(strings.TrimSpace(line))
			return a == "y" || a == "yes", nil
		}
	}
}

func printPgReport(w io.Writer, r *pgmigrate.Report, asJSON bool) error {
	if asJSON {
		return printJSON(w, r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "mode: %s\nsource: %s\ntarget: %s\n", r.Mode, r.Source, r.Target)
	if rep := r.Replication; rep != nil {
		fmt.Fprintf(&b, "replication %s: %d/%d tables synchronized, lag %d bytes", rep.Name, rep.TablesReady, rep.TablesTotal, rep.LagBytes)
		if rep.CutoverLSN != "" {
			fmt.Fprintf(&b, ", cut over at %s, %d sequences synced", rep.CutoverLSN, rep.SequencesSynced)
		}
		b.WriteString("\n")
	}
	for _, t := range r.Tables {
		status := "ok"
		if !t.Match {
			status = "MISMATCH: " + strings.Join(t.Problems, "; ")
		}
		rows := ""
		if t.Source != nil && t.Source.Rows != nil {
			rows = fmt.Sprintf(" %d rows", *t.Source.Rows)
		}
		fmt.Fprintf(&b, "table %s%s: %s\n", t.Name, rows, status)
	}
	for _, s := range r.Sequences {
		status := "ok"
		if !s.OK {
			status = "MISMATCH: " + strings.Join(s.Problems, "; ")
		}
		fmt.Fprintf(&b, "sequence %s: %s\n", s.Name, status)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	fmt.Fprintf(&b, "result: %s\n", r.Status)
	_, err := io.WriteString(w, b.String())
	return err
}

// ensurePgImage gives the daemon the Hangar Postgres image of version:
// the one it has (unless force), or one built here and uploaded. Progress
// goes to stderr (mmdebstrap's too, unless quiet).
func ensurePgImage(ctx context.Context, cmd *cobra.Command, c *client, version int, mirror, save string, force, quiet bool) (*types.Image, bool, error) {
	opts, err := pg.ImageOptions(version, mirror)
	if err != nil {
		return nil, false, &HintError{Err: err, Hint: fmt.Sprintf("use --postgres-version %d", pg.DefaultVersion)}
	}
	ref := pg.ImageRef(version, opts)
	errw := cmd.ErrOrStderr()
	if !force {
		imgs, err := c.Images(ctx)
		if err != nil {
			return nil, false, err
		}
		for i := range imgs {
			if imgs[i].Ref == ref {
				fmt.Fprintf(errw, "%s is already on the daemon (hangar pg image build --force builds it again)\n", ref)
				return &imgs[i], false, nil
			}
		}
	}
	start := time.Now()
	fmt.Fprintf(errw, "Building %s with mmdebstrap (%s, %s); the first build takes a few minutes\n", ref, pg.DefaultSuite, strings.Join(opts.Packages, " "))
	if !quiet {
		opts.Output = errw
	}
	img, err := image.BuildDebian(ctx, opts)
	if errors.Is(err, image.ErrNoMmdebstrap) {
		return nil, false, &HintError{Err: err, Hint: "apt-get install mmdebstrap (on the Hangar host), then run this again"}
	}
	if err != nil {
		return nil, false, err
	}
	tmp, err := os.MkdirTemp("", "hangar-pg-image-")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, "image.tar")
	if save != "" {
		archive = save
	}
	if err := image.WriteOCIArchive(img, ref, archive); err != nil {
		return nil, false, fmt.Errorf("write %s: %w", ref, err)
	}
	fmt.Fprintf(errw, "Built in %s; uploading to the daemon\n", time.Since(start).Round(time.Second))
	up, err := c.UploadImage(ctx, archive, ref)
	if err != nil {
		return nil, false, err
	}
	up.Ref = ref
	return up, true, nil
}
