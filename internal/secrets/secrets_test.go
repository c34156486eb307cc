package secrets

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

func open(t *testing.T) (*Store, store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := Open(st, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, st, dir
}

func p(s string) *string { return &s }

const known = "s3cr3t-value-8c1f0e"

func TestSetListValuesUnset(t *testing.T) {
	ctx := context.Background()
	s, st, dir := open(t)
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	v1, err := s.Update(ctx, "web", map[string]*string{"DATABASE_URL": p(known), "OTHER": p("x")})
	if err != nil || v1 != 1 {
		t.Fatalf("update: %d %v", v1, err)
	}
	ls, err := s.List(ctx, "web")
	if err != nil || len(ls) != 2 || ls[0].Name != "DATABASE_URL" || ls[0].Status != StatusStaged || len(ls[0].Digest) != 16 {
		t.Fatalf("list: %+v %v", ls, err)
	}
	if err := s.MarkDeployed(ctx, "web", v1); err != nil {
		t.Fatal(err)
	}
	v2, err := s.Update(ctx, "web", map[string]*string{"OTHER": p("y")})
	if err != nil || v2 != 2 {
		t.Fatalf("update: %d %v", v2, err)
	}
	ls, _ = s.List(ctx, "web")
	if ls[0].Status != StatusDeployed || ls[1].Status != StatusStaged {
		t.Fatalf("statuses: %+v", ls)
	}
	// Same value again: no new version.
	if v, err := s.Update(ctx, "web", map[string]*string{"OTHER": p("y")}); err != nil || v != 2 {
		t.Fatalf("no-op update: %d %v", v, err)
	}
	old, err := s.Values(ctx, "web", 1)
	if err != nil || old["OTHER"] != "x" || old["DATABASE_URL"] != known {
		t.Fatalf("v1 values: %v %v", old, err)
	}
	if _, err := s.Update(ctx, "web", map[string]*string{"NOPE": nil}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unset unknown: %v", err)
	}
	v3, err := s.Update(ctx, "web", map[string]*string{"OTHER": nil})
	if err != nil || v3 != 3 {
		t.Fatal(v3, err)
	}
	cur, _ := s.Values(ctx, "web", 0)
	if _, ok := cur["OTHER"]; ok || len(cur) != 1 {
		t.Fatalf("after unset: %v", cur)
	}
	if _, err := s.Update(ctx, "web", map[string]*string{"1BAD": p("x")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	// Never in clear text in the state file.
	st.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "state.db"))
	if bytes.Contains(b, []byte(known)) {
		t.Fatal("secret value in state.db in clear text")
	}
}

func TestRotateKey(t *testing.T) {
	ctx := context.Background()
	s, st, dir := open(t)
	for i := 0; i < 3; i++ {
		if _, err := s.Update(ctx, "a", map[string]*string{"K": p(known + string(rune('a'+i)))}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	n, err := RotateKey(ctx, st, dir)
	if err != nil || n != 3 {
		t.Fatalf("rotate: %d %v", n, err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if bytes.Equal(before, after) {
		t.Fatal("key did not change")
	}
	if _, err := os.Stat(filepath.Join(dir, NextKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("next key left behind: %v", err)
	}
	// The old key no longer opens anything; a store with the new key reads
	// every version.
	s2, err := Open(st, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 3; v++ {
		vals, err := s2.Values(ctx, "a", v)
		if err != nil || vals["K"] != known+string(rune('a'+v-1)) {
			t.Fatalf("v%d after rotation: %v %v", v, vals, err)
		}
	}
	if _, err := s.Values(ctx, "a", 1); !errors.Is(err, ErrKey) {
		t.Fatalf("old key still decrypts: %v", err)
	}
	// An interrupted rotation (next key written, nothing else) is finished
	// by a rerun, and reads keep working meanwhile.
	if _, err := generateKeyFile(filepath.Join(dir, NextKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(st, dir, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := RotateKey(ctx, st, dir); err != nil || n != 3 {
		t.Fatalf("rerun: %d %v", n, err)
	}
	s3, _ := Open(st, dir, nil)
	if vals, err := s3.Values(ctx, "a", 0); err != nil || vals["K"] != known+"c" {
		t.Fatalf("after rerun: %v %v", vals, err)
	}
}

func TestKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	if _, err := generateKeyFile(filepath.Join(dir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := loadKeyring(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
}

func TestCiphertextBoundToAppAndName(t *testing.T) {
	ctx := context.Background()
	s, st, _ := open(t)
	if _, err := s.Update(ctx, "a", map[string]*string{"K": p(known)}); err != nil {
		t.Fatal(err)
	}
	// Copy app a's version record to app b: it must not decrypt there.
	kv, err := st.Get(ctx, versionKey("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, versionKey("b", 1), kv.Value, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, metaKey("b"), []byte(`{"latest":1}`), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Values(ctx, "b", 0); !errors.Is(err, ErrKey) {
		t.Fatalf("moved ciphertext decrypted: %v", err)
	}
}

func TestSpecHook(t *testing.T) {
	ctx := context.Background()
	s, st, dir := open(t)
	h := &Hook{Secrets: s, Store: st, RunDir: filepath.Join(dir, "run")}
	if _, err := s.Update(ctx, "web", map[string]*string{"DB": p("one"), "CERT": p(base64.StdEncoding.EncodeToString([]byte("PEM")))}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "web", map[string]*string{"DB": p("two")}); err != nil {
		t.Fatal(err)
	}
	rec := &supervisor.Record{App: "web", Machine: types.Machine{ID: "m1", Config: &types.MachineConfig{
		Files: []types.File{
			{GuestPath: "/etc/cert.pem", SecretName: p("CERT")},
			{GuestPath: "/app/raw.txt", RawValue: p(base64.StdEncoding.EncodeToString([]byte("hello")))},
		},
	}}}
	if _, err := st.Put(ctx, "machines/web/m1", []byte("{}"), 0); err != nil {
		t.Fatal(err)
	}
	spec := runtime.Spec{Env: []string{"DB=from-env", "PATH=/bin"}}
	if err := h.SpecHook(ctx, rec, &spec); err != nil {
		t.Fatal(err)
	}
	if strings.Join(spec.Env, " ") != "CERT="+base64.StdEncoding.EncodeToString([]byte("PEM"))+" DB=two PATH=/bin" {
		t.Fatalf("env: %v (secrets override [env])", spec.Env)
	}
	if len(spec.Mounts) != 2 || spec.Mounts[0].Destination != "/etc/cert.pem" || !spec.Mounts[0].ReadOnly {
		t.Fatalf("mounts: %+v", spec.Mounts)
	}
	if b, _ := os.ReadFile(spec.Mounts[0].Source); string(b) != "PEM" {
		t.Fatalf("secret file: %q", b)
	}
	if fi, _ := os.Stat(spec.Mounts[0].Source); fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(spec.Mounts[1].Source); string(b) != "hello" {
		t.Fatalf("raw file: %q", b)
	}

	// Pinned to version 1 (a rollback): the old value comes back.
	rec.Config.Metadata = map[string]string{MetaVersion: "1"}
	spec = runtime.Spec{}
	if err := h.SpecHook(ctx, rec, &spec); err != nil {
		t.Fatal(err)
	}
	if !contains(spec.Env, "DB=one") {
		t.Fatalf("pinned env: %v", spec.Env)
	}

	// A missing secret fails the boot with a clear error.
	rec.Config.Files = []types.File{{GuestPath: "/x", SecretName: p("MISSING")}}
	if err := h.SpecHook(ctx, rec, &runtime.Spec{}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "hangar secrets set MISSING") {
		t.Fatalf("missing secret: %v", err)
	}
	rec.Config.Files = []types.File{{GuestPath: "../etc/passwd", RawValue: p("")}}
	if err := h.SpecHook(ctx, rec, &runtime.Spec{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("relative guest path: %v", err)
	}
	// Files of destroyed machines are swept.
	if _, err := st.Delete(ctx, "machines/web/m1", store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	rec2 := &supervisor.Record{App: "web", Machine: types.Machine{ID: "m2", Config: &types.MachineConfig{}}}
	if err := h.SpecHook(ctx, rec2, &runtime.Spec{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.RunDir, "m1")); !os.IsNotExist(err) {
		t.Fatalf("files of destroyed machine left: %v", err)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestProcessSecrets: processes[].secrets put a secret under another
// env var; ignore_app_secrets leaves the app's other secrets out; a
// missing one fails the boot naming it; files[].mode sets the file's mode.
func TestProcessSecrets(t *testing.T) {
	ctx := context.Background()
	s, st, dir := open(t)
	h := &Hook{Secrets: s, Store: st, RunDir: filepath.Join(dir, "run")}
	if _, err := s.Update(ctx, "web", map[string]*string{"DATABASE_URL": p("pg://x"), "TOKEN": p("t")}); err != nil {
		t.Fatal(err)
	}
	rec := &supervisor.Record{App: "web", Machine: types.Machine{ID: "m1", Config: &types.MachineConfig{
		Processes: []types.MachineProcess{{Secrets: []types.MachineSecret{{EnvVar: "DB", Name: "DATABASE_URL"}, {EnvVar: "TOKEN"}}}},
		Files:     []types.File{{GuestPath: "/app/run.sh", RawValue: p(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh"))), Mode: 0o755}},
	}}}
	spec := runtime.Spec{Env: []string{"PATH=/bin"}}
	if err := h.SpecHook(ctx, rec, &spec); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(spec.Env, " "); got != "DATABASE_URL=pg://x DB=pg://x PATH=/bin TOKEN=t" {
		t.Fatalf("env: %s", got)
	}
	if fi, err := os.Stat(spec.Mounts[0].Source); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("file mode: %v %v", fi, err)
	}
	rec.Config.Processes[0].IgnoreAppSecrets = true
	rec.Config.Processes[0].Secrets = rec.Config.Processes[0].Secrets[:1]
	spec = runtime.Spec{Env: []string{"PATH=/bin"}}
	if err := h.SpecHook(ctx, rec, &spec); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(spec.Env, " "); got != "DB=pg://x PATH=/bin" {
		t.Fatalf("env with ignore_app_secrets: %s", got)
	}
	rec.Config.Processes[0].Secrets = []types.MachineSecret{{EnvVar: "X", Name: "NOPE"}}
	if err := h.SpecHook(ctx, rec, &runtime.Spec{}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "config.processes[0].secrets") {
		t.Fatalf("missing process secret: %v", err)
	}
}
