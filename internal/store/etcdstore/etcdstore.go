// Package etcdstore is the clustered implementation of store.Store: the same
// key/value interface, revisions, compare-and-swap writes, transactions and
// watches, kept in an etcd cluster (go.etcd.io/etcd/client/v3) instead of a
// bbolt file, so several Hangar hosts share one replicated state.
//
// A Store lives under a key prefix (its namespace, e.g. "/hangar/prod/"), so
// one etcd can hold several stores. Under it, "kv/" holds the keys and
// "meta" marks the namespace; the meta key's create revision is the store's
// revision 0, and every revision the store reports is etcd's revision minus
// that base. An empty namespace therefore starts at revision 0, exactly like a
// new bbolt store. docs/store.md ("The etcd store") maps every semantic.
package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangar-dev/hangar/internal/store"
)

// Defaults for Options.
const (
	DefaultPrefix         = "/hangar/default/"
	DefaultWatchBuffer    = 1024
	DefaultRequestTimeout = 5 * time.Second
	// MaxKeySize matches the embedded store's limit, so a key valid on one
	// host is valid on a cluster.
	MaxKeySize = 32768
)

// metaValue is written once, when a namespace is first opened.
const metaValue = "hangar store v1"

// Options tune a Store. The zero value means defaults.
type Options struct {
	// Prefix is the namespace in etcd, conventionally "/hangar/<cluster>/"
	// (default DefaultPrefix). It should end in "/": a prefix that is a
	// plain prefix of another store's would see that store's keys.
	Prefix string
	// WatchBuffer is how many events may wait in one watcher's channel
	// before it is closed with store.ErrWatcherLagged (default
	// DefaultWatchBuffer).
	WatchBuffer int
	// RequestTimeout bounds each Get, List, Put, Delete, Txn and Revision
	// when ctx has no earlier deadline (default DefaultRequestTimeout): with
	// no quorum, etcd may otherwise hold a request for a long time. Running
	// out of it is store.ErrUnavailable.
	RequestTimeout time.Duration
}

// Store is a store.Store kept in etcd. It is safe for concurrent use.
type Store struct {
	cli       *clientv3.Client
	ownClient bool
	opts      Options
	kvPrefix  string // Prefix + "kv/"
	metaKey   string // Prefix + "meta"
	base      int64  // etcd revision that is the store's revision 0

	// mu orders Close after every Watch's wg.Add.
	mu     sync.Mutex
	closed atomic.Bool     // set under mu
	ctx    context.Context // canceled by Close; parent of every watch
	cancel context.CancelFunc
	wg     sync.WaitGroup // watch goroutines
}

var _ store.Store = (*Store)(nil)

// Open connects to etcd with cfg and opens the store under opts.Prefix,
// creating the namespace if it is new. The store owns the client: Close
// closes it. cfg.Logger defaults to a silent logger.
func Open(ctx context.Context, cfg clientv3.Config, opts Options) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("open etcd store: no endpoints; pass the client URLs of the etcd members (e.g. https://10.0.0.1:2379): %w", store.ErrInvalid)
	}
	if cfg.Logger == nil && cfg.LogConfig == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultRequestTimeout
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("open etcd store at %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s, err := newStore(ctx, cli, opts)
	if err != nil {
		cli.Close()
		if cfg.TLS != nil && errors.Is(err, store.ErrUnavailable) {
			// A refused TLS handshake looks like an etcd that never answers.
			return nil, fmt.Errorf("open etcd store at %s: %w; with TLS, also check that the CA signed the members' certificates and that they accept the client certificate",
				strings.Join(cfg.Endpoints, ","), err)
		}
		return nil, fmt.Errorf("open etcd store at %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s.ownClient = true
	return s, nil
}

// New opens the store under opts.Prefix on an existing client, creating the
// namespace if it is new. Close does not close cli.
func New(ctx context.Context, cli *clientv3.Client, opts Options) (*Store, error) {
	s, err := newStore(ctx, cli, opts)
	if err != nil {
		return nil, fmt.Errorf("open etcd store: %w", err)
	}
	return s, nil
}

func newStore(ctx context.Context, cli *clientv3.Client, opts Options) (*Store, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.WatchBuffer <= 0 {
		opts.WatchBuffer = DefaultWatchBuffer
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	s := &Store{
		cli:      cli,
		opts:     opts,
		kvPrefix: opts.Prefix + "kv/",
		metaKey:  opts.Prefix + "meta",
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	octx, cancel := s.opContext(ctx)
	defer cancel()
	// Create the namespace marker unless it exists; either way its create
	// revision is the base.
	resp, err := cli.Txn(octx).
		If(clientv3.Compare(clientv3.CreateRevision(s.metaKey), "=", 0)).
		Then(clientv3.OpPut(s.metaKey, metaValue)).
		Else(clientv3.OpGet(s.metaKey)).
		Commit()
	if err != nil {
		s.cancel()
		return nil, s.mapErr(ctx, octx, "namespace "+opts.Prefix, err)
	}
	if resp.Succeeded {
		s.base = resp.Header.Revision
	} else {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			s.cancel()
			return nil, fmt.Errorf("namespace %s: marker %q vanished while opening; retry", opts.Prefix, s.metaKey)
		}
		if string(kvs[0].Value) != metaValue {
			s.cancel()
			return nil, fmt.Errorf("namespace %s: %q holds %q, not a hangar store marker; pick another prefix: %w",
				opts.Prefix, s.metaKey, kvs[0].Value, store.ErrInvalid)
		}
		s.base = kvs[0].CreateRevision
	}
	return s, nil
}

// Prefix returns the store's namespace in etcd.
func (s *Store) Prefix() string { return s.opts.Prefix }

// Close closes every watch (store.WatchErr reports store.ErrClosed) and, if
// the store opened its client, the client. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if s.ownClient {
		if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("close etcd client: %w", err)
		}
	}
	return nil
}

// opContext bounds one request by RequestTimeout, asks etcd to refuse it
// at once when the member it reaches has no leader, and ends it when the
// store is closed.
func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	octx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	stop := context.AfterFunc(s.ctx, cancel)
	return clientv3.WithRequireLeader(octx), func() { stop(); cancel() }
}

func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// mapErr turns an etcd client error into the store's error categories.
// ctx is the caller's context, octx the request's (from opContext).
func (s *Store) mapErr(ctx, octx context.Context, what string, err error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) {
		return fmt.Errorf("%s: %v; split it into smaller transactions (etcd limits ops per txn and request size): %w", what, err, store.ErrInvalid)
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("%s: %v: %w", what, err, store.ErrCompacted)
	}
	code := codes.Unknown
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	if code == codes.Unavailable || (octx != nil && octx.Err() != nil) || errors.Is(err, context.DeadlineExceeded) {
		return unavailable(what, err)
	}
	return fmt.Errorf("%s: etcd: %w", what, err)
}

func unavailable(what string, cause error) error {
	return fmt.Errorf("%s: %w (%v); etcd has no quorum or cannot be reached: check that a majority of the etcd members are running and reachable (etcdctl endpoint health --cluster); a write that fails this way may still have been applied",
		what, store.ErrUnavailable, cause)
}

func (s *Store) key(k string) string { return s.kvPrefix + k }

func (s *Store) rev(etcdRev int64) int64 { return etcdRev - s.base }

func validKey(i int, k string) error {
	if k == "" {
		return fmt.Errorf("op %d: empty key: %w", i, store.ErrInvalid)
	}
	if len(k) > MaxKeySize {
		return fmt.Errorf("op %d: key longer than %d bytes: %w", i, MaxKeySize, store.ErrInvalid)
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	if err := s.check(ctx); err != nil {
		return store.KV{}, err
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, s.key(key))
	if err != nil {
		return store.KV{}, s.mapErr(ctx, octx, fmt.Sprintf("get %q", key), err)
	}
	if len(resp.Kvs) == 0 {
		return store.KV{}, fmt.Errorf("key %q: %w", key, store.ErrNotFound)
	}
	kv := resp.Kvs[0]
	return store.KV{Key: key, Value: kv.Value, CreateRevision: s.rev(kv.CreateRevision), ModRevision: s.rev(kv.ModRevision)}, nil
}

// List implements store.Store. etcd answers a range sorted by key, from one
// consistent revision.
func (s *Store) List(ctx context.Context, prefix string) ([]store.KV, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, s.key(prefix), clientv3.WithPrefix())
	if err != nil {
		return nil, s.mapErr(ctx, octx, fmt.Sprintf("list %q", prefix), err)
	}
	var out []store.KV
	for _, kv := range resp.Kvs {
		out = append(out, store.KV{
			Key:            strings.TrimPrefix(string(kv.Key), s.kvPrefix),
			Value:          kv.Value,
			CreateRevision: s.rev(kv.CreateRevision),
			ModRevision:    s.rev(kv.ModRevision),
		})
	}
	return out, nil
}

// Revision implements store.Store: etcd's current revision (a linearizable
// read), shifted by the namespace's base.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, s.metaKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, s.mapErr(ctx, octx, "revision", err)
	}
	return s.rev(resp.Header.Revision), nil
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte, expect int64) (int64, error) {
	return s.write(ctx, []store.Op{{Key: key, Value: value, Expect: expect}})
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, key string, expect int64) (int64, error) {
	return s.write(ctx, []store.Op{{Key: key, Delete: true, Expect: expect}})
}

// Txn implements store.Store: one etcd transaction whose comparisons are the
// ops' expectations.
func (s *Store) Txn(ctx context.Context, ops []store.Op) (int64, error) {
	if len(ops) == 0 {
		return s.Revision(ctx)
	}
	return s.write(ctx, ops)
}

func validateOps(ops []store.Op) error {
	seen := make(map[string]struct{}, len(ops))
	for i, op := range ops {
		if err := validKey(i, op.Key); err != nil {
			return err
		}
		if op.Expect < store.AnyRevision {
			return fmt.Errorf("key %q: expected revision %d: %w", op.Key, op.Expect, store.ErrInvalid)
		}
		if _, dup := seen[op.Key]; dup {
			return fmt.Errorf("key %q: appears twice in one txn: %w", op.Key, store.ErrInvalid)
		}
		seen[op.Key] = struct{}{}
	}
	return nil
}

// write runs ops as one etcd Txn. Each op's expectation becomes comparisons
// (a key is missing iff its create revision is 0); the Else branch reads the
// compared keys in the same transaction, so a refusal is explained from the
// exact state etcd refused against, never from a later read.
func (s *Store) write(ctx context.Context, ops []store.Op) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	if err := validateOps(ops); err != nil {
		return 0, err
	}
	var (
		cmps    []clientv3.Cmp
		thens   []clientv3.Op
		elses   []clientv3.Op
		checked []int // indexes of ops with a condition, in Else order
	)
	for i, op := range ops {
		k := s.key(op.Key)
		n := len(cmps)
		switch {
		case op.Delete && op.Expect == store.AnyRevision:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), ">", 0))
		case op.Delete && op.Expect == 0:
			// Must exist and must not: never holds. Fails with
			// ErrNotFound or ErrConflict, as in the embedded store.
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), ">", 0),
				clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		case op.Expect == 0:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		case op.Expect > 0:
			// A missing key's mod revision compares as 0, never equal.
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", op.Expect+s.base))
		}
		if len(cmps) > n {
			elses = append(elses, clientv3.OpGet(k))
			checked = append(checked, i)
		}
		if op.Delete {
			thens = append(thens, clientv3.OpDelete(k))
		} else {
			thens = append(thens, clientv3.OpPut(k, string(op.Value)))
		}
	}
	what := "txn"
	if len(ops) == 1 {
		what = fmt.Sprintf("write %q", ops[0].Key)
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Txn(octx).If(cmps...).Then(thens...).Else(elses...).Commit()
	if err != nil {
		return 0, s.mapErr(ctx, octx, what, err)
	}
	if resp.Succeeded {
		return s.rev(resp.Header.Revision), nil
	}
	for j, i := range checked {
		var cur *store.KV
		if kvs := resp.Responses[j].GetResponseRange().GetKvs(); len(kvs) > 0 {
			cur = &store.KV{CreateRevision: s.rev(kvs[0].CreateRevision), ModRevision: s.rev(kvs[0].ModRevision)}
		}
		if err := opFailure(ops[i], cur); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("%s: etcd refused the transaction but every condition holds in its answer (a bug in etcdstore): %w", what, store.ErrConflict)
}

// opFailure is the error the embedded store gives for op against the key's
// state cur (nil if missing), or nil if op's condition holds.
func opFailure(op store.Op, cur *store.KV) error {
	exists := cur != nil
	if op.Delete && !exists {
		return fmt.Errorf("key %q: %w", op.Key, store.ErrNotFound)
	}
	switch {
	case op.Expect == store.AnyRevision:
	case op.Expect == 0 && exists:
		return fmt.Errorf("key %q: expected no key, have revision %d: %w", op.Key, cur.ModRevision, store.ErrConflict)
	case op.Expect > 0 && !exists:
		return fmt.Errorf("key %q: expected revision %d, key does not exist: %w", op.Key, op.Expect, store.ErrConflict)
	case op.Expect > 0 && cur.ModRevision != op.Expect:
		return fmt.Errorf("key %q: expected revision %d, have %d: %w", op.Key, op.Expect, cur.ModRevision, store.ErrConflict)
	}
	return nil
}
