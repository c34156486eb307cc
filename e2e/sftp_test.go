package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// sha256File is the hex SHA-256 of a file.
func sha256File(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestSFTP copies files to and from a machine with `hangar ssh sftp`: a
// 50 MB random file put then got back has the same SHA-256 (and so does
// the copy inside the machine); paths that climb above / are refused;
// a symbolic link to / in the machine leads to the machine's root, never
// the host's, for reads and writes; the shell's ls, cd, get and put; a
// put under a volume's mount point is on the volume (kept across a
// restart, which discards the writable layer); and the errors a person
// meets.
func TestSFTP(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := importShellImage(t, d)
	id := deployShellApp(t, d, ref, "shftp", "sftp-secret")
	cleanupVolumes(t, d, "shftp") // at the end: the volume subtest's
	dir := t.TempDir()
	sftp := func(args ...string) (string, error) {
		out, err := hangarCmd(t, bin, d, append([]string{"ssh", "sftp"}, args...)...).CombinedOutput()
		return string(out), err
	}
	execIn := func(t *testing.T, args ...string) string {
		return hangarOK(t, d, append([]string{"machine", "exec", "-a", "shftp", id}, args...)...)
	}
	execIn(t, "mkdir", "-p", "/data")

	t.Run("50 MB round trip", func(t *testing.T) {
		src := filepath.Join(dir, "big.bin")
		data := make([]byte, 50<<20)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(src, data, 0o640); err != nil {
			t.Fatal(err)
		}
		want := sha256File(t, src)
		if out, err := sftp("put", "-a", "shftp", src, "/data/big.bin"); err != nil || !strings.Contains(out, "52428800 bytes") {
			t.Fatalf("sftp put: %v\n%s", err, out)
		}
		if got := execIn(t, "sha256sum", "/data/big.bin"); !strings.HasPrefix(got, want) {
			t.Fatalf("sha256sum in the machine: %s, want %s", got, want)
		}
		back := filepath.Join(dir, "back.bin")
		if out, err := sftp("get", "-a", "shftp", "/data/big.bin", back); err != nil {
			t.Fatalf("sftp get: %v\n%s", err, out)
		}
		if got := sha256File(t, back); got != want {
			t.Fatalf("got back %s, want %s", got, want)
		}
		// A second get to the same place does not overwrite it.
		if out, err := sftp("get", "-a", "shftp", "/data/big.bin", back); err == nil || !strings.Contains(out, "exists") {
			t.Fatalf("sftp get over an existing file: %v\n%s", err, out)
		}
	})

	t.Run("escapes", func(t *testing.T) {
		for _, p := range []string{"../../etc/shadow", "/../../../etc/shadow", "/etc/../../../etc/shadow"} {
			out, err := sftp("get", "-a", "shftp", p, filepath.Join(dir, "shadow"))
			if err == nil || !strings.Contains(out, "climbs above") {
				t.Errorf("sftp get %s: %v, want refused\n%s", p, err, out)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "shadow")); err == nil {
			t.Errorf("a refused get left a local file")
		}
		// A host file the machine does not have, and links in the
		// machine that lead "out": to /, and climbing.
		marker := filepath.Join("/tmp", "hangar-sftp-host-"+hex.EncodeToString([]byte(t.Name()))[:16])
		if err := os.WriteFile(marker, []byte("host only"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(marker) })
		execIn(t, "ln", "-s", "/", "/data/hostroot")
		execIn(t, "ln", "-s", "../../../../../../..", "/data/climb")
		for _, p := range []string{"/data/hostroot" + marker, "/data/climb" + marker} {
			out, err := sftp("get", "-a", "shftp", p, filepath.Join(dir, "marker"))
			if err == nil || !strings.Contains(out, "no such file") {
				t.Errorf("sftp get %s (the host's file through a link): %v, want not found in the machine\n%s", p, err, out)
			}
		}
		// Through the link to /, /etc/passwd is the machine's (it has alice).
		pw := filepath.Join(dir, "passwd")
		if out, err := sftp("get", "-a", "shftp", "/data/hostroot/etc/passwd", pw); err != nil {
			t.Fatalf("sftp get through the link: %v\n%s", err, out)
		}
		if b, _ := os.ReadFile(pw); !bytes.Contains(b, []byte("alice:x:1000")) {
			t.Fatalf("/data/hostroot/etc/passwd is not the machine's:\n%s", b)
		}
		// A write through the link lands in the machine, not on the host.
		escaped := marker + "-written"
		t.Cleanup(func() { os.Remove(escaped) })
		small := filepath.Join(dir, "small.txt")
		if err := os.WriteFile(small, []byte("inside"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := sftp("put", "-a", "shftp", small, "/data/climb"+escaped); err == nil {
			// The machine has no such directory as the host's /tmp…
			// unless it does: then the file must be in the machine.
			if got := execIn(t, "cat", escaped); got != "inside" {
				t.Errorf("put through the link: not in the machine (%q)\n%s", got, out)
			}
		}
		if _, err := os.Stat(escaped); err == nil {
			t.Fatalf("a put through a link in the machine wrote the host's %s", escaped)
		}
	})

	t.Run("shell", func(t *testing.T) {
		up := filepath.Join(dir, "up.txt")
		if err := os.WriteFile(up, []byte("uploaded in the shell\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := hangarCmd(t, bin, d, "ssh", "sftp", "shell", "-a", "shftp")
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader("cd /etc\npwd\nls\nget passwd passwd-from-shell\ncd /data\nput up.txt\nls /data\ncd /nowhere\nexit\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sftp shell: %v\n%s", err, out)
		}
		for _, want := range []string{"> /etc\n", "passwd", "bytes written to passwd-from-shell", "bytes written to /data/up.txt", "up.txt", "hostroot -> /", "/nowhere: no such file"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("sftp shell output lacks %q:\n%s", want, out)
			}
		}
		if got := execIn(t, "cat", "/data/up.txt"); got != "uploaded in the shell\n" {
			t.Errorf("the shell's put: %q in the machine", got)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "passwd-from-shell")); !bytes.Contains(b, []byte("alice")) {
			t.Errorf("the shell's get: %q", b)
		}
	})

	t.Run("volume", func(t *testing.T) {
		// A file put under a volume's mount point lands on the volume:
		// the daemon sees the machine's mounts, not only its image.
		var vol types.Volume
		if err := json.Unmarshal([]byte(hangarOK(t, d, "volumes", "create", "files", "--size-mb", "16", "-a", "shftp", "--json")), &vol); err != nil {
			t.Fatal(err)
		}
		c := &flyClient{t: t, base: d.API, token: d.Token}
		var m types.Machine
		c.must(200, "POST", "/apps/shftp/machines", types.CreateMachineRequest{Config: &types.MachineConfig{Image: ref,
			Env: map[string]string{"PORT": "8080"}, Mounts: []types.MachineMount{{Volume: vol.ID, Path: "/vol"}}}}, nil).decode(t, &m)
		c.must(200, "GET", "/apps/shftp/machines/"+m.ID+"/wait?state=started&timeout=30", nil, nil)
		small := filepath.Join(dir, "onvolume.txt")
		if err := os.WriteFile(small, []byte("on the volume"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := sftp("put", "-a", "shftp", "--machine", m.ID, small, "/vol/onvolume.txt"); err != nil {
			t.Fatalf("sftp put to the volume: %v\n%s", err, out)
		}
		// Seen from inside the machine.
		if got := hangarOK(t, d, "machine", "exec", "-a", "shftp", m.ID, "cat", "/vol/onvolume.txt"); got != "on the volume" {
			t.Fatalf("cat in the machine: %q", got)
		}
		hangarOK(t, d, "machine", "stop", "-a", "shftp", m.ID)
		c.must(200, "GET", "/apps/shftp/machines/"+m.ID+"/wait?state=stopped&timeout=30", nil, nil)
		hangarOK(t, d, "machine", "start", "-a", "shftp", m.ID)
		c.must(200, "GET", "/apps/shftp/machines/"+m.ID+"/wait?state=started&timeout=30", nil, nil)
		// The writable layer is discarded at a stop; the volume is not.
		if got := hangarOK(t, d, "machine", "exec", "-a", "shftp", m.ID, "cat", "/vol/onvolume.txt"); got != "on the volume" {
			t.Fatalf("after a restart: %q, want the file kept on the volume", got)
		}
		hangarOK(t, d, "machine", "destroy", "-a", "shftp", "--force", m.ID)
	})

	t.Run("contract", func(t *testing.T) {
		// files/stat as the daemon's own document describes it.
		c := hangarDocClient(t, d, d.Token)
		var info types.FileInfo
		c.must(200, "GET", "/apps/shftp/machines/"+id+"/files/stat?path=/etc", nil, nil).decode(t, &info)
		if !info.IsDir || info.Path != "/etc" || len(info.Entries) == 0 {
			t.Errorf("stat /etc: %+v", info)
		}
		c.must(400, "GET", "/apps/shftp/machines/"+id+"/files/stat?path=../../etc", nil, nil)
		c.must(404, "GET", "/apps/shftp/machines/"+id+"/files/stat?path=/nope", nil, nil)
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"get", "-a", "shftp", "/data", filepath.Join(dir, "x")}, "is a directory"},
			{[]string{"get", "-a", "shftp", "/nope/nothing", filepath.Join(dir, "x")}, "no such file"},
			{[]string{"put", "-a", "shftp", filepath.Join(dir, "missing"), "/data/x"}, "missing"},
			{[]string{"put", "-a", "shftp", filepath.Join(dir, "small.txt"), "/nodir/x"}, "no such file"},
			{[]string{"get", "-a", "shftp", "--machine", "nosuchmachine", "/etc/passwd"}, "nosuchmachine"},
		} {
			if out, err := sftp(tc.args...); err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("hangar ssh sftp %s: %v, want an error naming %q\n%s", strings.Join(tc.args, " "), err, tc.want, out)
			}
		}
		hangarOK(t, d, "machine", "stop", "-a", "shftp", id)
		out, err := sftp("get", "-a", "shftp", "--machine", id, "/etc/passwd", filepath.Join(dir, "y"))
		if err == nil || !strings.Contains(out, "stopped") || !strings.Contains(out, "machine start") {
			t.Errorf("sftp get from a stopped machine: %v\n%s", err, out)
		}
	})
}
