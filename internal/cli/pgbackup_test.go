package cli

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestPgParseTime(t *testing.T) {
	want := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, s := range []string{"2026-01-02T15:04:05Z", "2026-01-02T16:04:05+01:00", "2026-01-02T15:04:05", "2026-01-02 15:04:05"} {
		got, err := pgParseTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
	if got, err := pgParseTime("2026-01-02T15:04:05.123456Z"); err != nil || got.Nanosecond() != 123456000 {
		t.Errorf("fractions: %v %v", got, err)
	}
	for _, bad := range []string{"", "yesterday", "2026-13-02T15:04:05Z", "1700000000"} {
		if _, err := pgParseTime(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The backup flags are checked before anything is made: S3 needs its
// keys in the environment (never a flag), a restore needs a repository
// on a volume.
func TestPgBackupPlan(t *testing.T) {
	ctx := context.Background()
	f := pgBackupFlags{schedule: "full=24h,diff=1h", retention: 7}
	p, err := f.plan(ctx, 256)
	if err != nil || p.opts == nil || p.volumeMB != 512 || p.opts.RetentionFull != 7 {
		t.Fatalf("defaults: %+v %v", p, err)
	}
	f.s3Endpoint, f.s3Bucket, f.s3Region = "s3.example.com", "b", "r"
	t.Setenv("PGBACKREST_REPO1_S3_KEY", "")
	t.Setenv("PGBACKREST_REPO1_S3_KEY_SECRET", "")
	if _, err := f.plan(ctx, 256); err == nil || !strings.Contains(err.Error(), "no S3 credentials") {
		t.Errorf("S3 without keys: %v", err)
	}
	t.Setenv("PGBACKREST_REPO1_S3_KEY", "k")
	t.Setenv("PGBACKREST_REPO1_S3_KEY_SECRET", "s")
	p, err = f.plan(ctx, 256)
	if err != nil || p.opts.S3 == nil || *p.s3Keys["PGBACKREST_REPO1_S3_KEY_SECRET"] != "s" {
		t.Fatalf("S3: %+v %v", p, err)
	}
	rctx := context.WithValue(ctx, pgRestoreKey{}, &pgRestoreSpec{from: "db", target: time.Now()})
	if _, err := f.plan(rctx, 256); err == nil {
		t.Error("a restore into an S3 repository accepted")
	}
	for _, bad := range []pgBackupFlags{
		{schedule: "hourly", retention: 1},
		{schedule: "", retention: 0},
		{schedule: "", retention: 1, s3Endpoint: "h"},
		{schedule: "", retention: 1, volumeMB: 10},
	} {
		if _, err := bad.plan(ctx, 256); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	off := pgBackupFlags{off: true}
	if p, err := off.plan(ctx, 256); err != nil || p.opts != nil {
		t.Errorf("--no-backup: %+v %v", p, err)
	}
	if _, err := off.plan(rctx, 256); err == nil {
		t.Error("--no-backup for a restore accepted")
	}
}
