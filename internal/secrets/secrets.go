// Package secrets owns app secrets: values encrypted at rest with
// AES-256-GCM under a key kept in the data dir (never in the state store),
// versioned so that a release can record and a rollback restore the
// secrets it ran with, and decrypted only when a machine boots (the
// SpecHook injects them as env and [[files]]).
//
// State layout:
//
//	secrets/<app>/meta           {latest, deployed}
//	secrets/<app>/v/<version>    every secret of that version, sealed
//
// Every change writes a whole new version (copy on write); the newest
// KeepVersions versions are kept.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/dotenv"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// Error categories (the API maps them to status codes).
var (
	ErrNotFound = types.NewError(types.ErrNotFound, "secret not found")
	ErrInvalid  = types.NewError(types.ErrInvalid, "invalid secret")
	ErrKey      = errors.New("secrets key")
)

// KeepVersions is how many versions of an app's secrets are kept for
// rollback.
const KeepVersions = 50

// MaxValueBytes bounds one secret value.
const MaxValueBytes = dotenv.MaxValueBytes

// MetaVersion is the machine config metadata key that pins a machine to a
// secrets version (set by deploys and rollbacks); without it a machine
// boots with the latest version.
const MetaVersion = "hangar_secrets_version"

// Secret statuses in listings, as flyctl shows them.
const (
	StatusDeployed = "Deployed"
	StatusStaged   = "Staged"
)

// Secret is one secret as listed: never its value (the wire type).
type Secret = types.Secret

type entry struct {
	Sealed    sealed `json:"sealed"`
	Digest    string `json:"digest"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	SetIn     int    `json:"set_in"`
}

type versionRecord struct {
	Version   int               `json:"version"`
	CreatedAt string            `json:"created_at"`
	Entries   map[string]*entry `json:"entries"`
}

type meta struct {
	Latest   int `json:"latest"`
	Deployed int `json:"deployed"`
}

// Store keeps app secrets in the state store, sealed with the data dir's
// key. It is safe for concurrent use.
type Store struct {
	st   store.Store
	keys *keyring
	log  *slog.Logger
	now  func() time.Time
}

// Open returns the secrets of a state store, with the key of dataDir
// (created, 0600, on first use).
func Open(st store.Store, dataDir string, log *slog.Logger) (*Store, error) {
	kr, err := loadKeyring(dataDir)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Store{st: st, keys: kr, log: log.With("component", "secrets"), now: time.Now}, nil
}

func metaKey(app string) string           { return "secrets/" + app + "/meta" }
func versionKey(app string, v int) string { return fmt.Sprintf("secrets/%s/v/%08d", app, v) }
func aad(app, name string) string         { return "hangar/" + app + "/" + name }

func (s *Store) getMeta(ctx context.Context, app string) (meta, int64, error) {
	var m meta
	rev, err := store.GetJSON(ctx, s.st, metaKey(app), &m)
	if errors.Is(err, store.ErrNotFound) {
		return meta{}, 0, nil
	}
	if err != nil {
		return meta{}, 0, fmt.Errorf("secrets of %s: %w", app, err)
	}
	return m, rev, nil
}

func (s *Store) getVersion(ctx context.Context, app string, v int) (*versionRecord, error) {
	if v == 0 {
		return &versionRecord{Entries: map[string]*entry{}}, nil
	}
	var rec versionRecord
	if _, err := store.GetJSON(ctx, s.st, versionKey(app, v), &rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("secrets version %d of app %s is gone (only the newest %d are kept): %w", v, app, KeepVersions, ErrNotFound)
		}
		return nil, fmt.Errorf("secrets version %d of app %s: %w", v, app, err)
	}
	if rec.Entries == nil {
		rec.Entries = map[string]*entry{}
	}
	return &rec, nil
}

// Version returns the latest secrets version of an app (0: no secrets yet).
func (s *Store) Version(ctx context.Context, app string) (int, error) {
	m, _, err := s.getMeta(ctx, app)
	return m.Latest, err
}

// DeployedVersion returns the version the app's machines were last rolled
// out with (0: never).
func (s *Store) DeployedVersion(ctx context.Context, app string) (int, error) {
	m, _, err := s.getMeta(ctx, app)
	return m.Deployed, err
}

// MarkDeployed records that the app's machines now run version v.
func (s *Store) MarkDeployed(ctx context.Context, app string, v int) error {
	_, _, err := store.UpdateJSON(ctx, s.st, metaKey(app), func(cur *meta) (*meta, error) {
		if cur == nil {
			cur = &meta{}
		}
		if v > cur.Latest {
			return nil, fmt.Errorf("secrets version %d of app %s does not exist (latest is %d): %w", v, app, cur.Latest, ErrNotFound)
		}
		cur.Deployed = v
		return cur, nil
	})
	if err != nil {
		return fmt.Errorf("mark secrets of %s deployed: %w", app, err)
	}
	return nil
}

// Update sets (non-nil value) and unsets (nil) secrets of an app in one new
// version, which it returns. Unsetting a secret that does not exist is an
// error; an update that changes nothing creates no version.
func (s *Store) Update(ctx context.Context, app string, values map[string]*string) (int, error) {
	if len(values) == 0 {
		return 0, fmt.Errorf("no secrets given: %w", ErrInvalid)
	}
	for name, v := range values {
		if err := dotenv.ValidName(name); err != nil {
			return 0, fmt.Errorf("secret %w: %w", err, ErrInvalid)
		}
		if v != nil && len(*v) > MaxValueBytes {
			return 0, fmt.Errorf("secret %s: value over %d bytes: %w", name, MaxValueBytes, ErrInvalid)
		}
	}
	for attempt := 0; attempt < 50; attempt++ {
		m, mrev, err := s.getMeta(ctx, app)
		if err != nil {
			return 0, err
		}
		prev, err := s.getVersion(ctx, app, m.Latest)
		if err != nil {
			return 0, err
		}
		next := m.Latest + 1
		ts := s.now().UTC().Format(time.RFC3339)
		rec := &versionRecord{Version: next, CreatedAt: ts, Entries: map[string]*entry{}}
		for k, e := range prev.Entries {
			c := *e
			rec.Entries[k] = &c
		}
		changed := false
		for name, v := range values {
			old := rec.Entries[name]
			if v == nil {
				if old == nil {
					return 0, fmt.Errorf("secret %s of app %s: %w", name, app, ErrNotFound)
				}
				delete(rec.Entries, name)
				changed = true
				continue
			}
			dg := s.keys.current.digest([]byte(*v))
			if old != nil && old.Digest == dg && old.Sealed.KeyID == s.keys.current.id {
				continue // same value: nothing to roll out
			}
			sl, err := s.keys.current.seal([]byte(*v), aad(app, name))
			if err != nil {
				return 0, err
			}
			e := &entry{Sealed: sl, Digest: dg, CreatedAt: ts, UpdatedAt: ts, SetIn: next}
			if old != nil {
				e.CreatedAt = old.CreatedAt
			}
			rec.Entries[name] = e
			changed = true
		}
		if !changed {
			return m.Latest, nil
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return 0, err
		}
		m.Latest = next
		mb, _ := json.Marshal(m)
		ops := []store.Op{{Key: versionKey(app, next), Value: b, Expect: 0}, {Key: metaKey(app), Value: mb, Expect: mrev}}
		if old := next - KeepVersions; old > 0 {
			if _, err := s.st.Get(ctx, versionKey(app, old)); err == nil {
				ops = append(ops, store.Op{Key: versionKey(app, old), Delete: true, Expect: store.AnyRevision})
			}
		}
		if _, err := s.st.Txn(ctx, ops); err != nil {
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			return 0, fmt.Errorf("save secrets of %s: %w", app, err)
		}
		names := make([]string, 0, len(values))
		for n := range values {
			names = append(names, n)
		}
		sort.Strings(names)
		s.log.Info("secrets updated", "app", app, "version", next, "names", strings.Join(names, ","))
		return next, nil
	}
	return 0, fmt.Errorf("save secrets of %s: too much contention: %w", app, store.ErrConflict)
}

// List returns an app's latest secrets (names, digests, times, status),
// with the status against the version last marked deployed.
func (s *Store) List(ctx context.Context, app string) ([]Secret, error) {
	return s.ListAt(ctx, app, -1)
}

// ListAt is List with the status against deployed, the secrets version the
// app's machines run (from its current release); -1 = the version last
// marked deployed.
func (s *Store) ListAt(ctx context.Context, app string, deployed int) ([]Secret, error) {
	m, _, err := s.getMeta(ctx, app)
	if err != nil {
		return nil, err
	}
	if deployed >= 0 {
		m.Deployed = deployed
	}
	rec, err := s.getVersion(ctx, app, m.Latest)
	if err != nil {
		return nil, err
	}
	out := make([]Secret, 0, len(rec.Entries))
	for name, e := range rec.Entries {
		st := StatusStaged
		if m.Deployed >= e.SetIn {
			st = StatusDeployed
		}
		out = append(out, Secret{Name: name, Digest: e.Digest, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, Status: st, Version: e.SetIn})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Values decrypts an app's secrets at version v (0 = latest). Call it only
// to boot a machine.
func (s *Store) Values(ctx context.Context, app string, v int) (map[string]string, error) {
	if v == 0 {
		m, _, err := s.getMeta(ctx, app)
		if err != nil {
			return nil, err
		}
		v = m.Latest
	}
	rec, err := s.getVersion(ctx, app, v)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rec.Entries))
	for name, e := range rec.Entries {
		plain, err := s.keys.open(e.Sealed, aad(app, name))
		if err != nil {
			return nil, fmt.Errorf("secret %s of app %s (version %d): %w", name, app, v, err)
		}
		out[name] = string(plain)
	}
	return out, nil
}

// Apps lists the apps that have secrets (for sweeping those of deleted
// apps).
func (s *Store) Apps(ctx context.Context) ([]string, error) {
	kvs, err := s.st.List(ctx, "secrets/")
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	var out []string
	for _, kv := range kvs {
		if app, ok := strings.CutSuffix(strings.TrimPrefix(kv.Key, "secrets/"), "/meta"); ok && !strings.Contains(app, "/") {
			out = append(out, app)
		}
	}
	return out, nil
}

// DeleteApp removes every secret and version of an app.
func (s *Store) DeleteApp(ctx context.Context, app string) error {
	kvs, err := s.st.List(ctx, "secrets/"+app+"/")
	if err != nil {
		return fmt.Errorf("delete secrets of %s: %w", app, err)
	}
	ops := make([]store.Op, 0, len(kvs))
	for _, kv := range kvs {
		ops = append(ops, store.Op{Key: kv.Key, Delete: true, Expect: store.AnyRevision})
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := s.st.Txn(ctx, ops); err != nil {
		return fmt.Errorf("delete secrets of %s: %w", app, err)
	}
	return nil
}

// VersionFromMetadata reads the pinned secrets version of a machine config's
// metadata (0 = none, boot with the latest).
func VersionFromMetadata(md map[string]string) (int, error) {
	v, ok := md[MetaVersion]
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("metadata %s=%q: want a version number: %w", MetaVersion, v, ErrInvalid)
	}
	return n, nil
}
