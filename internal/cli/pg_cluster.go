package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/pg"
	"github.com/hangar-dev/hangar/internal/types"
)

// pgVolumeName is the volume of a Hangar Postgres machine, pgMountPath
// where it is mounted (pg.DataDir is below it).
const (
	pgVolumeName = "pg_data"
	pgMountPath  = "/data"
	pgRoleKey    = "hangar-postgres"
)

// newPgCreateCmd is `hangar pg create`: flyctl's `fly pg create`, for a
// single PostgreSQL on a volume (Patroni clusters are not built yet).
func newPgCreateCmd() *cobra.Command {
	var name, region, vmSize string
	var size, volumeGB, volumeMB, version int
	cmd := &cobra.Command{
		Use:   "create --name DB",
		Short: "Create a Hangar Postgres database (an app with PostgreSQL on a volume)",
		Long: `Create an app running PostgreSQL from the Hangar Postgres image (built
first if the daemon does not have it: see ` + "`hangar pg image build`" + `), with its
data on a volume and a superuser password made here and kept as the app's
OPERATOR_PASSWORD secret. The password is printed once, as flyctl does.
Apps reach the database at DB.internal:5432; ` + "`hangar pg attach`" + ` gives one
its own database, user and DATABASE_URL.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if name == "" {
				return &HintError{Err: errors.New("no database name"), Hint: "pass --name DB (the app the database runs as)"}
			}
			if size != 1 {
				return &HintError{Err: fmt.Errorf("--initial-cluster-size %d: replicated clusters (Patroni) are not built yet", size),
					Hint: "create a single database with --initial-cluster-size 1; see docs/postgres.md"}
			}
			guest, err := types.GuestForSize(vmSize)
			if err != nil {
				return &HintError{Err: err, Hint: "sizes are Fly's: shared-cpu-1x, shared-cpu-2x, performance-1x, … (see docs/fly-toml.md)"}
			}
			if volumeMB == 0 {
				volumeMB = volumeGB * 1024
			}
			if volumeMB < 64 {
				return &HintError{Err: fmt.Errorf("volume of %d MB is too small for PostgreSQL", volumeMB), Hint: "use --volume-size 1 (GB) or --volume-size-mb 64 or more"}
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			if _, err := c.App(ctx, name); err == nil {
				return &HintError{Err: fmt.Errorf("an app named %s already exists", name), Hint: "choose another --name, or `hangar apps destroy " + name + "` first"}
			} else if !isNotFound(err) {
				return err
			}
			img, _, err := ensurePgImage(ctx, cmd, c, version, "", false, false)
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			password := randomSecret()
			fmt.Fprintf(errw, "Creating app %s\n", name)
			if _, err := c.CreateApp(ctx, name); err != nil {
				return err
			}
			// Anything made past this point goes with the app on failure:
			// no half-made database is left behind.
			ok := false
			defer func() {
				if !ok {
					fmt.Fprintf(errw, "Removing the half-made app %s\n", name)
					cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
					defer cancel()
					pgCleanup(cctx, c, name)
				}
			}()
			if _, err := c.setSecrets(ctx, name, map[string]*string{"OPERATOR_PASSWORD": &password}); err != nil {
				return fmt.Errorf("store the operator password: %w", err)
			}
			fmt.Fprintf(errw, "Creating volume %s (%d MB)\n", pgVolumeName, volumeMB)
			vol, err := c.CreateVolume(ctx, name, types.CreateVolumeRequest{Name: pgVolumeName, Region: region, SizeMB: volumeMB})
			if err != nil {
				return err
			}
			cfg := &types.MachineConfig{
				Image:    img.Ref,
				Guest:    &guest,
				Mounts:   []types.MachineMount{{Volume: vol.ID, Path: pgMountPath}},
				Restart:  &types.MachineRestart{Policy: "always"},
				Metadata: map[string]string{"role": pgRoleKey, "fly_process_group": "app"},
			}
			fmt.Fprintf(errw, "Starting PostgreSQL %d\n", version)
			m, err := c.CreateMachine(ctx, name, types.CreateMachineRequest{Region: region, Config: cfg})
			if err != nil {
				return err
			}
			if err := pgWaitReady(ctx, c, name, m.ID, 3*time.Minute); err != nil {
				return &HintError{Err: err, Hint: "see `hangar logs -a " + name + "`"}
			}
			ok = true
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Postgres %s is running (machine %s).\n\n", name, m.ID)
			fmt.Fprintf(out, "  Username:    postgres\n  Password:    %s\n  Hostname:    %s.internal\n  Proxy port:  5432\n\n", password, name)
			fmt.Fprintf(out, "Save the password: it is not shown again. Connect with `hangar pg connect -a %s`;\ngive an app its own database with `hangar pg attach %s -a APP`.\n", name, name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the database's app name")
	f.StringVarP(&region, "region", "r", "", "region (default: the daemon's)")
	f.StringVar(&vmSize, "vm-size", "shared-cpu-1x", "machine size")
	f.IntVar(&size, "initial-cluster-size", 1, "number of members (1: replication is not built yet)")
	f.IntVar(&volumeGB, "volume-size", 1, "volume size in GB")
	f.IntVar(&volumeMB, "volume-size-mb", 0, "volume size in MB (instead of --volume-size)")
	f.IntVar(&version, "postgres-version", pg.DefaultVersion, "PostgreSQL major version")
	return cmd
}

// pgCleanup removes a database app's machines, volumes and the app.
func pgCleanup(ctx context.Context, c *client, app string) {
	if ms, err := c.Machines(ctx, app); err == nil {
		for _, m := range ms {
			_ = c.do(ctx, "DELETE", "/v1/apps/"+url.PathEscape(app)+"/machines/"+url.PathEscape(m.ID)+"?force=true", nil, nil)
		}
	}
	if vs, err := c.Volumes(ctx, app); err == nil {
		for _, v := range vs {
			for i := 0; i < 20; i++ { // a volume frees once its machine is gone
				if _, err := c.DestroyVolume(ctx, app, v.ID); err == nil {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
	}
	_ = c.DeleteApp(ctx, app)
}

// pgMachine finds the database app's started PostgreSQL machine.
func pgMachine(ctx context.Context, c *client, app string) (*types.Machine, error) {
	ms, err := c.Machines(ctx, app)
	if err != nil {
		if isNotFound(err) {
			return nil, &HintError{Err: fmt.Errorf("no database %s", app), Hint: "see `hangar apps list`; create one with `hangar pg create --name " + app + "`"}
		}
		return nil, err
	}
	for i := range ms {
		if ms[i].Config != nil && ms[i].Config.Metadata["role"] == pgRoleKey {
			if ms[i].State != types.StateStarted {
				return nil, &HintError{Err: fmt.Errorf("the PostgreSQL machine %s of %s is %s", ms[i].ID, app, ms[i].State),
					Hint: "start it with `hangar machine start " + ms[i].ID + " -a " + app + "`"}
			}
			return &ms[i], nil
		}
	}
	return nil, &HintError{Err: fmt.Errorf("%s is not a Hangar Postgres app (no machine with role %s)", app, pgRoleKey), Hint: "create one with `hangar pg create --name DB`"}
}

// pgWaitReady polls pg_isready inside the machine.
func pgWaitReady(ctx context.Context, c *client, app, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		var out bytes.Buffer
		code, err := c.console(ctx, app, id, consoleOptions{command: []string{"pg_isready", "-h", "/tmp", "-q"}, timeout: 10, stdout: &out, stderr: &out})
		if err == nil && code == 0 {
			return nil
		}
		last = strings.TrimSpace(fmt.Sprint(out.String(), " ", err))
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL in machine %s did not accept connections within %s (last: %s)", id, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// pgSQL runs SQL as the superuser inside the database's machine (psql over
// the local socket with peer authentication: no password travels). The
// SQL goes on stdin, so passwords in it are on no command line.
func pgSQL(ctx context.Context, c *client, app, id, db, sql string) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	go func() {
		_, _ = io.WriteString(w, sql)
		w.Close()
	}()
	defer r.Close()
	var out, errb bytes.Buffer
	code, err := c.console(ctx, app, id, consoleOptions{
		command: []string{"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "/tmp", "-U", "postgres", "-d", db},
		user:    "postgres", timeout: 60, stdin: r, stdout: &out, stderr: &errb,
	})
	if err != nil {
		return "", fmt.Errorf("run SQL in %s: %w", app, err)
	}
	if code != 0 {
		return "", fmt.Errorf("SQL in %s failed: %s", app, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

var pgIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// pgName turns an app name into a Postgres identifier (dashes become
// underscores), as flyctl does for attach's defaults.
func pgName(app string) string { return strings.ReplaceAll(app, "-", "_") }

func newPgAttachCmd() *cobra.Command {
	var app, config, dbName, dbUser, variable string
	cmd := &cobra.Command{
		Use:   "attach DB",
		Short: "Give an app its own database and user on a Hangar Postgres, as the DATABASE_URL secret",
		Long: `Make a database and a user with a random password on the Hangar Postgres
DB, and set the app's DATABASE_URL secret (or --variable-name) to the
connection URL, which is printed once (it is not shown again: keep it if
you need it elsewhere). Setting the secret rolls it out to the app's
machines. The URL points at DB.internal:5432 on the private network.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			db := args[0]
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			if dbName == "" {
				dbName = pgName(name)
			}
			if dbUser == "" {
				dbUser = pgName(name)
			}
			for _, id := range []string{dbName, dbUser} {
				if !pgIdent.MatchString(id) {
					return &HintError{Err: fmt.Errorf("%q is not a plain PostgreSQL name", id), Hint: "use lowercase letters, digits and _ (--database-name, --database-user)"}
				}
			}
			if err := types.ValidEnvName(variable); err != nil {
				return &HintError{Err: err, Hint: "--variable-name is an environment variable name, like DATABASE_URL"}
			}
			if _, err := c.App(ctx, name); err != nil {
				return secretsHint(err)
			}
			m, err := pgMachine(ctx, c, db)
			if err != nil {
				return err
			}
			exists, err := pgSQL(ctx, c, db, m.ID, "postgres", fmt.Sprintf("select count(*) from pg_roles where rolname = '%s';", dbUser))
			if err != nil {
				return err
			}
			if exists != "0" {
				return &HintError{Err: fmt.Errorf("user %s already exists on %s", dbUser, db),
					Hint: fmt.Sprintf("detach first (`hangar pg detach %s -a %s`) or pass --database-user", db, name)}
			}
			password := randomSecret()
			sql := fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s';\n", dbUser, password)
			dbExists, err := pgSQL(ctx, c, db, m.ID, "postgres", fmt.Sprintf("select count(*) from pg_database where datname = '%s';", dbName))
			if err != nil {
				return err
			}
			if dbExists == "0" {
				sql += fmt.Sprintf("CREATE DATABASE %s OWNER %s;\n", dbName, dbUser)
			} else {
				sql += fmt.Sprintf("ALTER DATABASE %s OWNER TO %s;\n", dbName, dbUser)
			}
			if _, err := pgSQL(ctx, c, db, m.ID, "postgres", sql); err != nil {
				return err
			}
			dsn := (&url.URL{Scheme: "postgres", User: url.UserPassword(dbUser, password), Host: db + ".internal:5432", Path: "/" + dbName, RawQuery: "sslmode=disable"}).String()
			res, err := c.setSecrets(ctx, name, map[string]*string{variable: &dsn})
			if err != nil {
				return fmt.Errorf("set %s on %s: %w", variable, name, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Database %s and user %s made on %s. The app %s's %s secret is:\n\n  %s\n\nSave it if you need it elsewhere: it is not shown again.\n", dbName, dbUser, db, name, variable, dsn)
			if res.Version == res.DeployedVersion {
				return nil
			}
			return rollOutSecrets(cmd, name, res.Version)
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().StringVar(&dbName, "database-name", "", "database to make (default: the app's name)")
	cmd.Flags().StringVar(&dbUser, "database-user", "", "user to make (default: the app's name)")
	cmd.Flags().StringVar(&variable, "variable-name", "DATABASE_URL", "the app secret that gets the URL")
	return cmd
}

func newPgDetachCmd() *cobra.Command {
	var app, config, dbUser, variable string
	cmd := &cobra.Command{
		Use:   "detach DB",
		Short: "Remove an app's user from a Hangar Postgres and its DATABASE_URL secret (the database is kept)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			db := args[0]
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			if dbUser == "" {
				dbUser = pgName(name)
			}
			if !pgIdent.MatchString(dbUser) {
				return &HintError{Err: fmt.Errorf("%q is not a plain PostgreSQL name", dbUser), Hint: "pass the user attach made with --database-user"}
			}
			m, err := pgMachine(ctx, c, db)
			if err != nil {
				return err
			}
			dbs, err := pgSQL(ctx, c, db, m.ID, "postgres", "select datname from pg_database where datallowconn;")
			if err != nil {
				return err
			}
			// Objects the user owns go to postgres in every database, then
			// the user goes: the data stays.
			for _, d := range strings.Fields(dbs) {
				if _, err := pgSQL(ctx, c, db, m.ID, d, fmt.Sprintf("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s') THEN REASSIGN OWNED BY %[1]s TO postgres; DROP OWNED BY %[1]s; END IF; END $$;", dbUser)); err != nil {
					return err
				}
			}
			if _, err := pgSQL(ctx, c, db, m.ID, "postgres", fmt.Sprintf("DROP ROLE IF EXISTS %s;", dbUser)); err != nil {
				return err
			}
			res, err := c.setSecrets(ctx, name, map[string]*string{variable: nil})
			if err != nil {
				return fmt.Errorf("unset %s on %s: %w", variable, name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "User %s removed from %s (its databases are kept, owned by postgres); %s unset on %s\n", dbUser, db, variable, name)
			if res.Version == res.DeployedVersion {
				return nil
			}
			return rollOutSecrets(cmd, name, res.Version)
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().StringVar(&dbUser, "database-user", "", "the user attach made (default: the app's name)")
	cmd.Flags().StringVar(&variable, "variable-name", "DATABASE_URL", "the app secret to remove")
	return cmd
}

func newPgConnectCmd() *cobra.Command {
	var app, config, database string
	cmd := &cobra.Command{
		Use:   "connect -a DB",
		Short: "Open psql in a Hangar Postgres as the superuser",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			m, err := pgMachine(cmd.Context(), c, name)
			if err != nil {
				return err
			}
			code, err := c.console(cmd.Context(), name, m.ID, consoleOptions{
				command: []string{"psql", "-h", "/tmp", "-U", "postgres", "-d", database},
				user:    "postgres", tty: stdinIsTerminal(), stdin: os.Stdin, stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(),
			})
			return exitWith(code, err)
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().StringVarP(&database, "database", "d", "postgres", "database to open")
	return cmd
}

// randomSecret is a password of 26 characters from crypto/rand (128
// bits, base32: no character a URL or a shell needs to quote).
func randomSecret() string { return rand.Text() }
