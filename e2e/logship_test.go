package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// sinkReceiver is an honest HTTP log sink: it keeps each batch number
// once, checks that a batch sent again has the same bytes, and, when
// told, takes the next new batch without answering until released (so
// the daemon can be killed between the sink having a batch and the
// daemon knowing it).
type sinkReceiver struct {
	t       *testing.T
	mu      sync.Mutex
	batches map[int64][]byte
	resent  int
	hold    bool          // hold the next new batch
	held    chan struct{} // closed once a batch is held
	release chan struct{}
}

func (rc *sinkReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	seq, err := strconv.ParseInt(r.Header.Get("Hangar-Batch"), 10, 64)
	if err != nil {
		rc.t.Errorf("a batch without Hangar-Batch: %v", r.Header)
		w.WriteHeader(400)
		return
	}
	rc.mu.Lock()
	if old, ok := rc.batches[seq]; ok {
		rc.resent++
		if !bytes.Equal(old, body) {
			rc.t.Errorf("batch %d sent again with other lines", seq)
		}
		rc.mu.Unlock()
		return
	}
	if seq != int64(len(rc.batches))+1 {
		rc.t.Errorf("batch %d after %d batches", seq, len(rc.batches))
	}
	rc.batches[seq] = body
	hold := rc.hold
	rc.hold = false
	rc.mu.Unlock()
	if hold {
		close(rc.held)
		<-rc.release
		w.WriteHeader(500) // too late: the daemon that sent it is gone
	}
}

// lines returns the lines received, in batch order.
func (rc *sinkReceiver) lines() []types.LogLine {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []types.LogLine
	for i := int64(1); i <= int64(len(rc.batches)); i++ {
		sc := bufio.NewScanner(bytes.NewReader(rc.batches[i]))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l types.LogLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				rc.t.Errorf("batch %d: %v", i, err)
			}
			out = append(out, l)
		}
	}
	return out
}

// count returns how many lines of a tag were received (each time).
func countTag(lines []types.LogLine, tag string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l.Message, tag+" ") {
			n++
		}
	}
	return n
}

// TestLogsShipAndStream: one daemon, two apps with a machine each.
//   - NATS: a real nats.go client logged in with app A's token and
//     subscribed to logs.> receives A's lines in order, in Fly's shape,
//     and none of B's.
//   - HTTP sink (`hangar logs ship --to`): every line A prints reaches a
//     test server exactly once (per batch number, resent batches the
//     same) across a daemon kill -9 taken while the server held a batch,
//     with lines printed while the daemon was down.
//   - `hangar logs` --since/--until, --grep, --process-group, --region
//     read the right lines.
//   - Retention: B over its own size limit is trimmed oldest first, and
//     what is left is its newest lines without a gap.
func TestLogsShipAndStream(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := ln.Addr().String()
	ln.Close()
	d := harness.StartDaemonWith(t, bin, "--nats-listen", natsAddr, "--log-max-size", "128KiB", "--log-sweep-interval", "1s")
	ref := d.ImportTestApp()
	client := &http.Client{Timeout: 60 * time.Second}
	machines := map[string]types.Machine{}
	for app, group := range map[string]string{"shipa": "web", "shipb": "worker"} {
		if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app}); code != http.StatusCreated {
			t.Fatalf("create app: %d %s", code, body)
		}
		cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}, Metadata: map[string]string{types.MetaProcessGroup: group},
			Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080}}}
		code, body := d.Call("POST", "/v1/apps/"+app+"/machines", types.CreateMachineRequest{Config: &cfg, Region: "tst"})
		if code != http.StatusOK {
			t.Fatalf("create machine: %d %s", code, body)
		}
		var m types.Machine
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		if code, body := d.Call("GET", "/v1/apps/"+app+"/machines/"+m.ID+"/wait?state=started&timeout=30", nil); code != http.StatusOK {
			t.Fatalf("machine %s did not start: %d %s", m.ID, code, body)
		}
		harness.Poll(t, "the machine serves", 15*time.Second, func() (bool, string) {
			resp, err := client.Get("http://" + net.JoinHostPort(m.PrivateIP, "8080") + "/healthz")
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200, resp.Status
		})
		machines[app] = m
	}
	print := func(app, tag string, n int) {
		t.Helper()
		m := machines[app]
		resp, err := client.Get(fmt.Sprintf("http://%s/log?n=%d&tag=%s&pad=40", net.JoinHostPort(m.PrivateIP, "8080"), n, tag))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf("printed %d lines", n)) {
			t.Fatalf("/log: %d %s", resp.StatusCode, b)
		}
	}
	pad := strings.Repeat("x", 40)
	msg := func(tag string, i int) string { return fmt.Sprintf("%s %06d %s", tag, i, pad) }

	// NATS with app A's token.
	code, body := d.Call("POST", "/v1/tokens", types.CreateTokenRequest{Name: "shipper", App: "shipa"})
	if code != http.StatusCreated {
		t.Fatalf("create token: %d %s", code, body)
	}
	var tok types.CreateTokenResponse
	if err := json.Unmarshal([]byte(body), &tok); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://"+natsAddr, nats.UserInfo("personal", tok.Token), nats.Timeout(10*time.Second))
	if err != nil {
		t.Fatalf("NATS connect with an app token: %v", err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 10000)
	if _, err := nc.ChanSubscribe("logs.>", msgs); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	print("shipb", "nb", 300)
	print("shipa", "na", 300)
	print("shipb", "nb2", 300)
	for i := 0; i < 300; {
		select {
		case m := <-msgs:
			var fm struct {
				Fly struct {
					App    struct{ Instance, Name string } `json:"app"`
					Region string                          `json:"region"`
				} `json:"fly"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(m.Data, &fm); err != nil {
				t.Fatal(err)
			}
			if fm.Fly.App.Name == "shipa" && !strings.HasPrefix(fm.Message, "na ") {
				continue // the app's own start-up lines
			}
			if want := "logs.shipa.tst." + machines["shipa"].ID; m.Subject != want || fm.Fly.App.Name != "shipa" || fm.Fly.App.Instance != machines["shipa"].ID || fm.Message != msg("na", i) {
				t.Fatalf("NATS message %d: %s %s; want %q on %s: another app's line, or lost or out of order", i, m.Subject, m.Data, msg("na", i), want)
			}
			i++
		case <-time.After(30 * time.Second):
			t.Fatalf("NATS: %d of 300 lines of app shipa within 30 s", i)
		}
	}

	// The HTTP sink, across a kill -9.
	rc := &sinkReceiver{t: t, batches: map[int64][]byte{}, held: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(rc.release) }) }
	defer release()
	if out, err := d.Hangar("logs", "ship", "--to", srv.URL, "-a", "shipa"); err != nil || !strings.Contains(out, "Shipping the logs of app shipa") {
		t.Fatalf("hangar logs ship: %v\n%s", err, out)
	}
	print("shipa", "s", 3000)
	harness.Poll(t, "the sink receives lines", 30*time.Second, func() (bool, string) {
		n := countTag(rc.lines(), "s")
		return n > 0, fmt.Sprint(n, " lines")
	})
	rc.mu.Lock()
	rc.hold = true
	rc.mu.Unlock()
	print("shipa", "s2", 2000)
	select {
	case <-rc.held:
	case <-time.After(30 * time.Second):
		t.Fatal("no batch to hold within 30 s")
	}
	d.Stop(syscall.SIGKILL)
	release()
	print("shipa", "s3", 1000) // while the daemon is down: the shim logs
	d.Start()
	harness.Poll(t, "the sink receives every line", 90*time.Second, func() (bool, string) {
		got := rc.lines()
		return countTag(got, "s3") >= 1000, fmt.Sprintf("%d, %d and %d lines", countTag(got, "s"), countTag(got, "s2"), countTag(got, "s3"))
	})
	got := rc.lines()
	for _, tag := range []struct {
		name string
		n    int
	}{{"s", 3000}, {"s2", 2000}, {"s3", 1000}} {
		next := 0
		for _, l := range got {
			if !strings.HasPrefix(l.Message, tag.name+" ") {
				continue
			}
			if l.Message != msg(tag.name, next) {
				t.Fatalf("sink: %q where %q was due: a line lost, repeated or out of order", l.Message, msg(tag.name, next))
			}
			if l.App != "shipa" || l.Instance != machines["shipa"].ID || l.ProcessGroup != "web" || l.Stream != "stdout" {
				t.Fatalf("sink line: %+v", l)
			}
			next++
		}
		if next != tag.n {
			t.Fatalf("sink: %d lines of %s, want %d", next, tag.name, tag.n)
		}
	}
	for _, l := range got {
		if l.App != "shipa" {
			t.Fatalf("a sink of app shipa received a line of %s", l.App)
		}
	}
	rc.mu.Lock()
	resent := rc.resent
	rc.mu.Unlock()
	if resent == 0 {
		t.Fatal("the held batch was not sent again after the restart")
	}
	t.Logf("sink: %d lines in %d batches, %d sent again", len(got), len(rc.batches), resent)
	out, err := d.Hangar("logs", "ship", "list", "--json")
	var sinks []types.LogSink
	if err != nil || json.Unmarshal([]byte(out), &sinks) != nil || len(sinks) != 1 || sinks[0].Lines != int64(len(got)) {
		t.Fatalf("hangar logs ship list: %v\n%s", err, out)
	}
	if out, err := d.Hangar("logs", "ship", "remove", sinks[0].ID); err != nil {
		t.Fatalf("hangar logs ship remove: %v\n%s", err, out)
	}

	// --since/--until: the window between two lines' times, compared
	// with the lines the sink received.
	readJSON := func(args ...string) []types.LogLine {
		t.Helper()
		out, err := d.Hangar(append([]string{"logs", "--json"}, args...)...)
		if err != nil {
			t.Fatalf("hangar logs %v: %v\n%.2000s", args, err, out)
		}
		var ls []types.LogLine
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var l types.LogLine
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("hangar logs --json printed %q", line)
			}
			ls = append(ls, l)
		}
		return ls
	}
	var from, to string
	for _, l := range got {
		switch l.Message {
		case msg("s", 1000):
			from = l.Timestamp
		case msg("s2", 500):
			to = l.Timestamp
		}
	}
	var want []string
	for _, l := range got {
		if l.Timestamp >= from && l.Timestamp <= to {
			want = append(want, l.Message)
		}
	}
	var window []string
	for _, l := range readJSON("-a", "shipa", "--since", from, "--until", to) {
		window = append(window, l.Message)
	}
	if strings.Join(window, "\n") != strings.Join(want, "\n") || len(want) < 2000 {
		t.Fatalf("--since %s --until %s: %d lines, want %d", from, to, len(window), len(want))
	}
	grep := readJSON("-a", "shipa", "--since", "1h", "--grep", "^s2 0001[0-9]{2} ")
	if len(grep) != 100 || grep[0].Message != msg("s2", 100) || grep[99].Message != msg("s2", 199) {
		t.Fatalf("--grep: %d lines", len(grep))
	}
	if ls := readJSON("-a", "shipb", "--process-group", "web", "-n", "10"); len(ls) != 0 {
		t.Fatalf("--process-group web on app shipb (worker): %d lines", len(ls))
	}
	if ls := readJSON("-a", "shipb", "--process-group", "worker", "--region", "tst", "-n", "10"); len(ls) != 10 || ls[9].Message != msg("nb2", 299) || ls[9].ProcessGroup != "worker" {
		t.Fatalf("--process-group worker --region tst: %+v", ls)
	}
	if ls := readJSON("-a", "shipb", "--region", "nowhere", "-n", "10"); len(ls) != 0 {
		t.Fatalf("--region nowhere: %d lines", len(ls))
	}

	// Retention: app B's own limit, under what it will print.
	if out, err := d.Hangar("logs", "retention", "-a", "shipb", "--max-size", "400KiB"); err != nil || !strings.Contains(out, "max size 400KiB") {
		t.Fatalf("hangar logs retention: %v\n%s", err, out)
	}
	print("shipb", "r", 8000) // ~90 bytes a line: ~700 KiB, several rotations
	dir := filepath.Join(d.DataDir, "logs", "shipb")
	total := func() (int64, int) {
		var n int64
		files := 0
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".log") {
				if fi, err := e.Info(); err == nil {
					n += fi.Size()
					files++
				}
			}
		}
		return n, files
	}
	harness.Poll(t, "app shipb's logs are trimmed to its limit", 30*time.Second, func() (bool, string) {
		n, files := total()
		return n <= 400<<10, fmt.Sprintf("%d bytes in %d files", n, files)
	})
	kept := readJSON("-a", "shipb", "--since", "1h", "--grep", "^r ")
	if len(kept) < 1000 || kept[len(kept)-1].Message != msg("r", 7999) {
		t.Fatalf("after trimming: %d lines of r kept, the last %+v", len(kept), kept[len(kept)-1:])
	}
	first := 0
	fmt.Sscanf(kept[0].Message, "r %d", &first)
	if first == 0 {
		t.Fatal("nothing of app shipb was trimmed")
	}
	for i, l := range kept {
		if l.Message != msg("r", first+i) {
			t.Fatalf("after trimming, line %d is %q, want %q: not the oldest files removed", i, l.Message, msg("r", first+i))
		}
	}

	// None of B's lines ever reached A's NATS client.
	for len(msgs) > 0 {
		if m := <-msgs; !strings.HasPrefix(m.Subject, "logs.shipa.") {
			t.Fatalf("app shipa's NATS client received %s", m.Subject)
		}
	}
	// A reload hands the NATS port over (the old daemon closes it before
	// releasing the state, not when it exits after its requests in
	// flight, here one of 10 s): the client, reconnected, gets new lines.
	slow := make(chan error, 1)
	go func() {
		code, body, err := d.ViaProxy("shipa", "/sleep?d=10s")
		if err == nil && code != 200 {
			err = fmt.Errorf("%d %s", code, body)
		}
		slow <- err
	}()
	harness.Poll(t, "a request in flight", 10*time.Second, func() (bool, string) {
		resp, err := client.Get("http://" + net.JoinHostPort(machines["shipa"].PrivateIP, "8080") + "/inflight")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.TrimSpace(string(b)) != "inflight=0", string(b)
	})
	d.Reload()
	harness.Poll(t, "the NATS client reconnects", 30*time.Second, func() (bool, string) {
		return nc.IsConnected() && nc.Flush() == nil, nc.Status().String()
	})
	print("shipa", "nr", 100)
	for i := 0; i < 100; {
		select {
		case m := <-msgs:
			if !strings.HasPrefix(m.Subject, "logs.shipa.") {
				t.Fatalf("app shipa's NATS client received %s", m.Subject)
			}
			if strings.Contains(string(m.Data), `"message":"nr `) {
				i++
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("NATS after a reload: %d of 100 lines", i)
		}
	}
	if err := <-slow; err != nil {
		t.Fatalf("the request in flight across the reload: %v", err)
	}
}

// TestLogLinesLostOnFullDisk: a machine whose log cannot be written (the
// data dir's disk full) is not blocked: it goes on printing and serving;
// every line it printed is either in its log, whole, or counted as lost,
// exactly; once there is room a "hangar" line says how many were lost,
// `hangar logs` shows it, and the count is where the daemon's metric
// reads it.
func TestLogLinesLostOnFullDisk(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	dataDir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", dataDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for a small disk: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dataDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dataDir, err, out)
		}
	})
	d := harness.StartDaemonIn(t, bin, dataDir, "--api-listen", freeAddr(t), "--http-listen", freeAddr(t))
	ref := d.ImportTestApp()
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "full"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}}
	code, body := d.Call("POST", "/v1/apps/full/machines", types.CreateMachineRequest{Config: &cfg, Region: "tst"})
	if code != http.StatusOK {
		t.Fatalf("create machine: %d %s", code, body)
	}
	var m types.Machine
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	print := func(tag string, n int) {
		t.Helper()
		harness.Poll(t, "the machine prints", 30*time.Second, func() (bool, string) {
			resp, err := client.Get(fmt.Sprintf("http://%s/log?n=%d&tag=%s&pad=40", net.JoinHostPort(m.PrivateIP, "8080"), n, tag))
			if err != nil {
				return false, err.Error()
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == 200 && strings.Contains(string(b), fmt.Sprintf("printed %d lines", n)), string(b)
		})
	}
	pad := strings.Repeat("x", 40)
	msg := func(tag string, i int) string { return fmt.Sprintf("%s %06d %s", tag, i, pad) }
	logPath := filepath.Join(dataDir, "logs", "full", m.ID+".log")
	print("before", 10)
	// The daemon down (the machine runs on, its shim logging), so its
	// disk reserve is not given back meanwhile.
	d.Stop(syscall.SIGKILL)
	filler := fillDisk(t, dataDir)
	const n = 2000
	print("lost", n) // returns: the machine is not blocked
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	print("after", 10)
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	written, counted := 0, -1
	sawAfter := false
	for _, line := range strings.Split(string(raw), "\n") {
		_, rest, _ := strings.Cut(line, " ")
		stream, message, _ := strings.Cut(rest, " ")
		switch {
		case stream == "stdout" && strings.HasPrefix(message, "lost "):
			var i int
			fmt.Sscanf(message, "lost %d", &i)
			if message == msg("lost", i) {
				written++
			}
		case stream == "hangar":
			if counted >= 0 {
				t.Fatalf("two counts of lost lines: %q", line)
			}
			if _, err := fmt.Sscanf(message, "[hangar: %d log lines lost:", &counted); err != nil || !strings.Contains(message, "no space left") {
				t.Fatalf("the count line: %q", line)
			}
			if sawAfter {
				t.Fatal("the count came after the lines written once there was room")
			}
		case stream == "stdout" && strings.HasPrefix(message, "after "):
			sawAfter = true
		}
	}
	if counted <= 0 {
		t.Fatalf("no line counted as lost (%d of %d written): the disk was not full for the log", written, n)
	}
	if written+counted != n {
		t.Fatalf("%d lines written whole and %d counted lost, of %d printed: a line neither written nor counted", written, counted, n)
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "logs", "full", m.ID+".lost"))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(counted) {
		t.Fatalf("the machine's count of lost lines (the metric's source): %q %v, want %d", b, err, counted)
	}
	d.Start()
	out, err := d.Hangar("logs", "-a", "full", "-n", "11")
	if err != nil || !strings.Contains(out, fmt.Sprintf("[hangar] [hangar: %d log lines lost", counted)) || !strings.Contains(out, msg("after", 9)) {
		t.Fatalf("hangar logs: %v\n%s", err, out)
	}
	t.Logf("%d lines written, %d lost and counted", written, counted)
}
