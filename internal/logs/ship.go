package logs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// Shipper ships machine logs to HTTP sinks (`hangar logs ship --to`): per
// sink, batches of NDJSON lines (one types.LogLine a line) POSTed in
// order, each retried with backoff until the sink answers 2xx, from the
// sink's creation on, never skipping a line.
//
// Delivery: each sink has a cursor in the store. Before a batch is sent,
// its end is recorded with its sequence number (the batch is "pending");
// after a 2xx the cursor moves past it. A daemon killed between the 2xx
// and that write sends the pending batch again after its restart: the
// same lines in the same order with the same Hangar-Batch number (and
// Idempotency-Key), rebuilt from the recorded end. So every line reaches
// the sink at least once, in batches numbered 1, 2, 3… per sink; a
// receiver that drops a batch number it has already accepted gets every
// line exactly once. Lines the retention removes before they are shipped
// (a sink down longer than the retention) are lost to it.
type Shipper struct {
	Store store.Store
	// Sources lists the logs of an app (every app for "").
	Sources func(ctx context.Context, app string) ([]Source, error)
	// Client posts the batches (default: 30 s timeout).
	Client *http.Client
	Log    *slog.Logger
	// Poll is the time between reads when a sink has caught up
	// (default 500 ms).
	Poll time.Duration
	// Limits bound a batch.
	Limits Limits
	// MaxBackoff bounds the wait between retries (default 30 s).
	MaxBackoff time.Duration
	// Metrics counts what is shipped (nil: not counted).
	Metrics *Metrics
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu      sync.Mutex
	ctx     context.Context               // Run's; nil until Run
	running map[string]context.CancelFunc // sinks being shipped to, by id
}

// sinkRecord is a sink as stored under sinkPrefix+id.
type sinkRecord struct {
	types.LogSink
	Cursor Cursor `json:"cursor"`
	// Seq is the number of the last batch the sink acknowledged.
	Seq     int64         `json:"seq"`
	Pending *pendingBatch `json:"pending,omitempty"`
}

// pendingBatch is a batch being sent: its number and where it ends.
type pendingBatch struct {
	Seq   int64          `json:"seq"`
	End   map[string]Pos `json:"end"`
	Lines int            `json:"lines"`
}

const sinkPrefix = "logsinks/"

// Headers of a batch.
const (
	SinkHeader  = "Hangar-Sink"  // the sink's id
	BatchHeader = "Hangar-Batch" // the batch's number, from 1, per sink
)

// ErrNoSink is returned for a sink that does not exist.
var ErrNoSink = types.NewError(types.ErrNotFound, "no such log sink (see `hangar logs ship list`)")

var errBadSinkURL = types.NewError(types.ErrInvalid, "a log sink's URL is http:// or https:// with a host")

func (s *Shipper) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Shipper) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Run ships to every sink until ctx ends.
func (s *Shipper) Run(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	s.running = map[string]context.CancelFunc{}
	s.mu.Unlock()
	sinks, err := s.List(ctx)
	if err != nil {
		s.log().Error("list log sinks; none is shipped to until a restart", "err", err)
	}
	for _, sink := range sinks {
		s.start(sink.ID)
	}
	<-ctx.Done()
}

// start ships to a sink in the background, once Run has begun.
func (s *Shipper) start(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.running[id] != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.running[id] = cancel
	go s.loop(ctx, id)
}

// Add records a sink that ships lines written from now on.
func (s *Shipper) Add(ctx context.Context, req types.CreateLogSinkRequest) (types.LogSink, error) {
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return types.LogSink{}, fmt.Errorf("log sink %q: %w", req.URL, errBadSinkURL)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	now := s.now().UTC()
	rec := sinkRecord{LogSink: types.LogSink{ID: hex.EncodeToString(b[:]), URL: req.URL, App: req.App, CreatedAt: now},
		Cursor: Cursor{Since: now}}
	if _, err := store.PutJSON(ctx, s.Store, sinkPrefix+rec.ID, rec, 0); err != nil {
		return types.LogSink{}, fmt.Errorf("record log sink: %w", err)
	}
	s.start(rec.ID)
	return rec.LogSink, nil
}

// List returns the sinks.
func (s *Shipper) List(ctx context.Context) ([]types.LogSink, error) {
	kvs, err := s.Store.List(ctx, sinkPrefix)
	if err != nil {
		return nil, fmt.Errorf("list log sinks: %w", err)
	}
	var out []types.LogSink
	for _, kv := range kvs {
		var rec sinkRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("log sink %s: %w", kv.Key, err)
		}
		out = append(out, rec.LogSink)
	}
	return out, nil
}

// Remove stops shipping to a sink and forgets it; a batch in flight may
// still arrive.
func (s *Shipper) Remove(ctx context.Context, id string) error {
	if _, err := s.Store.Delete(ctx, sinkPrefix+id, store.AnyRevision); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("log sink %s: %w", id, ErrNoSink)
	} else if err != nil {
		return fmt.Errorf("remove log sink %s: %w", id, err)
	}
	s.mu.Lock()
	if cancel := s.running[id]; cancel != nil {
		cancel()
		delete(s.running, id)
	}
	s.mu.Unlock()
	return nil
}

// loop delivers to one sink until ctx ends or the sink is removed.
func (s *Shipper) loop(ctx context.Context, id string) {
	poll := s.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	maxBackoff := s.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	var backoff time.Duration
	for {
		start := time.Now()
		n, more, err := s.Step(ctx, id)
		if ctx.Err() != nil || errors.Is(err, ErrNoSink) {
			return
		}
		wait := time.Duration(0)
		switch {
		case err != nil:
			backoff = min(max(2*backoff, poll), maxBackoff)
			wait = backoff
			s.log().Warn("ship logs; retrying", "sink", id, "in", backoff, "err", err)
		case n == 0 || !more:
			backoff = 0
			wait = poll
		default:
			// Catching up: at most half of a core, so that a machine
			// flooding its log does not starve the proxy.
			backoff = 0
			wait = time.Since(start)
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// Step makes one delivery to a sink: the pending batch again if there is
// one, else the next batch. It returns how many lines the sink
// acknowledged and whether more were left; one step of the shipping loop.
func (s *Shipper) Step(ctx context.Context, id string) (n int, more bool, err error) {
	key := sinkPrefix + id
	var rec sinkRecord
	rev, err := store.GetJSON(ctx, s.Store, key, &rec)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, fmt.Errorf("log sink %s: %w", id, ErrNoSink)
	}
	if err != nil {
		return 0, false, err
	}
	sources, listErr := s.Sources(ctx, rec.App)
	if listErr != nil {
		s.log().Warn("list machine logs to ship", "sink", id, "err", listErr)
	}
	var b Batch
	if rec.Pending != nil {
		b, err = readBatch(ctx, sources, rec.Cursor, s.Limits, rec.Pending.End)
		if len(b.Lines) != rec.Pending.Lines {
			s.log().Warn("a batch sent again differs from its first sending (log files removed meanwhile)", "sink", id, "batch", rec.Pending.Seq,
				"lines", len(b.Lines), "first_lines", rec.Pending.Lines)
		}
	} else {
		b, err = readBatch(ctx, sources, rec.Cursor, s.Limits, nil)
		if len(b.Lines) == 0 {
			return 0, false, err
		}
		rec.Pending = &pendingBatch{Seq: rec.Seq + 1, End: b.End, Lines: len(b.Lines)}
		if rev, err = store.PutJSON(ctx, s.Store, key, rec, rev); err != nil {
			return 0, false, sinkGone(id, err)
		}
	}
	if err != nil {
		s.log().Warn("read machine logs to ship", "sink", id, "err", err)
	}
	if err := s.post(ctx, rec, b.Lines); err != nil {
		s.Metrics.shipError(id)
		rec.LastError = err.Error()
		_, _ = store.PutJSON(ctx, s.Store, key, rec, rev) // best effort: only the error
		return 0, false, err
	}
	rec.Cursor = rec.Cursor.advance(rec.Pending.End)
	if listErr == nil {
		rec.Cursor = rec.Cursor.prune(sources) // machines whose logs are gone
	}
	rec.Seq = rec.Pending.Seq
	rec.Pending = nil
	rec.Batches++
	rec.Lines += int64(len(b.Lines))
	rec.LastError = ""
	rec.Behind = b.More
	if _, err := store.PutJSON(ctx, s.Store, key, rec, rev); err != nil {
		return 0, false, sinkGone(id, err)
	}
	s.Metrics.shipped(id, len(b.Lines))
	return len(b.Lines), b.More, nil
}

// sinkGone turns a conflict (the sink removed or changed meanwhile)
// into ErrNoSink.
func sinkGone(id string, err error) error {
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("log sink %s: %w", id, ErrNoSink)
	}
	return fmt.Errorf("record the cursor of log sink %s: %w", id, err)
}

// post sends one batch.
func (s *Shipper) post(ctx context.Context, rec sinkRecord, lines []types.LogLine) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rec.URL, &body)
	if err != nil {
		return err
	}
	seq := strconv.FormatInt(rec.Pending.Seq, 10)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set(SinkHeader, rec.ID)
	req.Header.Set(BatchHeader, seq)
	req.Header.Set("Idempotency-Key", rec.ID+"-"+seq)
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post %d lines to %s: %w", len(lines), rec.URL, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %d lines to %s: %s: %s", len(lines), rec.URL, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
