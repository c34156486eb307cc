package image

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const helloGreeting = "hello from hangar"

// helloSource writes a tiny main package that prints a greeting and its
// arguments, and returns its directory.
func helloSource(t testing.TB, greeting string) string {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "go.mod"), "module example.com/hello\n\ngo 1.21\n")
	write(t, filepath.Join(dir, "main.go"), `package main

import (
	"fmt"
	"os"
	"strings"
)

var version = "dev"

func main() {
	fmt.Printf("`+greeting+` %s [%s]\n", version, strings.Join(os.Args[1:], ","))
}
`)
	return dir
}

func write(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var (
	helloOnce sync.Once
	helloImg  v1.Image
	helloErr  error
)

// helloImage builds the hello program once per test binary run.
func helloImage(t testing.TB) v1.Image {
	t.Helper()
	helloOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hangar-image-test-")
		if err != nil {
			helloErr = err
			return
		}
		defer os.RemoveAll(dir)
		tb := &tempT{dir: dir}
		src := helloSource(tb, helloGreeting)
		helloImg, helloErr = BuildGo(context.Background(), src, GoBuildOptions{
			Name:         "hello",
			LDFlags:      "-X main.version=v1",
			Env:          []string{"GREETING=hi"},
			Labels:       map[string]string{"app": "hello"},
			Cmd:          []string{"a", "b"},
			ExposedPorts: []int{8080},
		})
		if helloErr == nil {
			// Materialize the layer so later readers do not rebuild it.
			_, helloErr = helloImg.Digest()
		}
	})
	if helloErr != nil {
		t.Fatalf("BuildGo: %v", helloErr)
	}
	return helloImg
}

// tempT is the part of testing.TB helloSource needs, outside of a test.
type tempT struct {
	testing.TB
	dir string
	n   int
}

func (t *tempT) Helper() {}
func (t *tempT) TempDir() string {
	t.n++
	d := filepath.Join(t.dir, "src")
	os.MkdirAll(d, 0o755)
	return d
}
func (t *tempT) Fatal(args ...any) { panic(args) }

func newTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := NewStore(filepath.Join(t.TempDir(), "images"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
