package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Error is an error a person has to act on: Msg says what went wrong (with
// passwords redacted) and Hint what to do about it.
type Error struct {
	Msg  string
	Hint string
	Err  error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// MismatchError reports a verification that found differences. The report
// returned alongside it has the details.
type MismatchError struct {
	Tables    []string
	Sequences []string
	Other     []string
}

func (e *MismatchError) Error() string {
	var parts []string
	if len(e.Tables) > 0 {
		parts = append(parts, "tables differ: "+strings.Join(e.Tables, ", "))
	}
	if len(e.Sequences) > 0 {
		parts = append(parts, "sequences behind their columns or missing: "+strings.Join(e.Sequences, ", "))
	}
	if len(e.Other) > 0 {
		parts = append(parts, strings.Join(e.Other, "; "))
	}
	return "verification failed: " + strings.Join(parts, "; ")
}

// Exit codes of hangar pg migrate.
const (
	ExitOK       = 0
	ExitFailed   = 1 // could not migrate or verify: see the error and its hint
	ExitMismatch = 2 // verified, and the databases differ
)

// ExitCode is the process exit code for an error returned by Run.
func ExitCode(err error) int {
	var me *MismatchError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &me):
		return ExitMismatch
	default:
		return ExitFailed
	}
}

// PostgreSQL error codes this package gives advice for.
const (
	codeInvalidPassword      = "28P01"
	codeInvalidAuthorization = "28000"
	codeInvalidCatalogName   = "3D000"
	codeInsufficientPriv     = "42501"
	codeTooManyConnections   = "53300"
	codeCannotConnectNow     = "57P03"
	codeReadOnlyTransaction  = "25006"
	codeObjectInUse          = "55006"
	codeFeatureNotSupported  = "0A000"
	codeDuplicateObject      = "42710"
	codeUndefinedFile        = "58P01"
)

// connectError turns a failure to connect into an Error with advice.
// role is "source" or "target".
func connectError(role string, err error, red *redactor) error {
	msg := fmt.Sprintf("cannot connect to the %s database: %s", role, red.scrub(err.Error()))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeInvalidPassword, codeInvalidAuthorization:
			return &Error{Msg: msg, Err: err, Hint: fmt.Sprintf("check the user and password in the --%s URL, and that pg_hba.conf on that server lets this host connect as that user", flagFor(role))}
		case codeInvalidCatalogName:
			return &Error{Msg: msg, Err: err, Hint: fmt.Sprintf("create the database first (createdb NAME, or CREATE DATABASE NAME) or fix the database name at the end of the --%s URL", flagFor(role))}
		case codeTooManyConnections:
			return &Error{Msg: msg, Err: err, Hint: "the server has no free connection slots: lower --jobs or raise max_connections"}
		case codeCannotConnectNow:
			return &Error{Msg: msg, Err: err, Hint: "the server is starting up or shutting down: retry in a moment"}
		case codeInsufficientPriv:
			return &Error{Msg: msg, Err: err, Hint: "grant the user CONNECT on the database (GRANT CONNECT ON DATABASE NAME TO USER)"}
		}
		return &Error{Msg: msg, Err: err, Hint: fmt.Sprintf("check the --%s URL and the server log", flagFor(role))}
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return &Error{Msg: msg, Err: err, Hint: fmt.Sprintf("the %s server did not answer in time: check the host and port in --%s, that the server is running and that no firewall drops the connection (add ?connect_timeout=SECONDS to wait longer)", role, flagFor(role))}
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return &Error{Msg: msg, Err: err, Hint: fmt.Sprintf("the host name in --%s does not resolve: fix the host name", flagFor(role))}
	case errors.As(err, &opErr):
		return &Error{Msg: msg, Err: err, Hint: fmt.Sprintf("the %s server is unreachable: check that it is running and listening on the host and port in --%s (listen_addresses, port), and that no firewall blocks it", role, flagFor(role))}
	}
	return &Error{Msg: msg, Err: err, Hint: fmt.Sprintf("check the --%s URL, for example postgres://USER:PASSWORD@HOST:5432/DBNAME?sslmode=require, and that the server is running", flagFor(role))}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func flagFor(role string) string {
	if role == "source" {
		return "from"
	}
	return "to"
}

// queryError wraps a failed statement with what hangar was doing, and adds
// advice for missing privileges and read-only servers.
func queryError(role, doing string, err error, red *redactor) error {
	msg := fmt.Sprintf("%s: %s: %s", role, doing, red.scrub(err.Error()))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeInsufficientPriv:
			return &Error{Msg: msg, Err: err, Hint: fmt.Sprintf("the %s user lacks a privilege for this step: run it as the database owner or a superuser, or GRANT the privilege named above (see docs/pg-migrate.md, Permissions)", role)}
		case codeReadOnlyTransaction:
			return &Error{Msg: msg, Err: err, Hint: fmt.Sprintf("the %s database is read-only (a standby, or default_transaction_read_only is on): point --%s at a writable primary", role, flagFor(role))}
		}
	}
	return &Error{Msg: msg, Err: err}
}
