package machinefs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNothingOutsideTheRoot: a root with symlinks that lead out of it (to
// /, to its parent, climbing with ..) and a file beside it: every read and
// write through those links stays inside the root; paths that climb
// above / are refused.
func TestNothingOutsideTheRoot(t *testing.T) {
	base := t.TempDir()
	rootDir := filepath.Join(base, "root")
	if err := os.MkdirAll(filepath.Join(rootDir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(base, "outside.txt")
	if err := os.WriteFile(outside, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootDir, "etc", "hosts"), []byte("machine hosts"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"slash": "/", "parent": "..", "climb": "../../../../..", "abs": base} {
		if err := os.Symlink(target, filepath.Join(rootDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := OpenDir(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	for _, p := range []string{"../outside.txt", "../../etc/shadow", "/etc/../../outside.txt", "a/../../b"} {
		if _, _, err := r.OpenFile(p); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "climbs above") {
			t.Errorf("OpenFile(%q) = %v, want refused as climbing above /", p, err)
		}
		if _, err := r.Create(p, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create(%q) = %v, want refused", p, err)
		}
	}
	// Through each link the host's file is out of reach: "outside.txt" is
	// looked up inside the root, where there is none.
	for _, p := range []string{"/slash" + outside, "/parent/outside.txt", "/climb" + outside, "/abs/outside.txt", "/slash/slash/parent/outside.txt"} {
		f, _, err := r.OpenFile(p)
		if err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("OpenFile(%q) read %q: escaped the root", p, b)
		} else if !errors.Is(err, ErrNotFound) {
			t.Errorf("OpenFile(%q) = %v, want not found (resolved inside the root)", p, err)
		}
	}
	// A link to / is the root itself: its /etc/hosts is the machine's.
	f, _, err := r.OpenFile("/slash/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "machine hosts" {
		t.Fatalf("/slash/etc/hosts = %q, want the root's own", b)
	}
	// A write through a link lands inside the root, never beside it.
	up, err := r.Create("/parent/outside.txt", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write([]byte("written")); err != nil {
		t.Fatal(err)
	}
	if err := up.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "host secret" {
		t.Fatalf("the file outside the root was changed: %q", b)
	}
	if b, err := os.ReadFile(filepath.Join(rootDir, "outside.txt")); err != nil || string(b) != "written" {
		t.Fatalf("the write through /parent: %q %v, want it at the root's /outside.txt", b, err)
	}
	// A directory, and a listing.
	if _, _, err := r.OpenFile("/etc"); !errors.Is(err, ErrInvalid) {
		t.Errorf("OpenFile(/etc) = %v, want a directory refused", err)
	}
	info, err := r.Stat("/")
	if err != nil || !info.IsDir {
		t.Fatalf("Stat(/) = %+v %v", info, err)
	}
	var names []string
	for _, e := range info.Entries {
		names = append(names, e.Name)
		if e.Name == "slash" && (e.Link != "/" || e.Mode != "lrwxrwxrwx") {
			t.Errorf("entry slash: %s -> %q, want lrwxrwxrwx -> /", e.Mode, e.Link)
		}
		if e.Name == "etc" && e.Mode != "drwxr-xr-x" {
			t.Errorf("entry etc: %s, want drwxr-xr-x", e.Mode)
		}
	}
	if got := strings.Join(names, " "); got != "abs climb etc outside.txt parent slash" {
		t.Errorf("entries of /: %s", got)
	}
}

// TestUploadAbortLeavesNothing: an aborted upload leaves neither a file
// nor its temporary file; a committed one keeps the replaced file's mode.
func TestUploadAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	up, err := r.Create("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = up.Write([]byte("half"))
	up.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("after an abort: %v", ents)
	}
	if err := os.WriteFile(filepath.Join(dir, "g"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	up, err = r.Create("/g", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = up.Write([]byte("new"))
	if err := up.Commit(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "g"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("replaced file: %v %v, want mode 0600 kept", fi.Mode(), err)
	}
}
