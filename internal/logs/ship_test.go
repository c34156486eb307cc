package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// receiver is an honest HTTP sink: it keeps each batch number once,
// checks that a batch sent again is the same bytes, and can be told to
// take a batch and then not answer (an acknowledgement lost).
type receiver struct {
	t        *testing.T
	mu       sync.Mutex
	batches  map[int64][]byte
	resent   int
	loseNext int // batches to take without answering in time
	failNext int // batches to refuse with 503
	release  chan struct{}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	seq, err := strconv.ParseInt(r.Header.Get(BatchHeader), 10, 64)
	if err != nil || r.Header.Get(SinkHeader) == "" || r.Header.Get("Content-Type") != "application/x-ndjson" {
		rc.t.Errorf("batch without its headers: %v", r.Header)
		w.WriteHeader(400)
		return
	}
	rc.mu.Lock()
	if rc.failNext > 0 {
		rc.failNext--
		rc.mu.Unlock()
		http.Error(w, "not now", 503)
		return
	}
	if old, ok := rc.batches[seq]; ok {
		rc.resent++
		if !bytes.Equal(old, body) {
			rc.t.Errorf("batch %d sent again with other lines:\nfirst %.200q\nagain %.200q", seq, old, body)
		}
		rc.mu.Unlock()
		return
	}
	if seq != int64(len(rc.batches))+1 {
		rc.t.Errorf("batch %d after %d batches: a batch skipped", seq, len(rc.batches))
	}
	rc.batches[seq] = body
	lose := rc.loseNext > 0
	if lose {
		rc.loseNext--
	}
	rc.mu.Unlock()
	if lose {
		<-rc.release // past the client's timeout: taken, not acknowledged
	}
}

// lines returns the message of every line received, per machine.
func (rc *receiver) lines() map[string][]string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string][]string{}
	for i := int64(1); i <= int64(len(rc.batches)); i++ {
		sc := bufio.NewScanner(bytes.NewReader(rc.batches[i]))
		for sc.Scan() {
			var l types.LogLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				rc.t.Fatalf("batch %d: %v", i, err)
			}
			out[l.MachineID] = append(out[l.MachineID], l.Message)
		}
	}
	return out
}

// TestShipperEveryLineOnce: lines written while a sink is shipped to,
// across rotations, with acknowledgements lost, refusals, and a new
// Shipper taking over (a daemon restart), all reach the sink once each
// (batches sent again are the same batch), in order per machine; lines
// written before the sink was made are not shipped.
func TestShipperEveryLineOnce(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var sources []Source
	for _, id := range []string{"m1", "m2"} {
		sources = append(sources, Source{App: "app", MachineID: id, Region: "tst", Path: filepath.Join(dir, id+".log")})
	}
	// Lines before the sink: not shipped.
	old := time.Now().Add(-time.Hour)
	for _, src := range sources {
		writeFile(t, src.Path, fmt.Sprintf("%s stdout before\n", old.UTC().Format(TimeFormat)))
	}
	// An idle machine, last written an hour ago: skipped with a stat.
	idle := Source{App: "app", MachineID: "m0", Region: "tst", Path: filepath.Join(dir, "m0.log")}
	writeFile(t, idle.Path, fmt.Sprintf("%s stdout idle\n", old.UTC().Format(TimeFormat)))
	if err := os.Chtimes(idle.Path, old, old); err != nil {
		t.Fatal(err)
	}
	sources = append(sources, idle)
	rc := &receiver{t: t, batches: map[int64][]byte{}, release: make(chan struct{})}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	defer close(rc.release)
	newShipper := func() *Shipper {
		return &Shipper{Store: st, Sources: func(context.Context, string) ([]Source, error) { return sources, nil },
			Client: &http.Client{Timeout: 300 * time.Millisecond}, Limits: Limits{Lines: 40}}
	}
	ctx := context.Background()
	sh := newShipper()
	sink, err := sh.Add(ctx, types.CreateLogSinkRequest{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Add(ctx, types.CreateLogSinkRequest{URL: "ftp://x"}); err == nil {
		t.Fatal("an ftp sink was accepted")
	}

	// Two writers, as shims: lines with increasing times, rotating
	// every 100 lines (.1 to its archive, the log to .1).
	const perMachine = 1000
	var wg sync.WaitGroup
	for _, src := range sources[:2] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.OpenFile(src.Path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range perMachine {
				if i > 0 && i%100 == 0 {
					if ts := firstTimestamp(src.Path + ".1"); ts != "" {
						os.Rename(src.Path+".1", ArchivePath(src.Path, ts))
					}
					os.Rename(src.Path, src.Path+".1")
					f.Close()
					if f, err = os.OpenFile(src.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
						t.Error(err)
						return
					}
				}
				fmt.Fprintf(f, "%s stdout %s %d\n", time.Now().UTC().Format(TimeFormat), src.MachineID, i)
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			f.Close()
		}()
	}
	step := 0
	done := func() bool {
		got := rc.lines()
		return len(got["m1"]) >= perMachine && len(got["m2"]) >= perMachine
	}
	deadline := time.Now().Add(60 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("after %d steps: %d and %d lines shipped", step, len(rc.lines()["m1"]), len(rc.lines()["m2"]))
		}
		step++
		switch step % 7 * min(1, max(0, 60-step)) { // the first 60 steps
		case 2:
			rc.mu.Lock()
			rc.loseNext = 1
			rc.mu.Unlock()
		case 4:
			rc.mu.Lock()
			rc.failNext = 1
			rc.mu.Unlock()
		case 6:
			sh = newShipper() // a restart: only the store carries over
		}
		if _, _, err := sh.Step(ctx, sink.ID); err != nil {
			continue // retried at the next step
		}
	}
	wg.Wait()
	// The idle machine wakes: its new line is shipped, not its old one.
	f, err := os.OpenFile(idle.Path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s stdout m0 0\n", time.Now().UTC().Format(TimeFormat))
	f.Close()
	// Drain: the last acknowledgement recorded.
	for n, more, err := sh.Step(ctx, sink.ID); n > 0 || more || err != nil; n, more, err = sh.Step(ctx, sink.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("draining: %v", err)
		}
	}
	got := rc.lines()
	if strings.Join(got["m0"], "|") != "m0 0" {
		t.Fatalf("the idle machine's lines shipped: %q, want only its new one", got["m0"])
	}
	for _, src := range sources[:2] {
		lines := got[src.MachineID]
		if len(lines) != perMachine {
			t.Fatalf("%s: %d lines, want %d", src.MachineID, len(lines), perMachine)
		}
		for i, l := range lines {
			if l != fmt.Sprintf("%s %d", src.MachineID, i) {
				t.Fatalf("%s: line %d is %q", src.MachineID, i, l)
			}
		}
	}
	rc.mu.Lock()
	resent := rc.resent
	rc.mu.Unlock()
	if resent == 0 {
		t.Fatal("no batch was sent again: the lost acknowledgements were not exercised")
	}
	list, err := sh.List(ctx)
	if err != nil || len(list) != 1 || list[0].Lines != 2*perMachine+1 {
		t.Fatalf("List: %+v, %v; want one sink with %d lines", list, err, 2*perMachine)
	}
	if err := sh.Remove(ctx, sink.ID); err != nil {
		t.Fatal(err)
	}
	if err := sh.Remove(ctx, sink.ID); err == nil || !strings.Contains(err.Error(), "no such log sink") {
		t.Fatalf("removing twice: %v", err)
	}
}
