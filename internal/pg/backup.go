package pg

import (
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// Backups with pgBackRest: a repository machine in the database's app
// (process group "backup", its own volume pg_backup at /backup) runs
// `pgbackrest server` (TLS, client certificates from the cluster CA) and
// keeps the repository; every member runs a pgbackrest server too and
// archives its WAL to the repository host (archive_command through
// Patroni), so archiving follows whichever member is primary. Backups run
// on the repository machine (pgBackRest takes them from there), against
// the member Patroni names leader. See docs/postgres.md.

// Names and paths of the backup side.
const (
	// BackupGroup is the repository machine's process group; it is
	// reached at BackupGroup.process.DB.internal.
	BackupGroup = "backup"
	// BackupVolume is the repository machine's volume, mounted at
	// BackupMount.
	BackupVolume = "pg_backup"
	BackupMount  = "/backup"
	// BackupPort is the port of every pgbackrest TLS server (members and
	// the repository machine).
	BackupPort = 8432
	// BackupMetricsPort is where the repository machine serves its
	// Prometheus metrics (the app's [[metrics]]).
	BackupMetricsPort = 9188
	// BackupCtl is the helper the CLI runs in the repository machine
	// (python3 BackupCtl init|backup TYPE|info|check).
	BackupCtl = ConfigDir + "/backup.py"
	// BackupConfig is where pgBackRest reads its configuration, in members
	// and in the repository machine.
	BackupConfig = "/etc/pgbackrest/pgbackrest.conf"
	// SecretBackupKey is the repository machine's TLS key (its
	// certificate is BackupNames'); the members use their server key.
	SecretBackupKey = "PG_BACKUP_TLS_KEY"
	// SecretS3Key and SecretS3KeySecret are an S3 repository's
	// credentials, which pgBackRest reads from the environment.
	SecretS3Key       = "PGBACKREST_REPO1_S3_KEY"
	SecretS3KeySecret = "PGBACKREST_REPO1_S3_KEY_SECRET"
)

//go:embed backup.py
var backupScript []byte

//go:embed backup-start.sh
var backupStart []byte

// BackupHost is the repository machine's name on the private network.
func BackupHost(app string) string { return BackupGroup + ".process." + app + ".internal" }

// BackupNames are the names of the repository machine's certificate.
func BackupNames(app string) []string { return []string{BackupHost(app)} }

// BackupClientCN is the common name of the members' certificate (the
// first of ServerNames), which the repository's TLS server authorizes.
func BackupClientCN(app string) string { return ServerNames(app)[0] }

// S3Options are an S3-compatible repository (instead of the volume).
type S3Options struct {
	Endpoint string // host[:port], https
	Bucket   string
	Region   string
	// VerifyTLS false accepts any certificate of the endpoint (a local
	// S3 with a self-signed certificate).
	VerifyTLS bool
}

// BackupOptions describe a cluster's backups.
type BackupOptions struct {
	// RetentionFull is how many full backups pgBackRest keeps (with the
	// WAL they need); older ones are expired after each backup.
	RetentionFull int
	Schedule      BackupSchedule
	// S3, when set, is the repository instead of the volume.
	S3 *S3Options
}

// RestoreOptions make a new cluster's first member restore from a
// backup instead of running initdb: pgBackRest restores the latest backup
// before Target from the stanza From (a copy of the source cluster's
// repository in the new cluster's own), and PostgreSQL replays WAL up to
// Target, then promotes.
type RestoreOptions struct {
	From   string
	Target time.Time
}

// BackupSchedule is how often the repository machine takes a full and a
// differential backup on its own (0: never).
type BackupSchedule struct {
	Full, Diff time.Duration
}

// DefaultBackupSchedule is a full backup a day and a differential one an
// hour.
var DefaultBackupSchedule = BackupSchedule{Full: 24 * time.Hour, Diff: time.Hour}

// String is the schedule as ParseBackupSchedule reads it.
func (s BackupSchedule) String() string {
	f := func(d time.Duration) string {
		if d == 0 {
			return "off"
		}
		return d.String()
	}
	return "full=" + f(s.Full) + ",diff=" + f(s.Diff)
}

// ParseBackupSchedule reads "full=24h,diff=1h" (either may be left out,
// keeping the default; "off" turns a kind off). The shortest interval is
// a minute.
func ParseBackupSchedule(s string) (BackupSchedule, error) {
	out := DefaultBackupSchedule
	s = strings.TrimSpace(s)
	if s == "" {
		return out, nil
	}
	if s == "off" {
		return BackupSchedule{}, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || (k != "full" && k != "diff") {
			return BackupSchedule{}, fmt.Errorf("backup schedule %q: %q is not full=DURATION or diff=DURATION", s, part)
		}
		if seen[k] {
			return BackupSchedule{}, fmt.Errorf("backup schedule %q: %s given twice", s, k)
		}
		seen[k] = true
		var d time.Duration
		if v != "off" {
			var err error
			d, err = time.ParseDuration(v)
			if err != nil {
				return BackupSchedule{}, fmt.Errorf("backup schedule %q: %s: %w", s, k, err)
			}
			if d < time.Minute {
				return BackupSchedule{}, fmt.Errorf("backup schedule %q: %s every %s: the shortest interval is 1m", s, k, d)
			}
		}
		if k == "full" {
			out.Full = d
		} else {
			out.Diff = d
		}
	}
	return out, nil
}

// Validate checks an S3 repository's options (and trims an https:// endpoint to host:port).
func (o *S3Options) Validate() error {
	if o.Endpoint == "" || o.Bucket == "" || o.Region == "" {
		return errors.New("an S3 repository needs an endpoint, a bucket and a region")
	}
	if strings.Contains(o.Endpoint, "/") {
		u, err := url.Parse(o.Endpoint)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("S3 endpoint %q: give host[:port] or https://host[:port] (pgBackRest speaks HTTPS only)", o.Endpoint)
		}
		o.Endpoint = u.Host
	}
	for _, s := range []string{o.Endpoint, o.Bucket, o.Region} {
		if strings.ContainsAny(s, "\n\r=[] \t") {
			return fmt.Errorf("S3 option %q has a character pgBackRest's configuration cannot hold", s)
		}
	}
	return nil
}

// conf renders a pgBackRest configuration: sections in order, keys sorted.
func conf(sections []string, values map[string]map[string]string) []byte {
	var b strings.Builder
	for i, s := range sections {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "[%s]\n", s)
		keys := make([]string, 0, len(values[s]))
		for k := range values[s] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%s\n", k, values[s][k])
		}
	}
	return []byte(b.String())
}

// tlsRun is where the start scripts copy the TLS files for the postgres
// user (pgBackRest and PostgreSQL run as postgres; mounted files are
// root's).
const tlsRun = "/run/hangar-pg"

// MemberBackupConfig is a member's pgBackRest configuration: its own TLS
// server (the repository machine takes backups through it) and the
// repository host for archive-push and archive-get. No secret is in it.
func MemberBackupConfig(app string, version int) []byte {
	if version == 0 {
		version = DefaultVersion
	}
	g := map[string]string{
		"repo1-host":           BackupHost(app),
		"repo1-host-type":      "tls",
		"repo1-host-port":      strconv.Itoa(BackupPort),
		"repo1-host-ca-file":   tlsRun + "/ca.crt",
		"repo1-host-cert-file": tlsRun + "/server.crt",
		"repo1-host-key-file":  tlsRun + "/server.key",
		"tls-server-address":   "::",
		"tls-server-port":      strconv.Itoa(BackupPort),
		"tls-server-ca-file":   tlsRun + "/ca.crt",
		"tls-server-cert-file": tlsRun + "/server.crt",
		"tls-server-key-file":  tlsRun + "/server.key",
		// Only the repository machine of this cluster, for its stanza.
		"tls-server-auth":   BackupNames(app)[0] + "=" + app,
		"log-level-console": "info",
		"log-level-file":    "off",
		"log-level-stderr":  "warn",
		"lock-path":         "/tmp/pgbackrest",
		"archive-timeout":   "60",
		"process-max":       "2",
		"compress-type":     "lz4",
	}
	s := map[string]string{
		"pg1-path":        DataDir,
		"pg1-port":        strconv.Itoa(Port),
		"pg1-socket-path": "/tmp",
		"pg1-user":        "postgres",
	}
	_ = version
	return conf([]string{"global", app}, map[string]map[string]string{"global": g, app: s})
}

// RepoBackupConfig is the repository machine's pgBackRest configuration:
// the repository (the volume, or S3 whose keys come from the
// environment), retention, its TLS server for the members, and its
// client side for taking backups from a member (pg1-host is given per
// run: the current primary). No secret is in it.
func RepoBackupConfig(app string, o BackupOptions) []byte {
	g := map[string]string{
		"tls-server-address":   "::",
		"tls-server-port":      strconv.Itoa(BackupPort),
		"tls-server-ca-file":   tlsRun + "/ca.crt",
		"tls-server-cert-file": tlsRun + "/backup.crt",
		"tls-server-key-file":  tlsRun + "/backup.key",
		// The members of this cluster (their certificate's name), for
		// every stanza in this repository: their own, and a restore's.
		"tls-server-auth":   BackupClientCN(app) + "=*",
		"log-level-console": "info",
		"log-level-file":    "off",
		"log-level-stderr":  "warn",
		"lock-path":         "/tmp/pgbackrest",
		"start-fast":        "y",
		"process-max":       "2",
		"compress-type":     "lz4",
		"archive-timeout":   "60",
	}
	if o.RetentionFull > 0 {
		g["repo1-retention-full"] = strconv.Itoa(o.RetentionFull)
	}
	if o.S3 != nil {
		g["repo1-type"] = "s3"
		g["repo1-path"] = "/" + app
		g["repo1-s3-endpoint"] = o.S3.Endpoint
		g["repo1-s3-bucket"] = o.S3.Bucket
		g["repo1-s3-region"] = o.S3.Region
		g["repo1-s3-uri-style"] = "path"
		if !o.S3.VerifyTLS {
			g["repo1-storage-verify-tls"] = "n"
		}
	} else {
		g["repo1-path"] = BackupMount + "/repo"
	}
	// pg1-host (the primary) is given per run.
	st := map[string]string{
		"pg1-host-type":      "tls",
		"pg1-host-port":      strconv.Itoa(BackupPort),
		"pg1-host-ca-file":   tlsRun + "/ca.crt",
		"pg1-host-cert-file": tlsRun + "/backup.crt",
		"pg1-host-key-file":  tlsRun + "/backup.key",
		"pg1-path":           DataDir,
		"pg1-port":           strconv.Itoa(Port),
		"pg1-socket-path":    "/tmp",
	}
	return conf([]string{"global", app}, map[string]map[string]string{"global": g, app: st})
}

// applyBackup adds continuous archiving (and a restore's bootstrap) to
// Patroni's configuration.
func applyBackup(cfg map[string]any, params map[string]any, o ClusterOptions) {
	if o.Backup == nil {
		return
	}
	params["archive_mode"] = "on"
	params["archive_command"] = "pgbackrest --stanza=" + o.App + " archive-push %p"
	// A segment is archived at least every minute: the point a restore
	// can reach lags the primary by at most that.
	params["archive_timeout"] = "60s"
	if o.Restore == nil {
		return
	}
	boot := cfg["bootstrap"].(map[string]any)
	boot["method"] = "hangar_restore"
	boot["hangar_restore"] = map[string]any{
		"command":                     "/bin/sh " + ConfigDir + "/restore.sh",
		"no_params":                   true,
		"keep_existing_recovery_conf": true,
	}
	boot["post_init"] = "/bin/sh " + ConfigDir + "/restore-done.sh"
}

// RestoreTarget is the recovery target time as PostgreSQL reads it.
func RestoreTarget(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.000000") + "+00"
}

// restoreScript restores the latest backup before the target from the
// stanza o.From and leaves PostgreSQL set to replay WAL up to it, then
// promote; restoreDone removes those settings once the member is primary
// (the members that clone from it must not recover from the source's
// archive).
func restoreScripts(o RestoreOptions) (restore, done []byte) {
	restore = []byte(fmt.Sprintf(`#!/bin/sh
# Hangar Postgres: Patroni's bootstrap of a restored cluster.
set -eu
echo "hangar-pg: restoring %[1]s as of %[2]s" >&2
exec pgbackrest --stanza=%[1]s --pg1-path=%[3]s --type=time "--target=%[2]s" --target-action=promote --log-level-console=info restore
`, o.From, RestoreTarget(o.Target), DataDir))
	done = []byte(`#!/bin/sh
# Hangar Postgres: after the restore, the member recovers from nothing.
set -eu
psql -X -q -v ON_ERROR_STOP=1 "$1" <<'EOF'
ALTER SYSTEM RESET restore_command;
ALTER SYSTEM RESET recovery_target_time;
ALTER SYSTEM RESET recovery_target_action;
SELECT pg_reload_conf();
EOF
`)
	return restore, done
}

// addBackupFiles adds the members' pgBackRest files to their config.
func addBackupFiles(c *types.MachineConfig, o ClusterOptions) {
	if o.Backup == nil {
		return
	}
	raw := func(b []byte) *string { s := base64.StdEncoding.EncodeToString(b); return &s }
	c.Files = append(c.Files, types.File{GuestPath: BackupConfig, RawValue: raw(MemberBackupConfig(o.App, o.Version))})
	if o.Restore != nil {
		r, d := restoreScripts(*o.Restore)
		c.Files = append(c.Files,
			types.File{GuestPath: ConfigDir + "/restore.sh", RawValue: raw(r), Mode: 0o755},
			types.File{GuestPath: ConfigDir + "/restore-done.sh", RawValue: raw(d), Mode: 0o755})
	}
	c.Env["PG_BACKUP"] = "1"
}

// RepoMachineConfig is the repository machine: the image, the volume at
// /backup (none with S3), pgBackRest's configuration and TLS files, the
// helper (backup.py) that serves the repository, takes scheduled
// backups and serves metrics.
func RepoMachineConfig(app string, o BackupOptions, imageRef string, guest types.MachineGuest, volumeID string, repoCert, caCert []byte) *types.MachineConfig {
	raw := func(b []byte) *string { s := base64.StdEncoding.EncodeToString(b); return &s }
	secret := func(s string) *string { return &s }
	c := &types.MachineConfig{
		Image: imageRef,
		Guest: &guest,
		Init:  types.MachineInit{Entrypoint: []string{"/bin/sh", ConfigDir + "/backup-start.sh"}},
		Env: map[string]string{
			"PG_CLUSTER":           app,
			"PG_BACKUP_FULL_EVERY": strconv.Itoa(int(o.Schedule.Full / time.Second)),
			"PG_BACKUP_DIFF_EVERY": strconv.Itoa(int(o.Schedule.Diff / time.Second)),
		},
		Files: []types.File{
			{GuestPath: ConfigDir + "/backup-start.sh", RawValue: raw(backupStart), Mode: 0o755},
			{GuestPath: BackupCtl, RawValue: raw(backupScript)},
			{GuestPath: BackupConfig, RawValue: raw(RepoBackupConfig(app, o))},
			{GuestPath: ConfigDir + "/backup.crt", RawValue: raw(repoCert)},
			{GuestPath: ConfigDir + "/ca.crt", RawValue: raw(caCert)},
			{GuestPath: ConfigDir + "/backup.key", SecretName: secret(SecretBackupKey)},
		},
		Restart:  &types.MachineRestart{Policy: "always"},
		Metrics:  &types.MachineMetrics{Port: BackupMetricsPort, Path: "/metrics"},
		Metadata: map[string]string{types.MetaProcessGroup: BackupGroup, "hangar_pg_backup": app},
	}
	if o.S3 == nil {
		c.Mounts = []types.MachineMount{{Volume: volumeID, Path: BackupMount}}
	} else {
		c.Env["PG_BACKUP_S3"] = "1"
	}
	return c
}
