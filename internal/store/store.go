// Package store is Hangar's state store: a key/value interface with a global
// revision counter, per-key create/modify revisions, compare-and-swap writes,
// atomic multi-key transactions and prefix watches with replay.
//
// The semantics follow etcd's so that a clustered deployment can put etcd
// behind the same interface; the single-host daemon uses the embedded
// implementation returned by Open (a bbolt file). See docs/store.md.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

var (
	// ErrNotFound is returned (wrapped with the key) when a key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned (wrapped with the key and revisions) when a
	// write's expected revision does not match the key's ModRevision.
	ErrConflict = errors.New("revision conflict")
	// ErrCompacted is returned by Watch, or reported by WatchErr, when the
	// requested starting revision is older than the history the store keeps.
	ErrCompacted = errors.New("requested revision has been compacted")
	// ErrWatcherLagged is reported by WatchErr when a watcher's channel was
	// closed because its consumer fell too far behind the writers.
	ErrWatcherLagged = errors.New("watcher fell behind and was closed")
	// ErrClosed is returned by operations on a closed store, and reported by
	// WatchErr for watches that ended because the store was closed.
	ErrClosed = errors.New("store is closed")
	// ErrInvalid is returned (wrapped) for malformed requests: empty keys,
	// duplicate keys in one Txn, expected revisions below AnyRevision.
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable is returned (wrapped, with the cause and a hint) when a
	// networked store cannot answer: no quorum, no leader, or no member
	// reachable within the request timeout. A write that fails with it may
	// or may not have been applied (like a write cut short by a crash):
	// re-read before retrying a conditional write. The embedded store never
	// returns it.
	ErrUnavailable = errors.New("store unavailable")
	// ErrSchemaTooNew is returned (wrapped) by Open when the file was written
	// by a newer version of hangar.
	ErrSchemaTooNew = errors.New("schema too new")
)

// AnyRevision as an expected revision makes a Put or Delete unconditional.
const AnyRevision int64 = -1

// KV is one key with its value and revisions.
type KV struct {
	Key   string
	Value []byte
	// CreateRevision is the revision at which the key was (last) created.
	CreateRevision int64
	// ModRevision is the revision of the key's last modification. For a
	// delete event it is the revision of the delete.
	ModRevision int64
}

// EventType is the kind of change an Event reports.
type EventType int

const (
	EventPut EventType = iota + 1
	EventDelete
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "PUT"
	case EventDelete:
		return "DELETE"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change to one key. All events of one Put, Delete or Txn carry
// the same Revision. For a delete, KV.Value is the last value the key had,
// KV.CreateRevision is the deleted key's create revision and KV.ModRevision
// is the delete's revision.
type Event struct {
	Type     EventType
	KV       KV
	Revision int64
}

// Store is the state store interface. All implementations must pass
// storetest.Run.
type Store interface {
	// Get returns the key, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (KV, error)
	// List returns all keys starting with prefix, sorted by key ("" = all).
	List(ctx context.Context, prefix string) ([]KV, error)
	// Put writes value if the key's ModRevision equals expect (0 = key must
	// not exist, AnyRevision = unconditional); returns the new revision.
	// ErrConflict otherwise.
	Put(ctx context.Context, key string, value []byte, expect int64) (int64, error)
	// Delete removes the key if its ModRevision equals expect (AnyRevision =
	// unconditional); returns the new revision. ErrNotFound if missing
	// (whatever expect is), ErrConflict if the revision does not match.
	Delete(ctx context.Context, key string, expect int64) (int64, error)
	// Txn applies several puts/deletes atomically, each with its own
	// expected revision; all or nothing. All ops of a successful Txn share
	// one new revision, which is returned. An empty Txn writes nothing and
	// returns the current revision. A key may appear at most once.
	Txn(ctx context.Context, ops []Op) (int64, error)
	// Watch streams events for keys with prefix with revision > afterRev:
	// first replayed from history, then live. The channel closes when ctx
	// ends or the store closes; a watcher that falls behind is closed
	// instead of blocking writers. After the channel closes, WatchErr(ch)
	// tells why (nil when ctx ended). If afterRev is older than the kept
	// history Watch returns an error wrapping ErrCompacted.
	Watch(ctx context.Context, prefix string, afterRev int64) (<-chan Event, error)
	// Revision returns the store's current (latest committed) revision.
	Revision(ctx context.Context) (int64, error)
	// Close closes the store and all its watches. It is safe to call twice.
	Close() error
}

// Op is one operation of a Txn: a put of Value, or a delete if Delete is set,
// conditional on Expect with the same rules as Put and Delete.
type Op struct {
	Key    string
	Value  []byte
	Delete bool
	Expect int64
}

// ---- watch errors ----

// watchErrs remembers why watch channels were closed abnormally. Only abnormal
// closes are recorded, and only the most recent maxWatchErrs of them are kept
// so that the registry cannot grow without bound.
var watchErrs struct {
	mu    sync.Mutex
	m     map[<-chan Event]error
	order []<-chan Event
}

const maxWatchErrs = 4096

// WatchErr reports why a channel returned by Watch was closed: nil if it is
// still open or was closed because the watch's context ended; ErrWatcherLagged
// if the consumer fell behind; ErrClosed if the store was closed;
// ErrCompacted if history was compacted while the watch was replaying; an
// error wrapping ErrUnavailable if a networked store lost its quorum or its
// connection (watch again from the last revision received).
// Call it after the channel is closed (after a range loop ends).
func WatchErr(ch <-chan Event) error {
	watchErrs.mu.Lock()
	defer watchErrs.mu.Unlock()
	return watchErrs.m[ch]
}

// CloseWatch records err as the reason for closing ch (if err is non-nil)
// and then closes ch. It is for Store implementations: every implementation
// closes its watch channels through it so that WatchErr works for all of them.
// The caller must guarantee ch is not closed twice and not sent on afterwards.
func CloseWatch(ch chan Event, err error) {
	if err != nil {
		watchErrs.mu.Lock()
		if watchErrs.m == nil {
			watchErrs.m = make(map[<-chan Event]error)
		}
		var ro <-chan Event = ch
		if _, ok := watchErrs.m[ro]; !ok {
			watchErrs.order = append(watchErrs.order, ro)
		}
		watchErrs.m[ro] = err
		for len(watchErrs.order) > maxWatchErrs {
			delete(watchErrs.m, watchErrs.order[0])
			watchErrs.order[0] = nil
			watchErrs.order = watchErrs.order[1:]
		}
		watchErrs.mu.Unlock()
	}
	close(ch)
}

// ---- JSON helpers ----

// GetJSON reads key and unmarshals its value into v. It returns the key's
// ModRevision, suitable as the expect argument of a following PutJSON.
func GetJSON(ctx context.Context, s Store, key string, v any) (rev int64, err error) {
	kv, err := s.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return 0, fmt.Errorf("key %q: decode json: %w", key, err)
	}
	return kv.ModRevision, nil
}

// PutJSON marshals v and writes it with the same rules as Store.Put.
func PutJSON(ctx context.Context, s Store, key string, v any, expect int64) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("key %q: encode json: %w", key, err)
	}
	return s.Put(ctx, key, b, expect)
}

// UpdateJSON does a read-modify-write of key with retries on ErrConflict (and
// on the key vanishing or appearing between read and write) until it succeeds
// or ctx ends. fn gets the current value (nil if the key is missing) and
// returns the new one; returning nil deletes the key (or does nothing if it is
// missing). fn may run several times and must not have side effects beyond
// building its result; an error from fn is returned as is, with nothing
// written. UpdateJSON returns the value written and the revision of the write
// (nil and 0 if fn returned nil for a missing key).
func UpdateJSON[T any](ctx context.Context, s Store, key string, fn func(cur *T) (*T, error)) (*T, int64, error) {
	backoff := 100 * time.Microsecond
	for {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		var cur *T
		var expect int64
		kv, err := s.Get(ctx, key)
		switch {
		case err == nil:
			cur = new(T)
			if err := json.Unmarshal(kv.Value, cur); err != nil {
				return nil, 0, fmt.Errorf("key %q: decode json: %w", key, err)
			}
			expect = kv.ModRevision
		case errors.Is(err, ErrNotFound):
			expect = 0
		default:
			return nil, 0, err
		}
		next, err := fn(cur)
		if err != nil {
			return nil, 0, err
		}
		var rev int64
		if next == nil {
			if expect == 0 {
				return nil, 0, nil
			}
			rev, err = s.Delete(ctx, key, expect)
		} else {
			rev, err = PutJSON(ctx, s, key, next, expect)
		}
		if err == nil {
			return next, rev, nil
		}
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
			return nil, 0, err
		}
		// Lost a race: back off a little (jittered) and retry.
		d := backoff/2 + rand.N(backoff)
		if backoff < 20*time.Millisecond {
			backoff *= 2
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, 0, ctx.Err()
		case <-t.C:
		}
	}
}
