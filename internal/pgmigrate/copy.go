package pgmigrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// pgTools locates pg_dump and pg_restore.
type pgTools struct {
	dump, restore string
	major         int // major version of pg_dump
}

// debianPgBinGlob is where Debian and Ubuntu install the server and client
// binaries of each major version.
const debianPgBinGlob = "/usr/lib/postgresql/*/bin"

// findTools finds pg_dump and pg_restore in dir, else on PATH, else in the
// newest Debian-style versioned directory. serverMajor is the source's
// major version: pg_dump must be at least as new.
func findTools(dir string, serverMajor int) (*pgTools, error) {
	var candidates []string
	if dir != "" {
		candidates = append(candidates, dir)
	} else {
		if p, err := exec.LookPath("pg_dump"); err == nil {
			candidates = append(candidates, filepath.Dir(p))
		}
		dirs, _ := filepath.Glob(debianPgBinGlob)
		sort.Slice(dirs, func(i, j int) bool { return versionOfDir(dirs[i]) > versionOfDir(dirs[j]) })
		candidates = append(candidates, dirs...)
	}
	var tooOld []string
	for _, d := range candidates {
		t := &pgTools{dump: filepath.Join(d, "pg_dump"), restore: filepath.Join(d, "pg_restore")}
		if _, err := os.Stat(t.dump); err != nil {
			continue
		}
		if _, err := os.Stat(t.restore); err != nil {
			continue
		}
		major, err := toolMajor(t.dump)
		if err != nil {
			continue
		}
		t.major = major
		if major < serverMajor {
			tooOld = append(tooOld, fmt.Sprintf("%s (version %d)", t.dump, major))
			continue
		}
		return t, nil
	}
	if len(tooOld) > 0 {
		return nil, &Error{
			Msg:  fmt.Sprintf("pg_dump must be version %d or newer to dump the source, found only %s", serverMajor, strings.Join(tooOld, ", ")),
			Hint: fmt.Sprintf("install the PostgreSQL %d client (Debian: apt-get install postgresql-client-%d) and pass --pg-bin with its bin directory if it is not on PATH", serverMajor, serverMajor),
		}
	}
	where := "on PATH or in " + debianPgBinGlob
	if dir != "" {
		where = "in " + dir
	}
	return nil, &Error{
		Msg:  "pg_dump and pg_restore were not found " + where,
		Hint: "install the PostgreSQL client tools (Debian: apt-get install postgresql-client) or pass --pg-bin DIR",
	}
}

var versionRE = regexp.MustCompile(`\b(\d+)(?:\.(\d+))?`)

func versionOfDir(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// toolMajor runs "tool --version" ("pg_dump (PostgreSQL) 15.14 (Debian ...)").
func toolMajor(tool string) (int, error) {
	out, err := exec.Command(tool, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", tool, err)
	}
	s := string(out)
	if i := strings.Index(s, ")"); i >= 0 {
		s = s[i+1:]
	}
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%s --version: cannot read %q", tool, out)
	}
	return strconv.Atoi(m[1])
}

// childEnv is the environment for a client tool talking to ep: the
// password travels in PGPASSWORD, never on the command line.
func childEnv(ep *endpoint) []string {
	env := os.Environ()
	if ep.cfg.Password != "" {
		env = append(env, "PGPASSWORD="+ep.cfg.Password)
	}
	if os.Getenv("PGCONNECT_TIMEOUT") == "" {
		env = append(env, "PGCONNECT_TIMEOUT=10")
	}
	// Pinned settings for the tools' sessions too (pg_dump sets its own
	// DateStyle and friends on top of these; harmless).
	env = append(env, "PGAPPNAME=hangar-pg-migrate")
	return env
}

// toolOutput collects a client tool's --verbose stderr: lines about a
// table's data go to progress as they come, the rest (errors, and the
// statements that failed) is kept for the error message.
type toolOutput struct {
	mu       sync.Mutex // guards partial and kept
	partial  []byte
	kept     []string
	progress func(string)
}

// maxKeptLines bounds the error output kept from a tool.
const maxKeptLines = 60

func (o *toolOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		o.line(string(o.partial[:i]))
		o.partial = o.partial[i+1:]
	}
}

func (o *toolOutput) line(l string) {
	l = strings.TrimRight(l, "\r")
	lower := strings.ToLower(l)
	verbose := strings.HasPrefix(l, "pg_dump: ") || strings.HasPrefix(l, "pg_restore: ")
	important := strings.Contains(lower, "error") || strings.Contains(lower, "warning") ||
		strings.Contains(lower, "detail") || strings.Contains(lower, "hint")
	switch {
	case verbose && !important:
		if o.progress != nil && (strings.Contains(l, "dumping contents of table") || strings.Contains(l, "processing data for table")) {
			o.progress(l)
		}
	case strings.TrimSpace(l) != "":
		o.kept = append(o.kept, l)
		if len(o.kept) > maxKeptLines {
			o.kept = o.kept[len(o.kept)-maxKeptLines:]
		}
	}
}

func (o *toolOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.partial) > 0 {
		o.line(string(o.partial))
		o.partial = nil
	}
	return strings.Join(o.kept, "\n")
}

// runTool runs a client tool with --verbose, reporting per-table progress,
// and returns a redacted error with its messages.
func runTool(ctx context.Context, ep *endpoint, progress func(string), name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, append([]string{"--verbose"}, args...)...)
	cmd.Env = childEnv(ep)
	out := &toolOutput{progress: progress}
	cmd.Stderr = out
	cmd.Stdout = out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	tool := filepath.Base(name)
	msg := ep.red.scrub(strings.TrimSpace(out.String()))
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return &Error{Msg: fmt.Sprintf("%s: run %s: %s", ep.role, tool, ep.red.scrub(err.Error())), Err: err}
	}
	e := &Error{Msg: fmt.Sprintf("%s failed on the %s (%s):\n%s", tool, ep.role, ee.ProcessState, msg), Err: err}
	switch {
	case strings.Contains(msg, "permission denied"):
		e.Hint = fmt.Sprintf("the %s user lacks privileges: run the migration as the database owner or a superuser (see docs/pg-migrate.md, Permissions)", ep.role)
	case strings.Contains(msg, "is not available") && strings.Contains(msg, "extension"):
		e.Hint = "an extension used by the source is not installed on the target server: install its package there (e.g. postgresql-15-postgis-3) and retry into an empty database"
	case strings.Contains(msg, "already exists"):
		e.Hint = "the target already has some of these objects: migrate into an empty database (dropdb and createdb it again)"
	case strings.Contains(msg, "server version mismatch") || strings.Contains(msg, "unsupported version"):
		e.Hint = "install client tools at least as new as the source server and pass --pg-bin DIR"
	}
	return e
}

// dump runs pg_dump in directory format into dir, from the exported
// snapshot when one is given.
func (t *pgTools) dumpTo(ctx context.Context, ep *endpoint, progress func(string), dir, snapshot string, jobs int, schemaOnly bool) error {
	// Publications and subscriptions describe the old server's replication,
	// not the application's data: they stay behind.
	args := []string{"--format=directory", "--file=" + dir, "--no-sync", "--jobs=" + strconv.Itoa(jobs),
		"--no-publications", "--no-subscriptions"}
	if snapshot != "" {
		args = append(args, "--snapshot="+snapshot)
	}
	if schemaOnly {
		args = append(args, "--schema-only")
	}
	args = append(args, "--dbname="+stripPassword(ep.connString))
	return runTool(ctx, ep, progress, t.dump, args...)
}

// restore runs pg_restore from dir into the target. Owners and grants are
// not restored: the roles of the source usually do not exist on the
// target, and the objects belong to the user who runs the migration.
func (t *pgTools) restoreFrom(ctx context.Context, ep *endpoint, progress func(string), dir string, jobs int) error {
	args := []string{"--format=directory", "--no-owner", "--no-privileges", "--exit-on-error",
		"--jobs=" + strconv.Itoa(jobs), "--dbname=" + stripPassword(ep.connString), dir}
	return runTool(ctx, ep, progress, t.restore, args...)
}
