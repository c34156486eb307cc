package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/testapp"
	"github.com/hangar-dev/hangar/internal/types"
)

// shellTools are linked to busybox in the shell image.
var shellTools = []string{"sh", "env", "stty", "sleep", "cat", "id", "echo", "printf", "head", "wc", "sha256sum"}

// importShellImage imports the test app with a static busybox added
// (/bin/busybox, /bin/sh and a few tools), for tests that need a shell in
// the machine; it skips when the host has no static busybox.
func importShellImage(t *testing.T, d *harness.Daemon) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs a static busybox: apt-get install -y busybox-static")
	}
	img, err := image.BuildGo(context.Background(), testapp.Source(), image.GoBuildOptions{Name: "testapp-shell"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}, bb)
	for _, tool := range shellTools {
		add(&tar.Header{Name: "bin/" + tool, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	// A user the console can switch to.
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\nalice:x:1000:1000:alice:/tmp:/bin/sh\n"
	add(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(passwd))}, []byte(passwd))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "shell.tar")
	if err := image.WriteOCIArchive(img, "testapp-shell:e2e", archive); err != nil {
		t.Fatal(err)
	}
	if out, err := d.Hangar("image", "import", archive, "--ref", "testapp-shell:e2e"); err != nil {
		t.Fatalf("image import: %v\n%s", err, out)
	}
	var imgs []types.Image
	if err := d.Get("/v1/images", &imgs); err != nil {
		t.Fatal(err)
	}
	for _, i := range imgs {
		if strings.Contains(i.Ref, "testapp-shell") {
			return i.Ref
		}
	}
	t.Fatalf("imported image not listed: %+v", imgs)
	return ""
}

const shellAppConfig = `app = "%s"
primary_region = "tst"

[env]
  PORT = "8080"
  GREETING = "hello-from-env"

[http_service]
  internal_port = 8080
`

// deployShellApp deploys app from the shell image with [env] GREETING and
// the secret SSH_SECRET, and returns the id of its machine.
func deployShellApp(t *testing.T, d *harness.Daemon, ref, app, secret string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "fly.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(shellAppConfig, app)), 0o644); err != nil {
		t.Fatal(err)
	}
	hangarOK(t, d, "apps", "create", app)
	hangarOK(t, d, "secrets", "set", "-a", app, "--stage", "SSH_SECRET="+secret)
	hangarOK(t, d, "deploy", "-c", cfg, "--image", ref)
	var ms []types.Machine
	if err := d.Get("/v1/apps/"+app+"/machines", &ms); err != nil || len(ms) == 0 {
		t.Fatalf("machines of %s: %v %+v", app, err, ms)
	}
	return ms[0].ID
}

// TestExecEnvironment: the API's exec runs with the machine's environment:
// PATH (so sh resolves), [env], FLY_* and secrets. (Before, it ran with an
// empty one: `sh` was not found in $PATH.)
func TestExecEnvironment(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := importShellImage(t, d)
	const secret = "ssh-secret-Zq81-77"
	id := deployShellApp(t, d, ref, "shenv", secret)
	c := &flyClient{t: t, base: d.API, token: d.Token}
	var res ExecResult
	c.must(200, "POST", "/apps/shenv/machines/"+id+"/exec", map[string]any{"command": []string{"sh", "-c", "env; exit 4"}}, nil).decode(t, &res)
	if res.ExitCode != 4 {
		t.Fatalf("exec sh -c env = %+v", res)
	}
	for _, want := range []string{"GREETING=hello-from-env", "FLY_APP_NAME=shenv", "FLY_MACHINE_ID=" + id, "SSH_SECRET=" + secret, "PATH="} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("exec env lacks %s:\n%s", want, res.Stdout)
		}
	}
	if r := c.call("POST", "/apps/shenv/machines/"+id+"/exec", map[string]any{"command": []string{"bash"}}, nil); r.code != http.StatusBadRequest || !strings.Contains(string(r.body), "bash") {
		t.Errorf("exec of a command the image lacks: %d %s, want 400 naming it", r.code, r.body)
	}
}

// ExecResult is the API's exec response.
type ExecResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}
