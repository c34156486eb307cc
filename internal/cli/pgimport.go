package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/pgmigrate"
	"github.com/hangar-dev/hangar/internal/types"
)

// `hangar pg import --from URL -a DB`: `pg migrate` (internal/pgmigrate:
// a consistent copy, then counts and checksums of every table) into the
// cluster's primary, reached at its Flycast address with TLS checked
// against the cluster CA, as a superuser made for the import and dropped
// afterwards.

// pgImportRole is the temporary role the import connects as.
const pgImportRole = "hangar_import"

func newPgImportCmd() *cobra.Command {
	var app, config, from, database, subConnInfo string
	var live, asJSON bool
	var jobs int
	cmd := &cobra.Command{
		Use:   "import --from URL -a DB",
		Short: "Copy a PostgreSQL database into a Hangar Postgres cluster and prove the copy complete (pg migrate)",
		Long: `Copy a database from any PostgreSQL (Fly, RDS, Heroku, Render, your own)
into the primary of a Hangar Postgres cluster, with ` + "`hangar pg migrate`" + `: a
consistent snapshot dumped and restored in parallel, then every table
compared on both sides (exact row counts and a checksum of every row),
sequences and extensions too. Exits 2 naming the tables if they differ.

The database is made on the cluster (named as the source's, or
--database-name) and must be new or empty. The copy connects to the
primary through the cluster's Flycast address with TLS checked against
the cluster CA, as a temporary superuser that is dropped afterwards; the
objects copied belong to postgres (give an app its database with
` + "`hangar pg attach DB -a APP --database-name NAME`" + `).

With --live, the cluster subscribes to the source (logical replication:
the source needs wal_level=logical), and once it has caught up the source
is made read-only, the sequences copied and both sides verified (the
cutover) in the same command. The cluster's primary must reach the source:
--subscription-conninfo gives the source's URL as seen from inside the
cluster, if it differs from --from.`,
		Example: `  hangar pg import --from postgres://app:PW@old-db.example.com:5432/app -a mydb
  hangar pg import --from postgres://app:PW@old-db.example.com:5432/app -a mydb --live`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			src, err := url.Parse(from)
			if err != nil || (src.Scheme != "postgres" && src.Scheme != "postgresql") || src.Host == "" {
				return &HintError{Err: errors.New("--from is not a postgres:// URL"), Hint: "pass --from postgres://USER:PASSWORD@HOST:PORT/DATABASE"}
			}
			if database == "" {
				database = strings.TrimPrefix(src.Path, "/")
			}
			if !pgIdent.MatchString(database) {
				return &HintError{Err: fmt.Errorf("%q is not a plain PostgreSQL database name", database), Hint: "pass --database-name NAME (lowercase letters, digits and _)"}
			}
			m, err := pgMachine(ctx, c, name)
			if err != nil {
				return err
			}
			ca := pgCAOf(m)
			if ca == "" {
				return &HintError{Err: fmt.Errorf("%s is not a Hangar Postgres cluster made by `hangar pg create`", name), Hint: "import into a cluster: `hangar pg create --name DB`, or use `hangar pg migrate --to URL`"}
			}
			var ips []types.IPAddress
			if err := c.do(ctx, "GET", "/v1/apps/"+url.PathEscape(name)+"/ips", nil, &ips); err != nil {
				return fmt.Errorf("%s's addresses: %w", name, err)
			}
			flycast := ""
			for _, ip := range ips {
				if ip.Type == types.IPTypePrivateV6 {
					flycast = ip.Address
				}
			}
			if flycast == "" {
				return &HintError{Err: fmt.Errorf("%s has no Flycast address", name), Hint: "`hangar ips allocate-v6 --private -a " + name + "`"}
			}
			errw := cmd.ErrOrStderr()

			// The target: a new (or empty) database, and a superuser for
			// the copy only.
			exists, err := pgSQL(ctx, c, name, m.ID, "postgres", fmt.Sprintf("select count(*) from pg_database where datname = '%s';", database))
			if err != nil {
				return err
			}
			if exists == "0" {
				fmt.Fprintf(errw, "Creating database %s on %s\n", database, name)
				if _, err := pgSQL(ctx, c, name, m.ID, "postgres", fmt.Sprintf("CREATE DATABASE %s;", database)); err != nil {
					return err
				}
			}
			password := randomSecret()
			if _, err := pgSQL(ctx, c, name, m.ID, "postgres", fmt.Sprintf("DROP ROLE IF EXISTS %[1]s; CREATE ROLE %[1]s LOGIN SUPERUSER PASSWORD '%[2]s';", pgImportRole, password)); err != nil {
				return fmt.Errorf("make the import's user on %s: %w", name, err)
			}
			defer func() {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				if err := pgDropImportRole(cctx, c, name, database); err != nil {
					fmt.Fprintf(errw, "Warning: the import's user %s is still on %s: %v (drop it with `hangar pg connect -a %s`)\n", pgImportRole, name, err, name)
				}
			}()
			dir, err := os.MkdirTemp("", "hangar-pg-import-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			caFile := filepath.Join(dir, "ca.crt")
			if err := os.WriteFile(caFile, []byte(ca), 0o600); err != nil {
				return err
			}
			// verify-ca: the chain is the cluster CA's; the name the
			// certificate has, DB.flycast, resolves in machines only.
			to := (&url.URL{Scheme: "postgres", User: url.UserPassword(pgImportRole, password), Host: net.JoinHostPort(flycast, "5432"), Path: "/" + database,
				RawQuery: url.Values{"sslmode": {"verify-ca"}, "sslrootcert": {caFile}}.Encode()}).String()
			o := pgmigrate.Options{From: from, To: to, Live: live, Yes: live, Jobs: jobs, SubscriptionConnInfo: subConnInfo, Progress: errw}
			fmt.Fprintf(errw, "Importing into %s (database %s, the primary %s, through %s.flycast)\n", name, database, m.ID, name)
			report, err := pgmigrate.Run(ctx, o)
			if report != nil && report.Status != "" {
				if perr := printPgReport(cmd.OutOrStdout(), report, asJSON); perr != nil && err == nil {
					err = perr
				}
			}
			return pgCLIError(err)
		},
	}
	appFlags(cmd, &app, &config)
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source database URL (postgres://USER:PASSWORD@HOST:PORT/DB)")
	f.StringVar(&database, "database-name", "", "the database to make on the cluster (default: the source's)")
	f.BoolVar(&live, "live", false, "replicate with logical replication, then cut over (the source becomes read-only)")
	f.StringVar(&subConnInfo, "subscription-conninfo", "", "with --live, the source URL as the cluster's primary reaches it, if not --from")
	f.IntVarP(&jobs, "jobs", "j", 4, "parallel connections for dump, restore and checksums")
	f.BoolVar(&asJSON, "json", false, "print the verification report as JSON")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

// pgDropImportRole gives what the import's user made to postgres and
// drops the user (on the primary of now: a failover may have happened).
func pgDropImportRole(ctx context.Context, c *client, app, database string) error {
	m, err := pgMachine(ctx, c, app)
	if err != nil {
		return err
	}
	for _, d := range []string{database, "postgres"} {
		if _, err := pgSQL(ctx, c, app, m.ID, d, fmt.Sprintf("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s') THEN REASSIGN OWNED BY %[1]s TO postgres; DROP OWNED BY %[1]s; END IF; END $$;", pgImportRole)); err != nil {
			return err
		}
	}
	_, err = pgSQL(ctx, c, app, m.ID, "postgres", fmt.Sprintf("DROP ROLE IF EXISTS %s;", pgImportRole))
	return err
}
