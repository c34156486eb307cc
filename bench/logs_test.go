package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// writeMonth writes a month of one machine's logs as the shim leaves them:
// files of fileBytes, archived under their first line's time, then .1 and
// the current file, lines evenly spread over the last 30 days.
func writeMonth(b *testing.B, path string, totalBytes, fileBytes int) {
	b.Helper()
	const lineBytes = 120
	lines := totalBytes / lineBytes
	start := time.Now().Add(-30 * 24 * time.Hour)
	step := 30 * 24 * time.Hour / time.Duration(lines)
	msg := strings.Repeat("x", lineBytes-len("2006-01-02T15:04:05.000000000Z stdout ")-len("000000000 ")-1)
	var files []string
	var f *os.File
	var w *bufio.Writer
	written := 0
	flush := func() {
		if f != nil {
			w.Flush()
			f.Close()
		}
	}
	for i := 0; i < lines; i++ {
		at := start.Add(time.Duration(i) * step).UTC().Format("2006-01-02T15:04:05.000000000Z")
		if f == nil || written >= fileBytes {
			flush()
			name := path + ".tmp." + at
			files = append(files, name)
			var err error
			if f, err = os.Create(name); err != nil {
				b.Fatal(err)
			}
			w = bufio.NewWriterSize(f, 1<<20)
			written = 0
		}
		n, _ := fmt.Fprintf(w, "%s stdout %09d %s\n", at, i, msg)
		written += n
	}
	flush()
	for i, name := range files {
		to := path + "." + strings.TrimPrefix(name, path+".tmp.") // an archive
		switch i {
		case len(files) - 1:
			to = path
		case len(files) - 2:
			to = path + ".1"
		}
		if err := os.Rename(name, to); err != nil {
			b.Fatal(err)
		}
	}
}

// timeToFirstLine asks the API for an app's logs and returns the time to
// the first NDJSON line and to the end, and the lines read.
func timeToFirstLine(b *testing.B, d *harness.Daemon, app string, q url.Values) (first, all time.Duration, n int) {
	b.Helper()
	req, _ := http.NewRequest("GET", d.API+"/v1/apps/"+app+"/logs?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+d.Token)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if n == 0 {
				first = time.Since(start)
			}
			n++
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			b.Fatal(err)
		}
	}
	return first, time.Since(start), n
}

// BenchmarkLogs measures reading a month of one machine's logs (256 MiB)
// through the API: the time to the first line of a --since window at
// several depths and of the last 100 lines, beside the time to read the
// files whole (what a scan from the start would cost before its first
// line of a late window); and a machine flooding its log (~70 MB as fast
// as it can): the rate the shim sustains, whether a line is lost, and the
// proxy's requests/s to another app meanwhile against before.
func BenchmarkLogs(b *testing.B) {
	harness.RequireRoot(b)
	bin := harness.BuildBinary(b)
	dataDir := b.TempDir()
	logPath := filepath.Join(dataDir, "logs", "month", "0a1b2c3d4e5f60.log")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	natsAddr := ln.Addr().String()
	ln.Close()
	d := harness.StartDaemonIn(b, bin, dataDir, "--log-retention", "0", "--nats-listen", natsAddr)
	// The app first: the janitor removes the logs of apps that do not exist.
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "month"}); code != http.StatusCreated {
		b.Fatalf("create app: %d %s", code, body)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		b.Fatal(err)
	}
	const total, perFile = 256 << 20, 8 << 20
	writeMonth(b, logPath, total, perFile)
	// The scan reference: every byte of the files, read once (warm cache,
	// as the API's reads are after the first run).
	scan := func() time.Duration {
		start := time.Now()
		files, _ := filepath.Glob(filepath.Join(filepath.Dir(logPath), "*.log*"))
		buf := make([]byte, 1<<20)
		for _, p := range files {
			f, _ := os.Open(p)
			for {
				if _, err := f.Read(buf); err != nil {
					break
				}
			}
			f.Close()
		}
		return time.Since(start)
	}
	const runs = 5
	med := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nLogs: a month of one machine's logs (%d MiB in %d MiB files), medians of %d runs\n", total>>20, perFile>>20, runs)
	fmt.Fprintf(&sb, "%-40s %14s %14s %10s\n", "", "first line", "whole answer", "lines")
	var scans []time.Duration
	for range runs {
		scans = append(scans, scan())
	}
	cases := []struct {
		name string
		q    url.Values
	}{
		{"--since 29d (the start), -n 1000", url.Values{"since": {"29d"}, "lines": {"1000"}}},
		{"--since 15d (the middle), -n 1000", url.Values{"since": {"15d"}, "lines": {"1000"}}},
		{"--since 1h (the end)", url.Values{"since": {"1h"}}},
		{"--since 15d --until 14d23h (a window)", url.Values{"since": {"15d"}, "until": {"359h"}}},
		{"-n 100 (the last lines)", url.Values{"lines": {"100"}}},
	}
	firstMiddle := time.Duration(0)
	for _, c := range cases {
		var firsts, alls []time.Duration
		n := 0
		for range runs {
			f, a, k := timeToFirstLine(b, d, "month", c.q)
			firsts, alls, n = append(firsts, f), append(alls, a), k
		}
		if n == 0 {
			b.Fatalf("%s: no lines", c.name)
		}
		if strings.Contains(c.name, "middle") {
			firstMiddle = med(firsts)
		}
		fmt.Fprintf(&sb, "%-40s %14s %14s %10d\n", c.name, med(firsts).Round(10*time.Microsecond), med(alls).Round(10*time.Microsecond), n)
	}
	fmt.Fprintf(&sb, "%-40s %14s\n", "reference: read the files whole", med(scans).Round(10*time.Microsecond))
	fmt.Fprintf(&sb, "target: the first line in under 100 ms\n")

	// A machine flooding its log.
	ref := d.ImportTestApp()
	mk := func(app string) types.Machine {
		if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app}); code != http.StatusCreated {
			b.Fatalf("create app: %d %s", code, body)
		}
		cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
			Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080}}}
		code, body := d.Call("POST", "/v1/apps/"+app+"/machines", types.CreateMachineRequest{Config: &cfg})
		if code != http.StatusOK {
			b.Fatalf("create machine: %d %s", code, body)
		}
		var m types.Machine
		_ = json.Unmarshal([]byte(body), &m)
		harness.Poll(b, app+" serves", 30*time.Second, func() (bool, string) {
			code, _, err := d.ViaProxy(app, "/")
			return err == nil && code == 200, fmt.Sprint(code, err)
		})
		return m
	}
	mk("web")
	flood := mk("flood")
	rate := func(during func()) float64 {
		l := d.StartLoad("web", 8)
		start := time.Now()
		during()
		sent, failed, errs := l.Finish()
		if failed > 0 {
			b.Fatalf("proxy: %d of %d requests failed: %v", failed, sent, errs)
		}
		return float64(sent) / time.Since(start).Seconds()
	}
	const floodLines, pad = 500000, 100
	floodOnce := func(tag string) (time.Duration, int64, int) {
		start := time.Now()
		resp, err := http.Get(fmt.Sprintf("http://%s/log?n=%d&tag=%s&pad=%d", net.JoinHostPort(flood.PrivateIP, "8080"), floodLines, tag, pad))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		dur := time.Since(start)
		var size int64
		lines := 0
		harness.Poll(b, "the flood is all in the log", 60*time.Second, func() (bool, string) {
			size, lines = 0, 0
			files, _ := filepath.Glob(filepath.Join(d.DataDir, "logs", "flood", flood.ID+".log*"))
			for _, p := range files {
				raw, _ := os.ReadFile(p)
				lines += strings.Count(string(raw), " stdout "+tag+" ")
				if strings.Contains(string(raw), " stdout "+tag+" ") {
					size += int64(len(raw))
				}
			}
			return lines >= floodLines, fmt.Sprint(lines, " lines")
		})
		return dur, size, lines
	}
	idle := rate(func() { time.Sleep(3 * time.Second) })
	var floodDur time.Duration
	var size int64
	lines := 0
	busy := rate(func() { floodDur, size, lines = floodOnce("f") })
	mb := float64(size) / (1 << 20)
	fmt.Fprintf(&sb, "\nA machine flooding its log: %d lines, ~%.0f MiB written in %s: %.0f MiB/s through the shim; lines lost: %d\n",
		floodLines, mb, floodDur.Round(time.Millisecond), mb/floodDur.Seconds(), floodLines-lines)
	fmt.Fprintf(&sb, "proxy to another app, 8 keep-alive workers: %.0f req/s idle, %.0f req/s during the flood (%.2fx)\n", idle, busy, busy/idle)
	// The same with a NATS client taking every line: the daemon now
	// reads and publishes the flood.
	nc, err := nats.Connect("nats://"+natsAddr, nats.UserInfo("personal", d.Token))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	var got atomic.Int64
	if _, err := nc.Subscribe("logs.flood.>", func(*nats.Msg) { got.Add(1) }); err != nil {
		b.Fatal(err)
	}
	nc.Flush()
	time.Sleep(500 * time.Millisecond) // the publisher's next poll sees the client
	var natsFlood time.Duration
	busyNATS := rate(func() { natsFlood, _, _ = floodOnce("g") })
	harness.Poll(b, "the NATS client has the flood", 120*time.Second, func() (bool, string) {
		return got.Load() >= floodLines, fmt.Sprint(got.Load(), " messages")
	})
	fmt.Fprintf(&sb, "with a NATS client taking every line: flood in %s, proxy %.0f req/s (%.2fx idle); %d messages received\n",
		natsFlood.Round(time.Millisecond), busyNATS, busyNATS/idle, got.Load())
	fmt.Print(sb.String())
	b.ReportMetric(float64(firstMiddle.Microseconds())/1000, "since-middle-first-line-ms")
	b.ReportMetric(mb/floodDur.Seconds(), "shim-MiB/s")
	b.ReportMetric(busy/idle, "proxy-rate-during-flood")
	b.ReportMetric(busyNATS/idle, "proxy-rate-during-flood-nats")
}
