package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
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

// newPgCreateCmd is `hangar pg create`: flyctl's `fly pg create`, a
// Patroni cluster of one or more members.
func newPgCreateCmd() *cobra.Command {
	var name, region, vmSize string
	var size, volumeGB, volumeMB, version int
	var synchronous bool
	var backup pgBackupFlags
	cmd := &cobra.Command{
		Use:   "create --name DB",
		Short: "Create a Hangar Postgres cluster (Patroni: one machine and volume per member, TLS, a primary that fails over)",
		Long: `Create an app running a Patroni cluster from the Hangar Postgres image (built
first if the daemon does not have it: see ` + "`hangar pg image build`" + `): one machine
per member, each with its data on its own volume, electing the primary
through the daemon's consensus store. Hangar makes a CA for the cluster
and a certificate for its members (` + "`hangar pg ca`" + ` prints the CA), a
superuser password kept as the app's OPERATOR_PASSWORD secret and printed
once, as flyctl does, and a Flycast address: apps reach the primary at
DB.flycast:5432 and a replica at DB.flycast:5433, following failovers.
` + "`hangar pg attach`" + ` gives an app its own database, user and DATABASE_URL.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if name == "" {
				return &HintError{Err: errors.New("no database name"), Hint: "pass --name DB (the app the database runs as)"}
			}
			if size < 1 || size > 7 {
				return &HintError{Err: fmt.Errorf("--initial-cluster-size %d", size), Hint: "use 1 (no replica) or 3 (a primary and two replicas), at most 7"}
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
			bp, err := backup.plan(ctx, volumeMB)
			if err != nil {
				return err
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
			img, _, err := ensurePgImage(ctx, cmd, c, version, "", "", false, false)
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			now := time.Now()
			caCert, caKey, err := pg.NewCA(name, now)
			if err != nil {
				return fmt.Errorf("make the cluster CA: %w", err)
			}
			srvCert, srvKey, err := pg.NewServerCert(caCert, caKey, pg.ServerNames(name), now)
			if err != nil {
				return fmt.Errorf("make the members' certificate: %w", err)
			}
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
			str := func(b []byte) *string { s := string(b); return &s }
			if _, err := c.setSecrets(ctx, name, map[string]*string{
				pg.SecretOperator: &password, pg.SecretReplication: types.Ptr(randomSecret()), pg.SecretRestAPI: types.Ptr(randomSecret()),
				pg.SecretCACert: str(caCert), pg.SecretCAKey: str(caKey), pg.SecretServerKey: str(srvKey),
			}); err != nil {
				return fmt.Errorf("store the cluster's secrets: %w", err)
			}
			if err := bp.storeSecrets(ctx, c, name, caCert, caKey, now); err != nil {
				return err
			}
			var cons types.PgConsensus
			if err := c.do(ctx, "POST", "/v1/apps/"+url.PathEscape(name)+"/pg/consensus", nil, &cons); err != nil {
				return fmt.Errorf("the cluster's consensus store: %w", err)
			}
			var ip types.IPAddress
			if err := c.do(ctx, "POST", "/v1/apps/"+url.PathEscape(name)+"/ips", types.AllocateIPRequest{Type: types.IPTypePrivateV6}, &ip); err != nil {
				return fmt.Errorf("allocate %s's Flycast address: %w", name, err)
			}
			opts := pg.ClusterOptions{App: name, Version: version, Consensus: cons, ServerCert: srvCert, CACert: caCert, Synchronous: synchronous}
			opts.Backup, opts.Restore = bp.options()
			if err := bp.createRepo(ctx, errw, c, name, img.Ref, guest, region, caCert); err != nil {
				return err
			}
			var ids []string
			for i := 0; i < size; i++ {
				fmt.Fprintf(errw, "Creating member %d of %d: volume %s (%d MB) and machine\n", i+1, size, pgVolumeName, volumeMB)
				vol, err := c.CreateVolume(ctx, name, types.CreateVolumeRequest{Name: pgVolumeName, Region: region, SizeMB: volumeMB})
				if err != nil {
					return err
				}
				cfg, err := pg.MemberConfig(opts, img.Ref, guest, vol.ID)
				if err != nil {
					return err
				}
				m, err := c.CreateMachine(ctx, name, types.CreateMachineRequest{Region: region, Config: cfg})
				if err != nil {
					return err
				}
				ids = append(ids, m.ID)
			}
			fmt.Fprintf(errw, "Waiting for Patroni to elect a primary and for %d replicas to stream\n", size-1)
			cl, err := pgWaitCluster(ctx, c, name, size, synchronous, 4*time.Minute)
			if err != nil {
				return &HintError{Err: err, Hint: "see `hangar logs -a " + name + "`"}
			}
			if err := bp.init(ctx, errw, c, name); err != nil {
				return err
			}
			ok = true
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Postgres cluster %s is running: %d members (%s), primary %s.\n\n", name, size, strings.Join(ids, ", "), cl.primary())
			fmt.Fprintf(out, "  Username:    postgres\n  Password:    %s\n  Hostname:    %s.flycast\n  Flycast:     %s\n  Proxy port:  5432 (primary), 5433 (a replica)\n  TLS:         sslmode=verify-full with the CA of `hangar pg ca -a %s`\n\n", password, name, ip.Address, name)
			fmt.Fprintf(out, "Save the password: it is not shown again. Connect with `hangar pg connect -a %s`;\ngive an app its own database with `hangar pg attach %s -a APP`.\n", name, name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the database's app name")
	f.StringVarP(&region, "region", "r", "", "region (default: the daemon's)")
	f.StringVar(&vmSize, "vm-size", "shared-cpu-1x", "machine size")
	f.IntVar(&size, "initial-cluster-size", 1, "number of members (3: a primary and two replicas)")
	f.IntVar(&volumeGB, "volume-size", 1, "volume size in GB")
	f.IntVar(&volumeMB, "volume-size-mb", 0, "volume size in MB (instead of --volume-size)")
	f.IntVar(&version, "postgres-version", pg.DefaultVersion, "PostgreSQL major version")
	f.BoolVar(&synchronous, "synchronous", false, "synchronous replication: a commit is acknowledged once a replica has it too")
	backup.register(f)
	return cmd
}

// pgMember is one member in Patroni's /cluster.
type pgMember struct {
	Name     string `json:"name"`
	Role     string `json:"role"` // leader, replica, sync_standby
	State    string `json:"state"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Timeline int    `json:"timeline"`
	Lag      any    `json:"lag,omitempty"` // bytes, or "unknown"
	// PendingRestart: a parameter changed needs a server start.
	PendingRestart bool `json:"pending_restart,omitempty"`
}

// pgClusterView is Patroni's /cluster (and, in `pg status`, the backups).
type pgClusterView struct {
	Members []pgMember      `json:"members"`
	Backup  *pgBackupStatus `json:"backup,omitempty"`
}

func (v *pgClusterView) primary() string {
	for _, m := range v.Members {
		if m.Role == "leader" && m.State == "running" {
			return m.Name
		}
	}
	return ""
}

// pgCtl runs the members' helper (pg.CtlScript) in a started member:
// the first one whose Patroni answers.
func pgCtl(ctx context.Context, c *client, app string, args ...string) (string, error) {
	ms, err := c.Machines(ctx, app)
	if err != nil {
		if isNotFound(err) {
			return "", &HintError{Err: fmt.Errorf("no database %s", app), Hint: "see `hangar apps list`; create one with `hangar pg create --name " + app + "`"}
		}
		return "", err
	}
	var last error = &HintError{Err: fmt.Errorf("%s has no started Hangar Postgres member", app), Hint: "see `hangar machine list -a " + app + "`"}
	// Members whose Patroni answers the proxy's checks (one of /primary,
	// /replica passes) first: a member that hung has a stale view.
	sort.SliceStable(ms, func(i, j int) bool { return pgAnswers(ms[i]) && !pgAnswers(ms[j]) })
	for _, m := range ms {
		if m.State != types.StateStarted || m.Config == nil || m.Config.Metadata["hangar_pg_cluster"] == "" {
			continue
		}
		var out, errb bytes.Buffer
		code, err := c.console(ctx, app, m.ID, consoleOptions{command: append([]string{"python3", pg.CtlScript}, args...), timeout: 60, stdout: &out, stderr: &errb})
		if err == nil && code == 0 {
			return strings.TrimSpace(out.String()), nil
		}
		last = fmt.Errorf("member %s: %s %s %v", m.ID, strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()), err)
	}
	return "", last
}

// pgCluster is Patroni's view of the cluster.
func pgCluster(ctx context.Context, c *client, app string) (*pgClusterView, error) {
	out, err := pgCtl(ctx, c, app, "cluster")
	if err != nil {
		return nil, err
	}
	var v pgClusterView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return nil, fmt.Errorf("patroni's /cluster in %s: %w (%q)", app, err, out)
	}
	return &v, nil
}

// pgWaitCluster waits until the cluster has a running primary and size-1
// replicas streaming from it (one of them its synchronous standby, when
// synchronous and there is a replica).
func pgWaitCluster(ctx context.Context, c *client, app string, size int, synchronous bool, timeout time.Duration) (*pgClusterView, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		v, err := pgCluster(ctx, c, app)
		if err == nil {
			replicas, sync := 0, false
			for _, m := range v.Members {
				if m.Role != "leader" && (m.State == "streaming" || m.State == "running") {
					replicas++
					sync = sync || m.Role == "sync_standby"
				}
			}
			if v.primary() != "" && replicas >= size-1 && (!synchronous || size == 1 || sync) {
				return v, nil
			}
			b, _ := json.Marshal(v.Members)
			last = string(b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the cluster %s did not have a primary and %d streaming replicas within %s (last: %s)", app, size-1, timeout, last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
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

// pgMachine finds the database app's primary: Patroni's leader, or the
// started machine of a single PostgreSQL made before Patroni clusters.
func pgMachine(ctx context.Context, c *client, app string) (*types.Machine, error) {
	ms, err := c.Machines(ctx, app)
	if err != nil {
		if isNotFound(err) {
			return nil, &HintError{Err: fmt.Errorf("no database %s", app), Hint: "see `hangar apps list`; create one with `hangar pg create --name " + app + "`"}
		}
		return nil, err
	}
	for i := range ms {
		if ms[i].Config != nil && ms[i].Config.Metadata["hangar_pg_cluster"] != "" {
			v, err := pgCluster(ctx, c, app)
			if err != nil {
				return nil, err
			}
			p := v.primary()
			for j := range ms {
				if ms[j].ID == p {
					return &ms[j], nil
				}
			}
			return nil, &HintError{Err: fmt.Errorf("the cluster %s has no primary now", app), Hint: "see `hangar pg status -a " + app + "`; Patroni elects one within seconds when a majority of the consensus store is up"}
		}
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
			values := map[string]*string{}
			var caNote string
			dsn := (&url.URL{Scheme: "postgres", User: url.UserPassword(dbUser, password), Host: db + ".internal:5432", Path: "/" + dbName, RawQuery: "sslmode=disable"}).String()
			if ca := pgCAOf(m); ca != "" {
				// A Patroni cluster: the primary through Flycast, TLS
				// checked against the cluster CA, which the app gets as a
				// secret to mount as a file.
				caVar := pgCAVariable(variable)
				caPath := "/etc/hangar/pg-ca/" + db + ".crt"
				q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {caPath}}
				dsn = (&url.URL{Scheme: "postgres", User: url.UserPassword(dbUser, password), Host: db + ".flycast:5432", Path: "/" + dbName, RawQuery: q.Encode()}).String()
				values[caVar] = &ca
				caNote = fmt.Sprintf("\nThe cluster's CA is the app's %s secret; mount it where the URL expects it, in fly.toml:\n\n  [[files]]\n    guest_path = %q\n    secret_name = %q\n", caVar, caPath, caVar)
			}
			values[variable] = &dsn
			res, err := c.setSecrets(ctx, name, values)
			if err != nil {
				return fmt.Errorf("set %s on %s: %w", variable, name, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Database %s and user %s made on %s. The app %s's %s secret is:\n\n  %s\n\nSave it if you need it elsewhere: it is not shown again.\n%s", dbName, dbUser, db, name, variable, dsn, caNote)
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
			unset := map[string]*string{variable: nil}
			if pgCAOf(m) != "" {
				unset[pgCAVariable(variable)] = nil
			}
			res, err := c.setSecrets(ctx, name, unset)
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

// pgCAOf is the cluster CA (PEM) a Patroni member's config mounts; "" for
// a single PostgreSQL made before Patroni clusters.
func pgCAOf(m *types.Machine) string {
	if m == nil || m.Config == nil {
		return ""
	}
	for _, f := range m.Config.Files {
		if f.GuestPath == pg.ConfigDir+"/ca.crt" && f.RawValue != nil {
			b, err := base64.StdEncoding.DecodeString(*f.RawValue)
			if err == nil {
				return string(b)
			}
		}
	}
	return ""
}

// pgCAVariable is the app secret attach puts the cluster CA in, next to
// the URL's: DATABASE_URL's is DATABASE_CA_CERT.
func pgCAVariable(urlVariable string) string {
	return strings.TrimSuffix(urlVariable, "_URL") + "_CA_CERT"
}

func newPgCACmd() *cobra.Command {
	var app, config string
	cmd := &cobra.Command{
		Use:   "ca -a DB",
		Short: "Print the CA certificate of a Hangar Postgres cluster (for sslmode=verify-full)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			ms, err := c.Machines(cmd.Context(), name)
			if err != nil {
				return secretsHint(err)
			}
			// A member's (the backup repository has the CA too, and may
			// be listed first).
			sort.SliceStable(ms, func(i, j int) bool {
				return ms[i].Config != nil && ms[i].Config.Metadata[pg.ClusterMetaKey] != "" && (ms[j].Config == nil || ms[j].Config.Metadata[pg.ClusterMetaKey] == "")
			})
			for i := range ms {
				if ca := pgCAOf(&ms[i]); ca != "" {
					_, err := io.WriteString(cmd.OutOrStdout(), ca)
					return err
				}
			}
			return &HintError{Err: fmt.Errorf("%s has no Hangar Postgres cluster CA", name), Hint: "clusters made by `hangar pg create` have one; see `hangar pg status -a " + name + "`"}
		},
	}
	appFlags(cmd, &app, &config)
	cmd.AddCommand(newPgCARotateCmd())
	return cmd
}

func newPgStatusCmd() *cobra.Command {
	var app, config string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status -a DB",
		Short: "Show a Hangar Postgres cluster's members: role, state, timeline and replication lag (Patroni's view)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			v, err := pgCluster(cmd.Context(), c, name)
			if err != nil {
				return err
			}
			v.Backup = pgStatusBackup(cmd.Context(), c, name, v.primary())
			if asJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MEMBER\tADDRESS\tROLE\tSTATE\tTIMELINE\tLAG (bytes)")
			for _, m := range v.Members {
				role := m.Role
				if role == "leader" {
					role = "primary"
				}
				lag := ""
				if m.Lag != nil {
					lag = fmt.Sprint(m.Lag)
				}
				fmt.Fprintf(w, "%s\t%s:%d\t%s\t%s\t%d\t%s\n", m.Name, m.Host, m.Port, role, m.State, m.Timeline, lag)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			v.Backup.print(cmd.OutOrStdout())
			return nil
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print Patroni's view as JSON")
	return cmd
}

func newPgFailoverCmd() *cobra.Command {
	var app, config, candidate string
	cmd := &cobra.Command{
		Use:   "failover -a DB",
		Short: "Hand the primary role to a replica (a planned switchover: Patroni stops writes, the replica catches up, then takes over)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			before, err := pgCluster(ctx, c, name)
			if err != nil {
				return err
			}
			old := before.primary()
			if old == "" {
				return &HintError{Err: fmt.Errorf("the cluster %s has no primary now", name), Hint: "see `hangar pg status -a " + name + "`"}
			}
			start := time.Now()
			for {
				out, err := pgCtl(ctx, c, name, "switchover", candidate)
				if err == nil {
					break
				}
				// Patroni names a synchronous standby a moment after a
				// replica catches up: wait for it rather than fail.
				if strings.Contains(err.Error(), "sync_standby") && time.Since(start) < 30*time.Second {
					time.Sleep(time.Second)
					continue
				}
				return &HintError{Err: fmt.Errorf("switchover in %s: %w %s", name, err, out), Hint: "a switchover needs a streaming replica; see `hangar pg status -a " + name + "`"}
			}
			deadline := time.Now().Add(time.Minute)
			for {
				v, err := pgCluster(ctx, c, name)
				if err == nil {
					if p := v.primary(); p != "" && p != old {
						fmt.Fprintf(cmd.OutOrStdout(), "The primary of %s is now %s (was %s; %s).\n", name, p, old, time.Since(start).Round(time.Millisecond))
						return nil
					}
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("no new primary in %s within a minute of the switchover (%v)", name, err)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().StringVar(&candidate, "candidate", "", "the member (machine id) to make primary (default: Patroni picks the healthiest replica)")
	return cmd
}

// pgAnswers reports whether one of a member's checks passes.
func pgAnswers(m types.Machine) bool {
	for _, c := range m.Checks {
		if c.Status == types.CheckPassing {
			return true
		}
	}
	return false
}
