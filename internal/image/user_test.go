package image

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookupUser(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	img, err := s.Put(context.Background(), helloImage(t), "hello:v1")
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]User{
		"":            {0, 0, "/root"},
		"root":        {0, 0, "/root"},
		"nobody":      {65534, 65534, "/nonexistent"},
		"65534":       {65534, 65534, "/nonexistent"},
		"nobody:root": {65534, 0, "/nonexistent"},
		"1000":        {1000, 1000, "/"},
		"1000:2000":   {1000, 2000, "/"},
		"root:nobody": {0, 65534, "/root"},
	} {
		got, err := LookupUser(img.RootFS, user)
		if err != nil || got != want {
			t.Errorf("LookupUser(%q) = %+v, %v; want %+v", user, got, err, want)
		}
	}
	for _, bad := range []string{"alice", "root:wheel"} {
		if _, err := LookupUser(img.RootFS, bad); err == nil || !strings.Contains(err.Error(), "no such") {
			t.Errorf("LookupUser(%q) err = %v", bad, err)
		}
	}

	// An image whose /etc/passwd is a symlink to the host's is not read
	// through the link.
	evil := t.TempDir()
	if err := os.MkdirAll(filepath.Join(evil, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(evil, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := LookupUser(evil, "daemon"); err == nil {
		t.Error("LookupUser read the host's /etc/passwd through a symlink")
	}
}
