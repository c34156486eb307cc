package pg

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// confValues reads a pgBackRest configuration into section → key → value,
// failing on a line it cannot read or a key given twice.
func confValues(t *testing.T, b []byte) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	section := ""
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case l == "":
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			out[section] = map[string]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("line %q", l)
			}
			if _, dup := out[section][k]; dup {
				t.Fatalf("%s given twice in [%s]", k, section)
			}
			out[section][k] = v
		}
	}
	return out
}

// A member archives to its cluster's repository machine over TLS with
// its certificate, serves pgBackRest only to that repository machine,
// and keeps the pg1 options in its stanza (pgBackRest warns about them
// in [global] and then ignores them).
func TestMemberBackupConfig(t *testing.T) {
	c := confValues(t, MemberBackupConfig("shop-db", 15))
	g, s := c["global"], c["shop-db"]
	for k, want := range map[string]string{
		"repo1-host":           "backup.process.shop-db.internal",
		"repo1-host-type":      "tls",
		"repo1-host-port":      "8432",
		"repo1-host-cert-file": "/run/hangar-pg/server.crt",
		"repo1-host-key-file":  "/run/hangar-pg/server.key",
		"repo1-host-ca-file":   "/run/hangar-pg/ca.crt",
		"tls-server-auth":      "backup.process.shop-db.internal=shop-db",
		"tls-server-address":   "::",
	} {
		if g[k] != want {
			t.Errorf("[global] %s = %q, want %q", k, g[k], want)
		}
	}
	if s["pg1-path"] != DataDir || s["pg1-socket-path"] != "/tmp" {
		t.Errorf("[shop-db] %v", s)
	}
	for k := range g {
		if strings.HasPrefix(k, "pg1-") {
			t.Errorf("[global] has the stanza option %s", k)
		}
	}
}

// The repository machine: retention, the volume or S3 (without its
// keys: they are secrets in the environment), members authorized by the
// name of their certificate, backups from a member over TLS.
func TestRepoBackupConfig(t *testing.T) {
	c := confValues(t, RepoBackupConfig("db", BackupOptions{RetentionFull: 3}))
	g, s := c["global"], c["db"]
	if g["repo1-path"] != "/backup/repo" || g["repo1-retention-full"] != "3" || g["repo1-type"] != "" {
		t.Errorf("volume repository: %v", g)
	}
	if g["tls-server-auth"] != BackupClientCN("db")+"=*" || BackupClientCN("db") != "db.flycast" {
		t.Errorf("tls-server-auth %q", g["tls-server-auth"])
	}
	if s["pg1-host-type"] != "tls" || s["pg1-host-cert-file"] != "/run/hangar-pg/backup.crt" || s["pg1-path"] != DataDir || s["pg1-host"] != "" {
		t.Errorf("[db] %v", s)
	}

	c = confValues(t, RepoBackupConfig("db", BackupOptions{RetentionFull: 1, S3: &S3Options{Endpoint: "s3.example.com:9000", Bucket: "b", Region: "r"}}))
	g = c["global"]
	if g["repo1-type"] != "s3" || g["repo1-s3-endpoint"] != "s3.example.com:9000" || g["repo1-s3-bucket"] != "b" || g["repo1-s3-region"] != "r" || g["repo1-path"] != "/db" {
		t.Errorf("S3 repository: %v", g)
	}
	if _, ok := g["repo1-storage-verify-tls"]; !ok {
		t.Errorf("VerifyTLS false: want repo1-storage-verify-tls=n, got %v", g)
	}
	for k := range g {
		if strings.Contains(k, "s3-key") {
			t.Errorf("an S3 key option %s is in the file", k)
		}
	}
}

// The repository machine's config: no secret in any file or variable
// (the TLS key is a secret file, S3's keys the app's secrets), the volume
// mounted (none with S3), metrics, and the schedule.
func TestRepoMachineConfig(t *testing.T) {
	o := testOptions(t)
	secrets := []string{"AKIASECRET", "s3-secret-value"}
	for _, s3 := range []*S3Options{nil, {Endpoint: "h:1", Bucket: "b", Region: "r", VerifyTLS: true}} {
		bo := BackupOptions{RetentionFull: 2, Schedule: DefaultBackupSchedule, S3: s3}
		c := RepoMachineConfig("db", bo, "img", types.MachineGuest{}, "vol_1", []byte("CERT"), o.CACert)
		raw, _ := json.Marshal(c)
		for _, f := range c.Files {
			if f.RawValue != nil {
				b, _ := base64.StdEncoding.DecodeString(*f.RawValue)
				raw = append(raw, b...)
			}
		}
		for _, s := range secrets {
			if strings.Contains(string(raw), s) {
				t.Fatalf("secret %q in the repository machine's config", s)
			}
		}
		var key bool
		for _, f := range c.Files {
			if f.GuestPath == ConfigDir+"/backup.key" {
				key = f.SecretName != nil && *f.SecretName == SecretBackupKey && f.RawValue == nil
			}
		}
		if !key {
			t.Error("the repository's TLS key is not the secret file")
		}
		if (s3 == nil) != (len(c.Mounts) == 1) || (s3 == nil && (c.Mounts[0].Volume != "vol_1" || c.Mounts[0].Path != BackupMount)) {
			t.Errorf("mounts %+v with S3 %v", c.Mounts, s3)
		}
		if c.Metadata[types.MetaProcessGroup] != BackupGroup || c.Metrics == nil || c.Metrics.Port != BackupMetricsPort {
			t.Errorf("metadata %v metrics %+v", c.Metadata, c.Metrics)
		}
		if c.Env["PG_BACKUP_FULL_EVERY"] != "86400" || c.Env["PG_BACKUP_DIFF_EVERY"] != "3600" {
			t.Errorf("schedule env %v", c.Env)
		}
	}
}

// With backups, every member archives through Patroni's configuration
// (so the primary of the moment does); a restored cluster's first member
// bootstraps with pgBackRest to the target time, and its replicas do not
// inherit the recovery settings.
func TestPatroniConfigArchivesAndRestores(t *testing.T) {
	o := testOptions(t)
	o.Backup = &BackupOptions{RetentionFull: 1}
	target := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	o.Restore = &RestoreOptions{From: "old-db", Target: target}
	b, err := PatroniConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Bootstrap  map[string]any `json:"bootstrap"`
		PostgreSQL struct {
			Parameters map[string]any `json:"parameters"`
		} `json:"postgresql"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg.PostgreSQL.Parameters
	if p["archive_mode"] != "on" || p["archive_command"] != "pgbackrest --stanza=db archive-push %p" {
		t.Errorf("archiving: %v", p)
	}
	if cfg.Bootstrap["method"] != "hangar_restore" {
		t.Fatalf("bootstrap %v", cfg.Bootstrap)
	}
	m := cfg.Bootstrap["hangar_restore"].(map[string]any)
	if m["keep_existing_recovery_conf"] != true || !strings.Contains(m["command"].(string), "restore.sh") {
		t.Errorf("bootstrap method %v", m)
	}
	mc, err := MemberConfig(o, "img", types.MachineGuest{}, "vol")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range mc.Files {
		if f.RawValue != nil {
			b, _ := base64.StdEncoding.DecodeString(*f.RawValue)
			files[f.GuestPath] = string(b)
		}
	}
	r := files[ConfigDir+"/restore.sh"]
	for _, want := range []string{"--stanza=old-db", "--type=time", `"--target=2026-03-04 05:06:07.890000+00"`, "--target-action=promote", "--pg1-path=" + DataDir} {
		if !strings.Contains(r, want) {
			t.Errorf("restore.sh lacks %s:\n%s", want, r)
		}
	}
	if d := files[ConfigDir+"/restore-done.sh"]; !strings.Contains(d, "RESET restore_command") || !strings.Contains(d, "RESET recovery_target_time") {
		t.Errorf("restore-done.sh:\n%s", d)
	}
	if files[BackupConfig] == "" || mc.Env["PG_BACKUP"] != "1" {
		t.Errorf("the member's pgBackRest config %q, env %v", files[BackupConfig], mc.Env)
	}

	// Without backups: no archiving, initdb.
	o.Backup, o.Restore = nil, nil
	b, _ = PatroniConfig(o)
	if strings.Contains(string(b), "archive_command") || strings.Contains(string(b), "hangar_restore") {
		t.Errorf("no backups, but:\n%s", b)
	}
}

// The members' certificate is valid for their own name (the repository
// takes backups from ID.vm.DB.internal), the repository's for its
// process-group name, both against the cluster CA.
func TestBackupCertificates(t *testing.T) {
	now := time.Now()
	ca, caKey, err := NewCA("db", now)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	parse := func(b []byte) *x509.Certificate {
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	member, _, err := NewServerCert(ca, caKey, ServerNames("db"), now)
	if err != nil {
		t.Fatal(err)
	}
	repo, _, err := NewServerCert(ca, caKey, BackupNames("db"), now)
	if err != nil {
		t.Fatal(err)
	}
	mc, rc := parse(member), parse(repo)
	if _, err := mc.Verify(x509.VerifyOptions{DNSName: "m8e2.vm.db.internal", Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("member cert for its vm name: %v", err)
	}
	if mc.Subject.CommonName != BackupClientCN("db") {
		t.Errorf("member CN %q, the repository authorizes %q", mc.Subject.CommonName, BackupClientCN("db"))
	}
	if _, err := rc.Verify(x509.VerifyOptions{DNSName: BackupHost("db"), Roots: pool}); err != nil {
		t.Errorf("repository cert: %v", err)
	}
	if _, err := rc.Verify(x509.VerifyOptions{DNSName: "backup.process.other.internal", Roots: pool}); err == nil {
		t.Error("repository cert valid for another app")
	}
	if rc.Subject.CommonName != BackupHost("db") {
		t.Errorf("repository CN %q, the members authorize %q", rc.Subject.CommonName, BackupHost("db"))
	}
}

func TestParseBackupSchedule(t *testing.T) {
	for in, want := range map[string]BackupSchedule{
		"":                             DefaultBackupSchedule,
		"off":                          {},
		"full=12h":                     {Full: 12 * time.Hour, Diff: time.Hour},
		"diff=off":                     {Full: 24 * time.Hour},
		" full=1m , diff=2h":           {Full: time.Minute, Diff: 2 * time.Hour},
		DefaultBackupSchedule.String(): DefaultBackupSchedule,
	} {
		got, err := ParseBackupSchedule(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"full", "weekly=1h", "full=1s", "full=1h,full=2h", "full=-1h", "diff=x"} {
		if _, err := ParseBackupSchedule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseBackupSchedule(f *testing.F) {
	for _, s := range []string{"", "off", "full=24h,diff=1h", "diff=off", "full=1m", "full=,", "=", "full=1h,full=1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseBackupSchedule(s)
		if err != nil {
			return
		}
		for _, d := range []time.Duration{got.Full, got.Diff} {
			if d != 0 && d < time.Minute {
				t.Fatalf("%q: interval %s under a minute", s, d)
			}
		}
		again, err := ParseBackupSchedule(got.String())
		if err != nil || again != got {
			t.Fatalf("%q → %s → %+v %v", s, got, again, err)
		}
	})
}

func TestS3OptionsValidate(t *testing.T) {
	o := S3Options{Endpoint: "https://s3.example.com:9000", Bucket: "b", Region: "r"}
	if err := o.Validate(); err != nil || o.Endpoint != "s3.example.com:9000" {
		t.Errorf("%+v %v", o, err)
	}
	for _, bad := range []S3Options{
		{Endpoint: "h", Bucket: "b"},
		{Endpoint: "http://h", Bucket: "b", Region: "r"},
		{Endpoint: "h", Bucket: "b\nrepo1-path=/x", Region: "r"},
		{Endpoint: "https://h/path", Bucket: "b", Region: "r"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
