package fsutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestReserveGivesSpaceBack fills a small tmpfs: the reserve is given back
// when the disk is full, so that much can still be written, and taken
// again once space is freed.
func TestReserveGivesSpaceBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	r := &Reserve{Path: filepath.Join(dir, ".reserve"), Size: 1 << 20}
	st, err := r.Check()
	if err != nil || !st.ReserveHeld || st.Full {
		t.Fatalf("on an empty disk: %+v %v", st, err)
	}
	if fi, err := os.Stat(r.Path); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("reserve file: %v %v", fi, err)
	}
	// Fill what is left.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for i := 0; i < 1000; i++ {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, "state"), buf, 0o600); err == nil {
		t.Fatal("the disk is not full")
	}
	st, err = r.Check()
	if err != nil || st.ReserveHeld || !st.Full || st.FreeBytes < 1<<20 {
		t.Fatalf("on a full disk: %+v %v", st, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state"), buf, 0o600); err != nil {
		t.Fatalf("a state write after the reserve was given back: %v", err)
	}
	if st := r.State(); !st.Full {
		t.Fatalf("State() = %+v, want what Check found", st)
	}
	// Space freed: the reserve comes back.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	st, err = r.Check()
	if err != nil || !st.ReserveHeld || st.Full {
		t.Fatalf("after space was freed: %+v %v", st, err)
	}
}
