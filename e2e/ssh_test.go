package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/testapp"
	"github.com/hangar-dev/hangar/internal/types"
)

// shellTools are linked to busybox in the shell image.
var shellTools = []string{"sh", "env", "stty", "sleep", "cat", "id", "echo", "printf", "head", "wc", "sha256sum", "ps", "ln", "mkdir"}

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

// hangarCmd is the real CLI against d, as a person runs it.
func hangarCmd(t *testing.T, bin string, d *harness.Daemon, args ...string) *exec.Cmd {
	// A hung session fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = append(os.Environ(), "HANGAR_DATA_DIR="+d.DataDir, "HANGAR_API_URL=", "HANGAR_API_TOKEN=", "TERM=xterm")
	return c
}

// lockedBuffer collects a terminal's output for polling.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSSHConsole drives `hangar ssh console` on a real terminal (a pty)
// against a real machine: the terminal's size and a resize, Ctrl-C to a
// sleep, the machine's env and secret, the exit code of `exit 3`; then -C
// without a terminal, `machine exec`, and the errors a person meets.
func TestSSHConsole(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := importShellImage(t, d)
	const secret = "console-secret-Zq81-42"
	id := deployShellApp(t, d, ref, "shcon", secret)

	t.Run("pty", func(t *testing.T) {
		cmd := hangarCmd(t, bin, d, "ssh", "console", "-a", "shcon")
		term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer term.Close()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		out := &lockedBuffer{}
		go func() { _, _ = io.Copy(out, term) }()
		waitFor := func(what string) {
			t.Helper()
			harness.Poll(t, fmt.Sprintf("%q on the terminal", what), 15*time.Second, func() (bool, string) {
				s := out.String()
				return strings.Contains(s, what), s
			})
		}
		type_ := func(s string) {
			if _, err := io.WriteString(term, s); err != nil {
				t.Fatal(err)
			}
		}
		waitFor("# ") // the prompt: the CLI put the terminal in raw mode
		type_("stty size\r")
		waitFor("30 100")
		if err := pty.Setsize(term, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
			t.Fatal(err)
		}
		// The resize reaches the machine asynchronously: ask until it shows.
		harness.Poll(t, "the resize reaches the machine", 15*time.Second, func() (bool, string) {
			type_("stty size\r")
			time.Sleep(200 * time.Millisecond)
			s := out.String()
			return strings.Contains(s, "40 120"), s
		})
		// The echo's output, unlike the typed line, has no quotes in it.
		type_("sleep 77\r")
		// Ctrl-C once the sleep runs: sent earlier, it reaches the shell
		// between commands instead.
		harness.Poll(t, "the sleep runs", 15*time.Second, func() (bool, string) {
			ps, err := hangarCmd(t, bin, d, "machine", "exec", "-a", "shcon", id, "ps").CombinedOutput()
			return err == nil && strings.Contains(string(ps), "sleep 77"), fmt.Sprint(string(ps), err)
		})
		type_("\x03")
		type_("echo after-$?\r")
		waitFor("after-130")
		type_("env\r")
		for _, want := range []string{"GREETING=hello-from-env", "FLY_APP_NAME=shcon", "SSH_SECRET=" + secret, "TERM=xterm"} {
			waitFor(want)
		}
		type_("exit 3\r")
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("hangar ssh console after `exit 3`: %v, want exit status 3\n%s", err, out.String())
		}
	})

	t.Run("command without a pty", func(t *testing.T) {
		cmd := hangarCmd(t, bin, d, "ssh", "console", "-a", "shcon", "-C", `sh -c "echo out; echo err >&2; exit 7"`)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 || stdout.String() != "out\n" || stderr.String() != "err\n" {
			t.Fatalf("ssh console -C: %v, stdout %q, stderr %q; want exit 7, out, err", err, stdout.String(), stderr.String())
		}
	})

	t.Run("machine exec", func(t *testing.T) {
		data := make([]byte, 3<<20)
		for i := range data {
			data[i] = byte(i * 7)
		}
		cmd := hangarCmd(t, bin, d, "machine", "exec", "-a", "shcon", id, "sh", "-c", "cat; exit 5")
		cmd.Stdin = bytes.NewReader(data)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 5 || !bytes.Equal(stdout.Bytes(), data) {
			t.Fatalf("machine exec cat: %v, %d bytes back of %d (equal: %v)", err, stdout.Len(), len(data), bytes.Equal(stdout.Bytes(), data))
		}
		start := time.Now()
		out, err := hangarCmd(t, bin, d, "machine", "exec", "-a", "shcon", "--timeout", "1", id, "sleep", "30").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "did not finish within 1s") || time.Since(start) > 15*time.Second {
			t.Fatalf("machine exec over its timeout: %v after %v\n%s", err, time.Since(start), out)
		}
		out, err = hangarCmd(t, bin, d, "machine", "exec", "-a", "shcon", "-u", "alice", id, "id", "-u").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "1000" {
			t.Fatalf("machine exec -u alice id -u: %v\n%s", err, out)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"ssh", "console", "-a", "shcon", "-u", "nosuchuser", "-C", "id"}, `user "nosuchuser"`},
			{[]string{"ssh", "console", "-a", "shcon", "-C", "nosuchcommand"}, `"nosuchcommand"`},
			{[]string{"ssh", "console", "-a", "shcon", "--machine", "nosuchmachine", "-C", "id"}, "nosuchmachine"},
			{[]string{"ssh", "console", "-a", "nosuchapp"}, "nosuchapp"},
		} {
			out, err := hangarCmd(t, bin, d, tc.args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("hangar %s: %v, want an error naming %s\n%s", strings.Join(tc.args, " "), err, tc.want, out)
			}
		}
		// An image without a shell: the plain test app.
		d.ImportTestApp()
		var imgs []types.Image
		if err := d.Get("/v1/images", &imgs); err != nil {
			t.Fatal(err)
		}
		plain := ""
		for _, i := range imgs {
			if strings.Contains(i.Ref, "testapp:") {
				plain = i.Ref
			}
		}
		c := &flyClient{t: t, base: d.API, token: d.Token}
		var m types.Machine
		c.must(200, "POST", "/apps/shcon/machines", types.CreateMachineRequest{Config: &types.MachineConfig{Image: plain, Env: map[string]string{"PORT": "8080"}}}, nil).decode(t, &m)
		c.must(200, "GET", "/apps/shcon/machines/"+m.ID+"/wait?state=started&timeout=20", nil, nil)
		out, err := hangarCmd(t, bin, d, "ssh", "console", "-a", "shcon", "--machine", m.ID).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "no shell") {
			t.Errorf("ssh console into an image without a shell: %v\n%s", err, out)
		}
		// A stopped machine.
		hangarOK(t, d, "machine", "stop", "-a", "shcon", m.ID)
		c.must(200, "GET", "/apps/shcon/machines/"+m.ID+"/wait?state=stopped&timeout=20", nil, nil)
		out, err = hangarCmd(t, bin, d, "ssh", "console", "-a", "shcon", "--machine", m.ID, "-C", "id").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "stopped") || !strings.Contains(string(out), "machine start") {
			t.Errorf("ssh console into a stopped machine: %v\n%s", err, out)
		}
	})
}
