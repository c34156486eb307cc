package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-dev/hangar/internal/harness"
)

// testPgBackup: a 2-member cluster made by `pg create` archives its WAL
// and has a first full backup in its repository machine; `pg backup
// create` takes more, also after a switchover (archiving follows the
// primary); `pg restore --time` makes a new cluster with the rows before
// the time and not the later ones (nor the drop of the table); bad input
// (a time before the first backup, a taken name, an app that is not a
// Hangar Postgres, an S3 endpoint that refuses the keys) is a clear error
// that leaves nothing made.
func testPgBackup(t *testing.T, d *harness.Daemon) {
	const db, restored = "pgb", "pgb-restored"
	// cleanupVolumes of an app that does not exist checks every volume
	// (the parent test's too): it is registered only for apps that exist.
	cleanupVolumes(t, d, db)
	t.Cleanup(func() {
		if t.Failed() {
			for _, app := range []string{db, restored} {
				logs, _ := d.Hangar("logs", "-a", app)
				if l := strings.Split(logs, "\n"); len(l) > 120 {
					logs = strings.Join(l[len(l)-120:], "\n")
				}
				t.Logf("%s's last logs:\n%s", app, logs)
			}
		}
	})
	start := time.Now()
	out := hangarOK(t, d, "pg", "create", "--name", db, "--initial-cluster-size", "2", "--volume-size-mb", "256", "--backup-retention", "3")
	t.Logf("pg create with backups: %s", time.Since(start).Round(100*time.Millisecond))
	pw := regexp.MustCompile(`Password:\s+(\S+)`).FindStringSubmatch(out)
	if pw == nil {
		t.Fatalf("pg create output:\n%s", out)
	}
	var repo, members int
	for _, m := range d.Machines(db) {
		switch {
		case m.Config.Metadata["hangar_pg_backup"] == db:
			repo++
		case m.Config.Metadata["hangar_pg_cluster"] == db:
			members++
		}
	}
	if repo != 1 || members != 2 {
		t.Fatalf("%s: %d repository machines and %d members, want 1 and 2", db, repo, members)
	}

	type backup struct {
		Label     string `json:"label"`
		Type      string `json:"type"`
		Timestamp struct{ Start, Stop int64 }
	}
	list := func(app string) []backup {
		t.Helper()
		var info []struct {
			Name   string   `json:"name"`
			Backup []backup `json:"backup"`
		}
		if err := json.Unmarshal([]byte(hangarOK(t, d, "pg", "backup", "list", "-a", app, "--json")), &info); err != nil {
			t.Fatal(err)
		}
		for _, s := range info {
			if s.Name == app {
				return s.Backup
			}
		}
		return nil
	}
	bs := list(db)
	if len(bs) != 1 || bs[0].Type != "full" {
		t.Fatalf("backups after create: %+v, want one full", bs)
	}
	first := bs[0]

	type status struct {
		Members []struct {
			Name, Role, State, Host string
		} `json:"members"`
		Backup *struct {
			LastBackup *struct{ Label, Type string } `json:"last_backup"`
			Failures   int                           `json:"failures"`
			WAL        string                        `json:"last_archived_wal"`
			Error      string                        `json:"error"`
		} `json:"backup"`
	}
	getStatus := func(app string) status {
		t.Helper()
		var s status
		if err := json.Unmarshal([]byte(hangarOK(t, d, "pg", "status", "-a", app, "--json")), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	primaryConn := func(app string) *pgx.Conn {
		t.Helper()
		var conn *pgx.Conn
		harness.Poll(t, app+"'s primary", 60*time.Second, func() (bool, string) {
			s := getStatus(app)
			for _, m := range s.Members {
				if m.Role == "leader" && m.State == "running" {
					u := (&url.URL{Scheme: "postgres", User: url.UserPassword("postgres", pw[1]), Host: net.JoinHostPort(m.Host, "5432"), Path: "/postgres", RawQuery: "sslmode=require"}).String()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					c, err := pgx.Connect(ctx, u)
					if err != nil {
						return false, err.Error()
					}
					conn = c
					return true, ""
				}
			}
			return false, "no primary"
		})
		return conn
	}
	st := getStatus(db)
	if st.Backup == nil || st.Backup.LastBackup == nil || st.Backup.LastBackup.Label != first.Label || st.Backup.Error != "" {
		t.Fatalf("pg status's backup: %+v, want the last backup %s", st.Backup, first.Label)
	}
	if text := hangarOK(t, d, "pg", "status", "-a", db); !strings.Contains(text, "Last backup: "+first.Label) {
		t.Fatalf("pg status:\n%s", text)
	}

	ctx := context.Background()
	conn := primaryConn(db)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("create table kept (id int primary key)")
	exec("insert into kept select generate_series(1, 10)")
	start = time.Now()
	out = hangarOK(t, d, "pg", "backup", "create", "-a", db, "--type", "diff")
	t.Logf("pg backup create --type diff: %s (%s)", time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(out))
	exec("insert into kept select generate_series(11, 20)")
	var target time.Time
	if err := conn.QueryRow(ctx, "select now()").Scan(&target); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the later writes are after target, to the clock's resolution
	exec("insert into kept select generate_series(21, 30)")
	exec("create table later (id int)")
	exec("drop table kept")
	conn.Close(ctx)

	// A switchover, then a backup: the new primary archives too (a
	// backup waits for its WAL to reach the archive).
	hangarOK(t, d, "pg", "failover", "-a", db)
	start = time.Now()
	hangarOK(t, d, "pg", "backup", "create", "-a", db, "--type", "incr")
	t.Logf("pg backup create --type incr after a switchover: %s", time.Since(start).Round(100*time.Millisecond))
	if bs := list(db); len(bs) != 3 || bs[1].Type != "diff" || bs[2].Type != "incr" {
		t.Fatalf("backups: %+v, want full, diff, incr", bs)
	}

	// Bad input: nothing is made.
	before := time.Unix(first.Timestamp.Start, 0).Add(-time.Minute).UTC().Format(time.RFC3339)
	if out, err := d.Hangar("pg", "restore", db, "--to", restored, "--time", before); err == nil || !strings.Contains(out, "before the first backup") {
		t.Fatalf("a restore time before the first backup: %v\n%s", err, out)
	}
	if code, _ := d.Call("GET", "/v1/apps/"+restored, nil); code != 404 {
		t.Fatalf("a refused restore left app %s (GET %d)", restored, code)
	}
	hangarOK(t, d, "apps", "create", "pgb-web")
	if out, err := d.Hangar("pg", "restore", db, "--to", "pgb-web", "--time", target.UTC().Format(time.RFC3339Nano)); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("a restore into a taken name: %v\n%s", err, out)
	}
	if out, err := d.Hangar("pg", "backup", "create", "-a", "pgb-web"); err == nil || !strings.Contains(out, "not a Hangar Postgres") {
		t.Fatalf("a backup of an app that is not a Hangar Postgres: %v\n%s", err, out)
	}
	if ms := d.Machines("pgb-web"); len(ms) != 0 {
		t.Fatalf("pgb-web has machines: %+v", ms)
	}

	cleanupVolumes(t, d, restored)
	start = time.Now()
	out = hangarOK(t, d, "pg", "restore", db, "--to", restored, "--time", target.UTC().Format(time.RFC3339Nano), "--volume-size-mb", "256")
	t.Logf("pg restore (a 1-member cluster): %s", time.Since(start).Round(100*time.Millisecond))
	rpw := regexp.MustCompile(`Password:\s+(\S+)`).FindStringSubmatch(out)
	if rpw == nil {
		t.Fatalf("pg restore output:\n%s", out)
	}
	pw = rpw // the restored cluster's own superuser password
	rc := primaryConn(restored)
	defer rc.Close(ctx)
	var n, maxID int
	if err := rc.QueryRow(ctx, "select count(*), max(id) from kept").Scan(&n, &maxID); err != nil || n != 20 || maxID != 20 {
		t.Fatalf("restored table kept: %d rows, max %d, %v; want the 20 rows written before %s", n, maxID, err, target)
	}
	var later bool
	if err := rc.QueryRow(ctx, "select exists (select 1 from pg_tables where tablename = 'later')").Scan(&later); err != nil || later {
		t.Fatalf("table made after the target is there: %v %v", later, err)
	}
	// The restored cluster writes, and backs up into its own repository.
	if _, err := rc.Exec(ctx, "insert into kept values (100)"); err != nil {
		t.Fatalf("write to the restored cluster: %v", err)
	}
	if bs := list(restored); len(bs) != 1 || bs[0].Type != "full" {
		t.Fatalf("the restored cluster's backups: %+v, want its first full", bs)
	}
	// The source keeps running.
	if s := getStatus(db); len(s.Members) != 2 {
		t.Fatalf("%s after the restore: %+v", db, s.Members)
	}
	if out, err := d.Hangar("pg", "restore", db, "--to", restored, "--time", target.UTC().Format(time.RFC3339Nano)); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("a restore into a taken name: %v\n%s", err, out)
	}

	// A backup that fails (the restored cluster's only member is stopped)
	// is an error, and is counted: in `pg status` once the member is
	// back, and in the metrics.
	var member string
	for _, m := range d.Machines(restored) {
		if m.Config.Metadata["hangar_pg_cluster"] == restored {
			member = m.ID
		}
	}
	hangarOK(t, d, "machine", "stop", member, "-a", restored)
	if out, err := d.Hangar("pg", "backup", "create", "-a", restored, "--type", "diff"); err == nil || !strings.Contains(out, "no primary found") {
		t.Fatalf("a backup without a primary: %v\n%s", err, out)
	}
	hangarOK(t, d, "machine", "start", member, "-a", restored)
	harness.Poll(t, "the failed backup in pg status", 90*time.Second, func() (bool, string) {
		out, err := d.Hangar("pg", "status", "-a", restored, "--json")
		if err != nil {
			return false, out
		}
		var s status
		if err := json.Unmarshal([]byte(out), &s); err != nil || s.Backup == nil {
			return false, out
		}
		return s.Backup.Failures == 1, out
	})

	// The repository machines' metrics reach the daemon's /metrics as the
	// apps' (their [metrics]): the last success, the failures.
	metric := func(name, app string) float64 {
		resp, err := http.Get(d.Metrics + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, name+"{") && strings.Contains(l, `app="`+app+`"`) {
				f := strings.Fields(l)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				return v
			}
		}
		return -1
	}
	harness.Poll(t, "the failed backup in the metrics", 60*time.Second, func() (bool, string) {
		v := metric("hangar_pg_backup_failures_total", restored)
		return v == 1, fmt.Sprint(v)
	})
	harness.Poll(t, "pgb's backup metrics on the daemon's /metrics", 60*time.Second, func() (bool, string) {
		resp, err := http.Get(d.Metrics + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var success, failures string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, `app="`+db+`"`) {
				continue
			}
			f := strings.Fields(l)
			switch {
			case strings.HasPrefix(l, "hangar_pg_backup_last_success_timestamp_seconds{"):
				success = f[len(f)-1]
			case strings.HasPrefix(l, "hangar_pg_backup_failures_total{"):
				failures = f[len(f)-1]
			}
		}
		v, _ := strconv.ParseFloat(success, 64)
		return v > float64(first.Timestamp.Stop-5) && failures == "0", "success " + success + ", failures " + failures
	})

	testPgBackupS3Refused(t, d)
}

// testPgBackupS3Refused: an S3 endpoint that answers every request 403
// (a small HTTPS server speaking S3's error) makes `pg create` fail with a
// clear error before any member is made, and nothing is left.
func testPgBackupS3Refused(t *testing.T, d *harness.Daemon) {
	// The machines reach the host on the bridge's gateway, where the
	// consensus store listens too.
	var gw string
	for _, m := range d.Machines("pgb") {
		if h := m.Config.Env["PG_CONSENSUS_HOST"]; h != "" {
			gw = h
		}
	}
	if gw == "" {
		t.Fatal("no gateway address in the members' config")
	}
	var hits atomic.Int32
	s3 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>`))
	}))
	ln, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if err != nil {
		t.Fatalf("listen on the gateway %s: %v", gw, err)
	}
	s3.Listener = ln
	s3.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	s3.StartTLS()
	defer s3.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	t.Setenv("PGBACKREST_REPO1_S3_KEY", "AKIAWRONG")
	t.Setenv("PGBACKREST_REPO1_S3_KEY_SECRET", "wrong-secret")
	out, err := d.Hangar("pg", "create", "--name", "pgb-s3", "--volume-size-mb", "256",
		"--backup-s3-endpoint", net.JoinHostPort(gw, strconv.Itoa(port)), "--backup-s3-bucket", "hangar", "--backup-s3-region", "us-east-1", "--backup-s3-no-verify-tls")
	if err == nil || !strings.Contains(out, "403") || !strings.Contains(out, "refused the credentials") {
		t.Fatalf("pg create with an S3 endpoint that refuses the keys: %v\n%s", err, out)
	}
	if strings.Contains(out, "wrong-secret") {
		t.Fatalf("the S3 secret is in the output:\n%s", out)
	}
	if hits.Load() == 0 {
		t.Fatal("the S3 endpoint was never asked")
	}
	if code, _ := d.Call("GET", "/v1/apps/pgb-s3", nil); code != 404 {
		cleanupVolumes(t, d, "pgb-s3")
		t.Fatalf("a refused create left app pgb-s3 (GET %d)", code)
	}
}
