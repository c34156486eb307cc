package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is returned (wrapped) by Open when another process holds the file.
var ErrLocked = errors.New("state file is locked by another process")

// Defaults for Options.
const (
	DefaultHistoryLimit = 10000
	DefaultWatchBuffer  = 1024
	DefaultLockTimeout  = time.Second
)

// replayChunk bounds how many history entries one replay read transaction
// scans, so replaying watchers never hold a bbolt read transaction for long.
const replayChunk = 512

// Options tune the embedded store. The zero value means defaults.
type Options struct {
	// HistoryLimit is how many recent revisions of events are kept for
	// watch replay (default DefaultHistoryLimit). Watching from an older
	// revision fails with ErrCompacted.
	HistoryLimit int64
	// WatchBuffer is how many live events may be queued for one watcher
	// before it is considered lagging and closed (default DefaultWatchBuffer).
	WatchBuffer int
	// LockTimeout is how long Open waits for the file lock (default
	// DefaultLockTimeout).
	LockTimeout time.Duration
	// NoSync skips fsync on commit. Only for tests and benchmarks: a crash
	// can then lose or corrupt committed writes.
	NoSync bool
}

// Local is the embedded Store: a single bbolt file, safe for concurrent use by
// one process (the file is locked against other processes).
type Local struct {
	db   *bolt.DB
	path string
	opts Options

	// mu serializes writes together with watcher registration and
	// notification, so that a watcher sees every revision exactly once.
	mu       sync.Mutex
	compact  int64 // compacted revision; guarded by mu
	watchers map[*watcher]struct{}
	closed   bool

	rev        atomic.Int64 // latest committed revision; written under mu
	closedFlag atomic.Bool
	closing    chan struct{}
	wg         sync.WaitGroup
}

var _ Store = (*Local)(nil)

type watcher struct {
	ctx    context.Context
	prefix string
	after  int64
	ch     chan Event
	done   chan struct{} // closed when dropped by a writer (lagging)
	closed bool          // guarded by Local.mu once the watcher is synced
}

// Open opens (creating if needed) the embedded store at path, e.g.
// <data-dir>/state.db, with default Options.
func Open(path string) (*Local, error) { return OpenOptions(path, Options{}) }

// OpenOptions is Open with options.
func OpenOptions(path string, opts Options) (*Local, error) {
	return openWith(path, opts, migrations, SchemaVersion)
}

func openWith(path string, opts Options, migs []migration, target int) (*Local, error) {
	if opts.HistoryLimit <= 0 {
		opts.HistoryLimit = DefaultHistoryLimit
	}
	if opts.WatchBuffer <= 0 {
		opts.WatchBuffer = DefaultWatchBuffer
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open state %s: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open state %s: another process holds the file (is another hangar daemon using this data dir?); gave up after %s: %w",
				path, opts.LockTimeout, ErrLocked)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if err := migrate(db, migs, target); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s := &Local{
		db:       db,
		path:     path,
		opts:     opts,
		watchers: make(map[*watcher]struct{}),
		closing:  make(chan struct{}),
	}
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		rev, err := getU64(meta, keyRev)
		if err != nil {
			return err
		}
		compact, err := getU64(meta, keyCompact)
		if err != nil {
			return err
		}
		s.rev.Store(int64(rev))
		s.compact = int64(compact)
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return s, nil
}

// Path returns the file the store was opened from.
func (s *Local) Path() string { return s.path }

// Close closes all watches and the file. It is safe to call more than once.
func (s *Local) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.closedFlag.Store(true)
	close(s.closing)
	for w := range s.watchers {
		s.dropLocked(w, ErrClosed)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return s.db.Close()
}

func (s *Local) readErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Get implements Store.
func (s *Local) Get(ctx context.Context, key string) (KV, error) {
	if err := s.check(ctx); err != nil {
		return KV{}, err
	}
	var kv KV
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketKV).Get([]byte(key))
		if raw == nil {
			return fmt.Errorf("key %q: %w", key, ErrNotFound)
		}
		var err error
		kv, err = decodeRecord(key, raw)
		return err
	})
	return kv, s.readErr(err)
}

// List implements Store.
func (s *Local) List(ctx context.Context, prefix string) ([]KV, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var out []KV
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketKV).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			kv, err := decodeRecord(string(k), v)
			if err != nil {
				return err
			}
			out = append(out, kv)
		}
		return nil
	})
	return out, s.readErr(err)
}

// Revision implements Store.
func (s *Local) Revision(ctx context.Context) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	return s.rev.Load(), nil
}

// Put implements Store.
func (s *Local) Put(ctx context.Context, key string, value []byte, expect int64) (int64, error) {
	return s.write(ctx, []Op{{Key: key, Value: value, Expect: expect}})
}

// Delete implements Store.
func (s *Local) Delete(ctx context.Context, key string, expect int64) (int64, error) {
	return s.write(ctx, []Op{{Key: key, Delete: true, Expect: expect}})
}

// Txn implements Store.
func (s *Local) Txn(ctx context.Context, ops []Op) (int64, error) {
	if len(ops) == 0 {
		return s.Revision(ctx)
	}
	return s.write(ctx, ops)
}

func (s *Local) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closedFlag.Load() {
		return ErrClosed
	}
	return nil
}

func validateOps(ops []Op) error {
	var seen map[string]struct{}
	if len(ops) > 1 {
		seen = make(map[string]struct{}, len(ops))
	}
	for i, op := range ops {
		if op.Key == "" {
			return fmt.Errorf("op %d: empty key: %w", i, ErrInvalid)
		}
		if len(op.Key) > bolt.MaxKeySize {
			return fmt.Errorf("op %d: key longer than %d bytes: %w", i, bolt.MaxKeySize, ErrInvalid)
		}
		if op.Expect < AnyRevision {
			return fmt.Errorf("key %q: expected revision %d: %w", op.Key, op.Expect, ErrInvalid)
		}
		if seen != nil {
			if _, dup := seen[op.Key]; dup {
				return fmt.Errorf("key %q: appears twice in one txn: %w", op.Key, ErrInvalid)
			}
			seen[op.Key] = struct{}{}
		}
	}
	return nil
}

func (s *Local) write(ctx context.Context, ops []Op) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	if err := validateOps(ops); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	newRev := s.rev.Load() + 1
	compact := s.compact
	var events []Event
	err := s.db.Update(func(tx *bolt.Tx) error {
		events = events[:0]
		kvb := tx.Bucket(bucketKV)
		hist := tx.Bucket(bucketHistory)
		meta := tx.Bucket(bucketMeta)
		for i, op := range ops {
			k := []byte(op.Key)
			raw := kvb.Get(k)
			var old KV
			exists := raw != nil
			if exists {
				var err error
				if old, err = decodeRecord(op.Key, raw); err != nil {
					return err
				}
			}
			if op.Delete && !exists {
				return fmt.Errorf("key %q: %w", op.Key, ErrNotFound)
			}
			switch {
			case op.Expect == AnyRevision:
			case op.Expect == 0 && exists:
				return fmt.Errorf("key %q: expected no key, have revision %d: %w", op.Key, old.ModRevision, ErrConflict)
			case op.Expect > 0 && !exists:
				return fmt.Errorf("key %q: expected revision %d, key does not exist: %w", op.Key, op.Expect, ErrConflict)
			case op.Expect > 0 && old.ModRevision != op.Expect:
				return fmt.Errorf("key %q: expected revision %d, have %d: %w", op.Key, op.Expect, old.ModRevision, ErrConflict)
			}
			var ev Event
			if op.Delete {
				if err := kvb.Delete(k); err != nil {
					return err
				}
				ev = Event{Type: EventDelete, Revision: newRev, KV: KV{
					Key: op.Key, Value: old.Value, CreateRevision: old.CreateRevision, ModRevision: newRev}}
			} else {
				create := newRev
				if exists {
					create = old.CreateRevision
				}
				ev = Event{Type: EventPut, Revision: newRev, KV: KV{
					Key: op.Key, Value: cloneBytes(op.Value), CreateRevision: create, ModRevision: newRev}}
				if err := kvb.Put(k, encodeRecord(create, newRev, op.Value)); err != nil {
					return err
				}
			}
			if err := hist.Put(historyKey(newRev, uint32(i)), encodeEvent(ev)); err != nil {
				return err
			}
			events = append(events, ev)
		}
		if err := meta.Put(keyRev, u64(uint64(newRev))); err != nil {
			return err
		}
		if threshold := newRev - s.opts.HistoryLimit; threshold > compact {
			if err := compactHistory(hist, threshold); err != nil {
				return err
			}
			compact = threshold
			if err := meta.Put(keyCompact, u64(uint64(compact))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, s.readErr(err)
	}
	s.rev.Store(newRev)
	s.compact = compact
	s.notifyLocked(events)
	return newRev, nil
}

// compactHistory deletes history entries with revision <= threshold.
func compactHistory(hist *bolt.Bucket, threshold int64) error {
	var del [][]byte
	c := hist.Cursor()
	for k, _ := c.First(); k != nil && historyRev(k) <= threshold; k, _ = c.Next() {
		del = append(del, cloneBytes(k))
	}
	for _, k := range del {
		if err := hist.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// notifyLocked hands the events of one committed revision to the synced
// watchers without blocking. A watcher gets all of the revision's matching
// events or, if its buffer cannot take them all, none: it is then closed with
// ErrWatcherLagged. So the last event a dropped watcher received ends a
// complete revision, and re-watching from that revision loses nothing.
func (s *Local) notifyLocked(events []Event) {
	for w := range s.watchers {
		n := 0
		for _, ev := range events {
			if ev.Revision > w.after && strings.HasPrefix(ev.KV.Key, w.prefix) {
				n++
			}
		}
		if n == 0 {
			continue
		}
		// Only writers send on a synced watcher's channel, and they hold
		// s.mu, so free space can only grow until the sends below.
		if cap(w.ch)-len(w.ch) < n {
			s.dropLocked(w, ErrWatcherLagged)
			continue
		}
		for _, ev := range events {
			if ev.Revision > w.after && strings.HasPrefix(ev.KV.Key, w.prefix) {
				w.ch <- ev
			}
		}
	}
}

func (s *Local) dropLocked(w *watcher, err error) {
	if w.closed {
		return
	}
	w.closed = true
	delete(s.watchers, w)
	close(w.done)
	CloseWatch(w.ch, err)
}

// Watch implements Store. Events with revision > afterRev are replayed from
// the history in chunks, then the watcher switches to live delivery; the
// switch happens under the write lock, so no revision is missed or repeated.
func (s *Local) Watch(ctx context.Context, prefix string, afterRev int64) (<-chan Event, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if afterRev < 0 {
		return nil, fmt.Errorf("watch from revision %d: %w", afterRev, ErrInvalid)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if afterRev < s.compact {
		compact := s.compact
		s.mu.Unlock()
		return nil, fmt.Errorf("watch from revision %d: history starts after revision %d: %w", afterRev, compact, ErrCompacted)
	}
	w := &watcher{
		ctx:    ctx,
		prefix: prefix,
		after:  afterRev,
		ch:     make(chan Event, s.opts.WatchBuffer),
		done:   make(chan struct{}),
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.runWatcher(w)
	return w.ch, nil
}

func (s *Local) runWatcher(w *watcher) {
	defer s.wg.Done()
	ctx := w.ctx
	scanned := w.after
	// Replay: this goroutine owns w.ch until the watcher is registered.
	for {
		var evs []Event
		var err error
		evs, scanned, err = s.readHistory(w.prefix, scanned)
		if err != nil {
			CloseWatch(w.ch, s.readErr(err))
			return
		}
		for _, ev := range evs {
			select {
			case w.ch <- ev:
			case <-ctx.Done():
				CloseWatch(w.ch, nil)
				return
			case <-s.closing:
				CloseWatch(w.ch, ErrClosed)
				return
			}
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			CloseWatch(w.ch, ErrClosed)
			return
		}
		if ctx.Err() != nil {
			s.mu.Unlock()
			CloseWatch(w.ch, nil)
			return
		}
		if s.rev.Load() <= scanned {
			s.watchers[w] = struct{}{}
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
	}
	// Live: writers send under s.mu; whoever closes does so under s.mu.
	select {
	case <-ctx.Done():
	case <-s.closing:
	case <-w.done:
	}
	s.mu.Lock()
	s.dropLocked(w, nil) // no-op if a writer or Close already dropped it
	s.mu.Unlock()
}

// readHistory returns events with revision > after matching prefix, scanning
// at most about replayChunk entries (whole revisions), and the revision up to
// which history has been scanned.
func (s *Local) readHistory(prefix string, after int64) ([]Event, int64, error) {
	var evs []Event
	scanned := after
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		compact, err := getU64(meta, keyCompact)
		if err != nil {
			return err
		}
		rev, err := getU64(meta, keyRev)
		if err != nil {
			return err
		}
		if after < int64(compact) {
			return fmt.Errorf("watch replay from revision %d: history starts after revision %d: %w", after, compact, ErrCompacted)
		}
		c := tx.Bucket(bucketHistory).Cursor()
		pfx := []byte(prefix)
		n := 0
		last := after
		for k, v := c.Seek(historyKey(after+1, 0)); k != nil; k, v = c.Next() {
			r := historyRev(k)
			if n >= replayChunk && r != last {
				scanned = last
				return nil
			}
			last = r
			n++
			if !bytes.HasPrefix(historyKeyName(v), pfx) {
				continue
			}
			ev, err := decodeEvent(v)
			if err != nil {
				return fmt.Errorf("history revision %d: %w", r, err)
			}
			evs = append(evs, ev)
		}
		scanned = max(after, int64(rev))
		return nil
	})
	return evs, scanned, err
}

// Check verifies the file: bbolt's page-level consistency check plus the
// store's invariants (decodable records, revisions within bounds, history
// consistent with the compacted revision). It is meant for tests and
// `hangar doctor`-style tooling; it reads the whole file.
func (s *Local) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt check: %w", errors.Join(errs...))
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("no meta bucket")
		}
		schema, err := getU64(meta, keySchema)
		if err != nil {
			return err
		}
		if schema != SchemaVersion {
			return fmt.Errorf("schema %d, want %d", schema, SchemaVersion)
		}
		rev, err := getU64(meta, keyRev)
		if err != nil {
			return err
		}
		compact, err := getU64(meta, keyCompact)
		if err != nil {
			return err
		}
		if compact > rev {
			return fmt.Errorf("compacted revision %d > revision %d", compact, rev)
		}
		err = tx.Bucket(bucketKV).ForEach(func(k, v []byte) error {
			kv, err := decodeRecord(string(k), v)
			if err != nil {
				return err
			}
			if kv.CreateRevision < 1 || kv.CreateRevision > kv.ModRevision || kv.ModRevision > int64(rev) {
				return fmt.Errorf("key %q: create %d mod %d, store revision %d", k, kv.CreateRevision, kv.ModRevision, rev)
			}
			return nil
		})
		if err != nil {
			return err
		}
		prev := int64(compact)
		return tx.Bucket(bucketHistory).ForEach(func(k, v []byte) error {
			if len(k) != 12 {
				return fmt.Errorf("history key %x: bad length", k)
			}
			r := historyRev(k)
			if r <= int64(compact) || r > int64(rev) {
				return fmt.Errorf("history revision %d outside (%d, %d]", r, compact, rev)
			}
			if r > prev+1 {
				return fmt.Errorf("history gap between revisions %d and %d", prev, r)
			}
			prev = r
			ev, err := decodeEvent(v)
			if err != nil {
				return fmt.Errorf("history revision %d: %w", r, err)
			}
			if ev.Revision != r {
				return fmt.Errorf("history key revision %d holds event of revision %d", r, ev.Revision)
			}
			return nil
		})
	})
}

// ---- encoding ----

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func encodeRecord(create, mod int64, value []byte) []byte {
	b := make([]byte, 16, 16+len(value))
	binary.BigEndian.PutUint64(b[0:], uint64(create))
	binary.BigEndian.PutUint64(b[8:], uint64(mod))
	return append(b, value...)
}

// decodeRecord copies out of raw (bbolt memory is only valid inside the tx).
func decodeRecord(key string, raw []byte) (KV, error) {
	if len(raw) < 16 {
		return KV{}, fmt.Errorf("key %q: corrupt record (%d bytes)", key, len(raw))
	}
	return KV{
		Key:            key,
		CreateRevision: int64(binary.BigEndian.Uint64(raw[0:])),
		ModRevision:    int64(binary.BigEndian.Uint64(raw[8:])),
		Value:          cloneBytes(raw[16:]),
	}, nil
}

func historyKey(rev int64, idx uint32) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 12), uint64(rev))
	return binary.BigEndian.AppendUint32(b, idx)
}

func historyRev(k []byte) int64 { return int64(binary.BigEndian.Uint64(k)) }

// event: type u8 | revision u64 | create u64 | mod u64 | keylen u32 | key | value
const eventHeader = 1 + 8 + 8 + 8 + 4

func encodeEvent(ev Event) []byte {
	b := make([]byte, 0, eventHeader+len(ev.KV.Key)+len(ev.KV.Value))
	b = append(b, byte(ev.Type))
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Revision))
	b = binary.BigEndian.AppendUint64(b, uint64(ev.KV.CreateRevision))
	b = binary.BigEndian.AppendUint64(b, uint64(ev.KV.ModRevision))
	b = binary.BigEndian.AppendUint32(b, uint32(len(ev.KV.Key)))
	b = append(b, ev.KV.Key...)
	return append(b, ev.KV.Value...)
}

// historyKeyName returns the key inside an encoded event without copying
// (nil if corrupt; decodeEvent reports the error).
func historyKeyName(v []byte) []byte {
	if len(v) < eventHeader {
		return nil
	}
	n := int(binary.BigEndian.Uint32(v[25:]))
	if len(v) < eventHeader+n {
		return nil
	}
	return v[eventHeader : eventHeader+n]
}

func decodeEvent(v []byte) (Event, error) {
	if len(v) < eventHeader {
		return Event{}, fmt.Errorf("corrupt event (%d bytes)", len(v))
	}
	n := int(binary.BigEndian.Uint32(v[25:]))
	if len(v) < eventHeader+n {
		return Event{}, fmt.Errorf("corrupt event (key length %d, %d bytes)", n, len(v))
	}
	t := EventType(v[0])
	if t != EventPut && t != EventDelete {
		return Event{}, fmt.Errorf("corrupt event (type %d)", v[0])
	}
	return Event{
		Type:     t,
		Revision: int64(binary.BigEndian.Uint64(v[1:])),
		KV: KV{
			CreateRevision: int64(binary.BigEndian.Uint64(v[9:])),
			ModRevision:    int64(binary.BigEndian.Uint64(v[17:])),
			Key:            string(v[eventHeader : eventHeader+n]),
			Value:          cloneBytes(v[eventHeader+n:]),
		},
	}, nil
}
