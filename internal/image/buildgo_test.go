package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildGoExampleCopied copies examples/hello out of the repository, as a
// new user does to start an app of their own, and builds the copy with the
// real builder: the example is a module of its own, so the copy builds
// wherever it lands.
func TestBuildGoExampleCopied(t *testing.T) {
	t.Parallel()
	src := filepath.Join("..", "..", "examples", "hello")
	dst := filepath.Join(t.TempDir(), "myapp")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copy the example: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "go.mod")); err != nil {
		t.Fatalf("the example has no go.mod of its own: %v", err)
	}
	img, err := BuildGo(context.Background(), dst, GoBuildOptions{Name: "myapp"})
	if err != nil {
		t.Fatalf("build the copied example: %v", err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("no %s in the image", GoBinaryPath)
		}
		if err != nil {
			t.Fatal(err)
		}
		if "/"+strings.TrimPrefix(hdr.Name, "/") != GoBinaryPath {
			continue
		}
		head := make([]byte, 4)
		if _, err := io.ReadFull(tr, head); err != nil || !bytes.Equal(head, []byte("\x7fELF")) {
			t.Fatalf("%s is not an ELF binary: %q %v", GoBinaryPath, head, err)
		}
		return
	}
}

// TestBuildGoNoGoMod: a directory outside any module gets an error that
// says what to do, not go list's "go.mod file not found".
func TestBuildGoNoGoMod(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if inGoModule(dir) {
		t.Skipf("a parent of %s has a go.mod", dir)
	}
	write(t, filepath.Join(dir, "main.go"), "package main\n\nfunc main() {}\n")
	_, err := BuildGo(context.Background(), dir, GoBuildOptions{})
	if !errors.Is(err, ErrNoGoModule) {
		t.Fatalf("err = %v, want ErrNoGoModule", err)
	}
	if !strings.Contains(err.Error(), "go mod init") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %q, want the directory and `go mod init`", err)
	}
}
