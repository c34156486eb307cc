package pgmigrate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pinnedSettings are sent in the startup packet of every connection, so the
// text form of every value — the input of the row checksums — is the same
// on both sides whatever the server, database or role defaults say.
var pinnedSettings = map[string]string{
	"DateStyle":          "ISO, MDY",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"search_path":        "pg_catalog",
	"lc_monetary":        "C",
	"client_encoding":    "UTF8",
	// Checksums of big tables take a while and the snapshot holder sits
	// idle in its transaction: do not let role defaults cut them off.
	"statement_timeout":                   "0",
	"lock_timeout":                        "0",
	"idle_in_transaction_session_timeout": "0",
	"application_name":                    "hangar-pg-migrate",
}

// defaultConnectTimeout applies when the URL does not set connect_timeout.
const defaultConnectTimeout = 10 * time.Second

// endpoint is one side of a migration.
type endpoint struct {
	role       string // "source" or "target"
	connString string
	cfg        *pgx.ConnConfig
	red        *redactor
}

// parseEndpoint validates a connection string.
func parseEndpoint(role, connString string, red *redactor) (*endpoint, error) {
	if strings.TrimSpace(connString) == "" {
		return nil, &Error{
			Msg:  fmt.Sprintf("the %s database URL is empty", role),
			Hint: fmt.Sprintf("pass --%s postgres://USER:PASSWORD@HOST:5432/DBNAME", flagFor(role)),
		}
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, &Error{
			Msg:  fmt.Sprintf("the %s database URL is not valid: %s", role, red.scrub(err.Error())),
			Err:  err,
			Hint: fmt.Sprintf("use --%s postgres://USER:PASSWORD@HOST:5432/DBNAME (percent-encode special characters in the password, e.g. @ as %%40)", flagFor(role)),
		}
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	for k, v := range pinnedSettings {
		cfg.RuntimeParams[k] = v
	}
	if cfg.Password != "" {
		red.add(cfg.Password)
	}
	return &endpoint{role: role, connString: connString, cfg: cfg, red: red}, nil
}

// connect opens a connection with the pinned session settings.
func (e *endpoint) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, e.cfg.Copy())
	if err != nil {
		return nil, connectError(e.role, err, e.red)
	}
	return conn, nil
}

// redacted is the connection string safe to print.
func (e *endpoint) redacted() string { return e.red.scrub(e.connString) }

// wrap gives a failed statement context and advice.
func (e *endpoint) wrap(doing string, err error) error {
	if err == nil {
		return nil
	}
	return queryError(e.role, doing, err, e.red)
}

// closeConn closes c, bounded in time so a dead server cannot hang us.
func closeConn(c *pgx.Conn) {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// quoteIdent quotes a name for SQL.
func quoteIdent(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// is on in every supported server version).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
