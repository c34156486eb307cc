package e2e

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// consoleMachines lists app's console machines that are not destroyed.
func consoleMachines(t *testing.T, d *harness.Daemon, app string) []types.Machine {
	t.Helper()
	var out []types.Machine
	for _, m := range d.Machines(app) {
		if m.Config != nil && m.Config.Metadata[types.MetaProcessGroup] == types.ConsoleGroup && m.State != types.StateDestroyed {
			out = append(out, m)
		}
	}
	return out
}

// TestConsoleMachine drives `hangar console`: an ephemeral machine of the
// app's release runs fly.toml's console_command (or -C) with the app's env
// and secrets and is destroyed when the session ends; with the CLI killed
// -9 mid-session, the daemon destroys it within 30 s.
func TestConsoleMachine(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := importShellImage(t, d)
	const app, secret = "shcm", "console-machine-secret-41"
	cfg := filepath.Join(t.TempDir(), "fly.toml")
	toml := "console_command = \"sh -c 'echo from-console-command $GREETING'\"\n" + fmt.Sprintf(shellAppConfig, app)
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	hangarOK(t, d, "apps", "create", app)
	hangarOK(t, d, "secrets", "set", "-a", app, "--stage", "SSH_SECRET="+secret)
	hangarOK(t, d, "deploy", "-c", cfg, "--image", ref)
	appMachines := len(d.Machines(app))

	t.Run("console_command", func(t *testing.T) {
		out, err := hangarCmd(t, bin, d, "console", "-a", app).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "from-console-command hello-from-env") {
			t.Fatalf("hangar console (console_command): %v\n%s", err, out)
		}
		if left := consoleMachines(t, d, app); len(left) != 0 {
			t.Fatalf("console machines left after the session: %+v", left)
		}
	})

	t.Run("command, env, secret, exit code", func(t *testing.T) {
		out, err := hangarCmd(t, bin, d, "console", "-a", app, "--vm-size", "shared-cpu-2x", "-C",
			`sh -c "echo $GREETING $SSH_SECRET $FLY_PROCESS_GROUP $FLY_VM_MEMORY_MB; exit 6"`).CombinedOutput()
		if code := exitCode(err); code != 6 || !strings.Contains(string(out), "hello-from-env "+secret+" "+types.ConsoleGroup+" 512") {
			t.Fatalf("hangar console -C: exit %d (%v), want 6 and the env\n%s", code, err, out)
		}
		if left := consoleMachines(t, d, app); len(left) != 0 {
			t.Fatalf("console machines left after the session: %+v", left)
		}
	})

	t.Run("kill -9", func(t *testing.T) {
		cmd := hangarCmd(t, bin, d, "console", "-a", app, "-C", "sh")
		term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer term.Close()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		out := &lockedBuffer{}
		go func() { _, _ = io.Copy(out, term) }()
		harness.Poll(t, "the console's prompt", 30*time.Second, func() (bool, string) {
			return strings.Contains(out.String(), "# "), out.String()
		})
		ms := consoleMachines(t, d, app)
		if len(ms) != 1 || ms[0].State != types.StateStarted {
			t.Fatalf("console machines during the session: %+v, want one started", ms)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		killed := time.Now()
		harness.Poll(t, "the daemon destroys the console machine of a killed CLI", 30*time.Second, func() (bool, string) {
			left := consoleMachines(t, d, app)
			return len(left) == 0, fmt.Sprint(left)
		})
		t.Logf("console machine destroyed %v after the CLI's kill -9", time.Since(killed).Round(time.Second))
		if n := len(d.Machines(app)); n != appMachines {
			t.Fatalf("the app has %d machines after the console, want %d (its own)", n, appMachines)
		}
	})

	t.Run("errors", func(t *testing.T) {
		hangarOK(t, d, "apps", "create", "shcmnone")
		out, err := hangarCmd(t, bin, d, "console", "-a", "shcmnone").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "no complete release") {
			t.Errorf("hangar console of an app never deployed: %v\n%s", err, out)
		}
		out, err = hangarCmd(t, bin, d, "console", "-a", app, "--vm-size", "huge-9x").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "huge-9x") {
			t.Errorf("hangar console --vm-size huge-9x: %v\n%s", err, out)
		}
		// An image without `sleep` (the plain test app): said at once,
		// and no machine left.
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
		cfg := filepath.Join(t.TempDir(), "fly.toml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(shellAppConfig, "shcmplain")), 0o644); err != nil {
			t.Fatal(err)
		}
		hangarOK(t, d, "apps", "create", "shcmplain")
		hangarOK(t, d, "deploy", "-c", cfg, "--image", plain)
		start := time.Now()
		out, err = hangarCmd(t, bin, d, "console", "-a", "shcmplain").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "sleep") {
			t.Errorf("hangar console of an image without sleep: %v after %v\n%s", err, time.Since(start), out)
		}
		t.Logf("hangar console of an image without sleep, after %v:\n%s", time.Since(start).Round(time.Millisecond), out)
		harness.Poll(t, "no console machine left", 30*time.Second, func() (bool, string) {
			left := consoleMachines(t, d, "shcmplain")
			return len(left) == 0, fmt.Sprint(left)
		})
	})
}

// exitCode is the exit status of a finished command's error (0 for nil).
func exitCode(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
