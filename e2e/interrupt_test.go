package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestDeployInterruptedByKill kills the daemon with SIGKILL at six points
// of a rolling deploy of a 3-machine app under load, and starts it again:
// the interrupted deploy must be settled (rolled back, release failed
// "interrupted", or finished, release complete, whichever is true of the
// machines), the app must have exactly 3 machines serving the release its
// record names, and the next deploy must keep the count. No request may
// fail while the daemon runs (requests sent while it is dead are not
// counted: its proxy is down then).
func TestDeployInterruptedByKill(t *testing.T) {
	d, ref, dir := deployZD(t)
	if out, err := d.Hangar("scale", "count", "3", "-a", "zd"); err != nil {
		t.Fatalf("scale count 3: %v\n%s", err, out)
	}
	release := func(m types.Machine) int {
		v, _ := strconv.Atoi(m.Config.Metadata[types.MetaRelease])
		return v
	}
	points := []struct {
		name string
		// reached says, from the app's machines and the releases, whether
		// the deploy of release v (over the old machines) is at the point.
		reached func(ms []types.Machine, rels []deploy.Release, v int, old map[string]bool) bool
	}{
		{"release created", func(ms []types.Machine, rels []deploy.Release, v int, old map[string]bool) bool {
			return len(rels) > 0 && rels[0].Version == v
		}},
		{"spearhead created", func(ms []types.Machine, rels []deploy.Release, v int, old map[string]bool) bool {
			for _, m := range ms {
				if !old[m.ID] && release(m) == v {
					return true
				}
			}
			return false
		}},
		{"spearhead healthy", func(ms []types.Machine, rels []deploy.Release, v int, old map[string]bool) bool {
			for _, m := range ms {
				if !old[m.ID] && release(m) == v && m.State == types.StateStarted && passing(m) {
					return true
				}
			}
			return false
		}},
		{"first old machine stopped", func(ms []types.Machine, rels []deploy.Release, v int, old map[string]bool) bool {
			for _, m := range ms {
				if old[m.ID] && (m.State == types.StateStopping || m.State == types.StateStopped) {
					return true
				}
			}
			return false
		}},
		{"all new machines started", func(ms []types.Machine, rels []deploy.Release, v int, old map[string]bool) bool {
			n := 0
			for _, m := range ms {
				if !old[m.ID] && release(m) == v && m.State == types.StateStarted {
					n++
				}
			}
			return n == 3
		}},
		// The rollout is done or about to be: a restart finishes it.
		{"every old machine stopped", func(ms []types.Machine, rels []deploy.Release, v int, old map[string]bool) bool {
			for _, m := range ms {
				if old[m.ID] && m.State != types.StateStopped && m.State != types.StateDestroying && m.State != types.StateDestroyed {
					return false
				}
			}
			return true
		}},
	}
	for i, pt := range points {
		version := fmt.Sprintf("k%d", i)
		old := map[string]bool{}
		oldVersion := ""
		for _, m := range d.Machines("zd") {
			old[m.ID] = true
			oldVersion = m.Config.Env["APP_VERSION"]
		}
		var rels []deploy.Release
		if err := d.Get("/v1/apps/zd/releases", &rels); err != nil {
			t.Fatal(err)
		}
		v := rels[0].Version + 1

		l := d.StartLoad("zd", 16)
		cfg := writeZD(t, dir, version, "0", "30s", "")
		deployed := make(chan string, 1)
		go func() {
			out, err := d.Hangar("deploy", "-c", cfg, "--image", ref)
			deployed <- fmt.Sprint(err, "\n", out)
		}()
		deadline := time.Now().Add(60 * time.Second)
		for {
			var ms []types.Machine
			var rels []deploy.Release
			if d.Get("/v1/apps/zd/machines", &ms) == nil && d.Get("/v1/apps/zd/releases", &rels) == nil && pt.reached(ms, rels, v, old) {
				break
			}
			select {
			case out := <-deployed:
				t.Fatalf("%s: the deploy ended before the kill point:\n%s", pt.name, out)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: kill point not reached within 60s", pt.name)
			}
			time.Sleep(10 * time.Millisecond)
		}
		finishLoad(t, l, pt.name+": before the kill")
		d.Stop(syscall.SIGKILL)
		<-deployed // the CLI's stream broke
		d.Start()
		l = d.StartLoad("zd", 16)

		// The interrupted release is settled, and says what happened.
		var rel deploy.Release
		harness.Poll(t, pt.name+": release settled", 60*time.Second, func() (bool, string) {
			err := d.Get(fmt.Sprintf("/v1/apps/zd/releases/%d", v), &rel)
			return err == nil && rel.Status != deploy.StatusRunning, fmt.Sprint(rel.Status, err)
		})
		want := oldVersion
		if rel.Status == deploy.StatusComplete {
			want = version
		} else if !strings.HasPrefix(rel.Reason, deploy.ReasonInterrupted) {
			t.Fatalf("%s: release v%d is %s: %q, want complete or failed (interrupted)", pt.name, v, rel.Status, rel.Reason)
		}
		t.Logf("%s: release v%d %s %s", pt.name, v, rel.Status, rel.Reason)
		harness.Poll(t, pt.name+": exactly 3 machines of "+want+" serving", 60*time.Second, func() (bool, string) {
			ms := d.Machines("zd")
			ok := len(ms) == 3
			var desc []string
			for _, m := range ms {
				desc = append(desc, m.ID+" "+m.State+" "+m.Config.Env["APP_VERSION"])
				if m.State != types.StateStarted || m.Config.Env["APP_VERSION"] != want || !passing(m) {
					ok = false
				}
			}
			return ok, strings.Join(desc, ", ")
		})
		if rel.Status == deploy.StatusFailed {
			for _, m := range d.Machines("zd") {
				if !old[m.ID] {
					t.Errorf("%s: machine %s is new, yet the release was rolled back", pt.name, m.ID)
				}
			}
		}
		finishLoad(t, l, pt.name+": after the restart")
	}
	// The next deploy keeps the count.
	l := d.StartLoad("zd", 16)
	out, err := d.Hangar("deploy", "-c", writeZD(t, dir, "after", "0", "30s", ""), "--image", ref)
	finishLoad(t, l, "the deploy after the kills")
	if err != nil {
		t.Fatalf("deploy after the kills: %v\n%s", err, out)
	}
	if v := versions(t, d, "zd"); v["after"] != 3 || len(d.Machines("zd")) != 3 {
		t.Fatalf("after the next deploy: %v, %d machines; want 3 of release after", v, len(d.Machines("zd")))
	}
}

// passing reports whether every check of m passes.
func passing(m types.Machine) bool {
	for _, c := range m.Checks {
		if c.Status != types.CheckPassing {
			return false
		}
	}
	return true
}
