package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestMachineLogs runs a daemon with a small log cap (128 KiB) and a tiny
// retention (3s): a machine prints thousands of lines through the test
// app's /log, its log rotates at the cap, `hangar logs` returns exactly the
// last N lines in order across the rotated pair, a follower sees every
// line written across a rotation once, and the janitor removes a destroyed
// machine's expired log but not a live machine's, then the app's logs with
// the app.
func TestMachineLogs(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	const maxSize = 128 << 10
	const retention = 3 * time.Second
	d := harness.StartDaemonWith(t, bin, "--log-max-size", "128KiB", "--log-retention", retention.String())
	ref := d.ImportTestApp()
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "chatty"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	logDir := filepath.Join(d.DataDir, "logs", "chatty")
	client := &http.Client{Timeout: 30 * time.Second}
	create := func() types.Machine {
		t.Helper()
		cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}}
		code, body := d.Call("POST", "/v1/apps/chatty/machines", types.CreateMachineRequest{Config: &cfg, Region: "tst"})
		if code != http.StatusOK {
			t.Fatalf("create machine: %d %s", code, body)
		}
		var m types.Machine
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		if code, body := d.Call("GET", "/v1/apps/chatty/machines/"+m.ID+"/wait?state=started&timeout=30", nil); code != http.StatusOK {
			t.Fatalf("machine %s did not start: %d %s", m.ID, code, body)
		}
		// Started is before the app listens.
		harness.Poll(t, "the machine serves", 15*time.Second, func() (bool, string) {
			resp, err := client.Get("http://" + net.JoinHostPort(m.PrivateIP, "8080") + "/healthz")
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200, resp.Status
		})
		return m
	}
	// print has the machine print n numbered lines "<tag> <seq> <pad>".
	print := func(m types.Machine, tag string, n int) {
		t.Helper()
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
	size := func(path string) int64 {
		fi, err := os.Stat(path)
		if err != nil {
			return -1
		}
		return fi.Size()
	}

	a := create()
	cur := filepath.Join(logDir, a.ID+".log")
	// ~88 bytes a line: 2000 lines are ~172 KiB, one rotation.
	print(a, "a", 2000)
	harness.Poll(t, "the log rotates at the cap", 10*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(cur)
		return size(cur+".1") > 0 && strings.HasSuffix(string(b), msg("a", 1999)+"\n"), fmt.Sprintf(".1: %d bytes, current: %d", size(cur+".1"), size(cur))
	})
	if s1, s := size(cur+".1"), size(cur); s1 > maxSize || s > maxSize || s1 < maxSize-200 {
		t.Fatalf("sizes after rotation: .1 %d, current %d; want both at most %d, .1 full", s1, s, maxSize)
	}
	for _, p := range []string{cur + ".1", cur} {
		if b, _ := os.ReadFile(p); len(b) == 0 || b[len(b)-1] != '\n' {
			t.Fatalf("%s does not end with a whole line", p)
		}
	}

	// `hangar logs -n 1000`: the last 1000 lines, from both files, in order.
	out, err := d.Hangar("logs", "-a", "chatty", "-n", "1000", "--json")
	if err != nil {
		t.Fatalf("hangar logs: %v\n%.2000s", err, out)
	}
	var got []types.LogLine
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l types.LogLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("hangar logs --json printed %q: %v", line, err)
		}
		got = append(got, l)
	}
	if len(got) != 1000 {
		t.Fatalf("hangar logs -n 1000 printed %d lines", len(got))
	}
	firstInCurrent := -1
	b, _ := os.ReadFile(cur)
	if _, rest, ok := strings.Cut(strings.SplitN(string(b), "\n", 2)[0], " stdout "); ok {
		fmt.Sscanf(rest, "a %d", &firstInCurrent)
	}
	if firstInCurrent <= 1000 {
		t.Fatalf("the current file starts at line %d: the last 1000 lines do not span the rotation", firstInCurrent)
	}
	for i, l := range got {
		if want := msg("a", 1000+i); l.Message != want || l.MachineID != a.ID || l.Stream != "stdout" || l.Region != "tst" {
			t.Fatalf("line %d: %+v, want message %q from machine %s", i, l, want, a.ID)
		}
	}
	// The plain output too.
	if out, err := d.Hangar("logs", "-a", "chatty", "-n", "3"); err != nil || strings.Count(out, "\n") != 3 || !strings.Contains(out, "app["+a.ID+"] tst [info] "+msg("a", 1999)) {
		t.Fatalf("hangar logs -n 3: %v\n%s", err, out)
	}

	// Follow from now while the machine prints enough to rotate again.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", d.API+"/v1/apps/chatty/logs?follow=true&lines=0", nil)
	req.Header.Set("Authorization", "Bearer "+d.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("follow: %d", resp.StatusCode)
	}
	rotatedBefore, _ := os.Stat(cur + ".1")
	print(a, "b", 2000)
	sc := bufio.NewScanner(resp.Body)
	for i := 0; i < 2000; i++ {
		if !sc.Scan() {
			t.Fatalf("follow ended after %d of 2000 lines: %v", i, sc.Err())
		}
		var l types.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Message != msg("b", i) {
			t.Fatalf("follow line %d: %s (%v), want %q: a line lost, repeated or out of order", i, sc.Bytes(), err, msg("b", i))
		}
	}
	if rotatedNow, err := os.Stat(cur + ".1"); err != nil || os.SameFile(rotatedNow, rotatedBefore) {
		t.Fatalf("the follower was not tested across a rotation: %v", err)
	}
	cancel()

	// A destroyed machine's log goes once older than the retention; the
	// live machine's log, idle for longer, stays.
	bm := create()
	print(bm, "gone", 10)
	if code, body := d.Call("DELETE", "/v1/apps/chatty/machines/"+bm.ID+"?force=true", nil); code != http.StatusOK {
		t.Fatalf("destroy: %d %s", code, body)
	}
	bLog := filepath.Join(logDir, bm.ID+".log")
	if out, err := d.Hangar("logs", "-a", "chatty", "-n", "1"); err != nil || !strings.Contains(out, bm.ID) {
		t.Fatalf("a destroyed machine's logs should stay readable until they expire: %v\n%s", err, out)
	}
	harness.Poll(t, "the janitor removes the destroyed machine's log", 20*time.Second, func() (bool, string) {
		return size(bLog) < 0, fmt.Sprint(size(bLog), " bytes")
	})
	fi, err := os.Stat(cur)
	if err != nil {
		t.Fatalf("the live machine's log was removed: %v", err)
	}
	if idle := time.Since(fi.ModTime()); idle < retention {
		t.Fatalf("the live machine's log was written %v ago, under the retention: the check proves nothing", idle)
	}
	// Its rotated and archived files, idle past the retention, go.
	harness.Poll(t, "the janitor removes the live machine's old rotated files", 20*time.Second, func() (bool, string) {
		entries, _ := os.ReadDir(logDir)
		var left []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), a.ID+".log.") {
				left = append(left, e.Name())
			}
		}
		return len(left) == 0, strings.Join(left, " ")
	})

	// Deleting the app removes its logs at once.
	if code, body := d.Call("DELETE", "/v1/apps/chatty", nil); code != http.StatusAccepted {
		t.Fatalf("delete app: %d %s", code, body)
	}
	harness.Poll(t, "the deleted app's logs are removed", 10*time.Second, func() (bool, string) {
		_, err := os.Stat(logDir)
		return os.IsNotExist(err), fmt.Sprint(err)
	})
}
