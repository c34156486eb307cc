package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/testapp"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestImageImportAndMachineRun imports the test app as an OCI layout
// directory, an OCI archive and a docker-save tarball with the CLI, lists
// them, and runs a machine of each with `hangar machine run`.
func TestImageImportAndMachineRun(t *testing.T) {
	harness.RequireRoot(t)
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	img, err := image.BuildGo(context.Background(), testapp.Source(), image.GoBuildOptions{Name: "testapp"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	layoutDir := filepath.Join(dir, "layout")
	lp, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	ociArchive := filepath.Join(dir, "app.oci.tar")
	if err := image.WriteOCIArchive(img, "fromarchive:v1", ociArchive); err != nil {
		t.Fatal(err)
	}
	dockerTar := filepath.Join(dir, "app.docker.tar")
	tag, _ := name.NewTag("fromdocker:v1")
	if err := tarball.WriteToFile(dockerTar, tag, img); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, ref string }{
		{layoutDir, "fromlayout:v1"}, {ociArchive, ""}, {dockerTar, ""},
	} {
		args := []string{"image", "import", c.path}
		if c.ref != "" {
			args = append(args, "--ref", c.ref)
		}
		if out, err := d.Hangar(args...); err != nil {
			t.Fatalf("import %s: %v\n%s", c.path, err, out)
		}
	}
	list, err := d.Hangar("image", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"fromlayout:v1", "fromarchive:v1", "fromdocker:v1"} {
		if !strings.Contains(list, ref) {
			t.Fatalf("image list lacks %s:\n%s", ref, list)
		}
		app := strings.TrimSuffix(ref, ":v1")
		out, err := d.Hangar("machine", "run", ref, "-a", app, "--port", "8080", "--env", "PORT=8080", "--env", "APP_VERSION="+app)
		if err != nil {
			t.Fatalf("machine run %s: %v\n%s", ref, err, out)
		}
		harness.Poll(t, "machine of "+ref+" serving", 15*time.Second, func() (bool, string) {
			code, body, err := d.ViaProxy(app, "/")
			return code == 200 && strings.Contains(body, "version="+app), fmt.Sprint(code, body, err)
		})
		ms := d.Machines(app)
		if len(ms) != 1 || ms[0].State != types.StateStarted || ms[0].ImageRef.Digest == "" {
			t.Fatalf("machines of %s: %+v", app, ms)
		}
		out, err = d.Hangar("machine", "stop", ms[0].ID, "-a", app)
		if err != nil {
			t.Fatalf("machine stop: %v\n%s", err, out)
		}
		out, err = d.Hangar("machine", "destroy", ms[0].ID, "-a", app)
		if err != nil {
			t.Fatalf("machine destroy: %v\n%s", err, out)
		}
	}
	// A bad path is a clear error, not a crash.
	out, err := d.Hangar("image", "import", filepath.Join(dir, "missing.tar"))
	if err == nil || !strings.Contains(out, "missing.tar") {
		t.Fatalf("import of a missing file: %v\n%s", err, out)
	}
}
