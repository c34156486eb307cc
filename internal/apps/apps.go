// Package apps owns app records (an app's name, org and network, under the
// store key Key(name)), the apps' IP addresses (Flycast), and the one
// watch of deleted apps that every cleaner subscribes to (Deletions).
//
// It knows nothing of machines, releases or HTTP: the API and the deployer
// call it, and the daemon wires the cleaners to its Deletions.
package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// Prefix is the store prefix of app records: Key(name) holds the app's
// Record (JSON); deeper keys are not app records.
const Prefix = "apps/"

// Key is the store key of app name's record.
func Key(name string) string { return Prefix + name }

// NameOf is the app of an app record's key ("" for any other key,
// including deeper ones under Prefix).
func NameOf(key string) string {
	name, ok := strings.CutPrefix(key, Prefix)
	if !ok || name == "" || strings.Contains(name, "/") {
		return ""
	}
	return name
}

var (
	// ErrNotFound: no such app.
	ErrNotFound = types.NewError(types.ErrNotFound, "app not found")
	// ErrExists: an app of that name exists.
	ErrExists = types.NewError(types.ErrConflict, "app already exists")
	// ErrInvalid: a name, network or org that cannot be used.
	ErrInvalid = types.NewError(types.ErrInvalid, "invalid app request")
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$|^[a-z0-9]$`)

// ValidName reports whether name can name an app (or a network): 1-63
// lowercase letters, digits and dashes, starting and ending with a letter
// or digit.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Record is an app as stored.
type Record struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	Org       string `json:"org"`
	Network   string `json:"network"`
	CreatedAt string `json:"created_at"`
}

// Options configure a Service.
type Options struct {
	Store store.Store
	// Org is the org this daemon serves; every app belongs to it.
	Org string
	// FlycastRange is where Flycast addresses come from (the zero prefix:
	// this daemon has none, and allocating one is refused).
	FlycastRange netip.Prefix
}

// Service reads and writes app records and their addresses.
type Service struct {
	st      store.Store
	org     string
	flycast netip.Prefix
}

// New returns a Service over o.Store.
func New(o Options) *Service {
	return &Service{st: o.Store, org: o.Org, flycast: o.FlycastRange}
}

// Org is the org the apps belong to.
func (s *Service) Org() string { return s.org }

// Create creates app name on network ("" = "default"); ErrExists if it
// exists.
func (s *Service) Create(ctx context.Context, name, network string) (*Record, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("app_name %q: use 1-63 lowercase letters, digits and dashes, starting and ending with a letter or digit: %w", name, ErrInvalid)
	}
	if network == "" {
		network = "default"
	}
	if !ValidName(network) {
		return nil, fmt.Errorf("network %q: use lowercase letters, digits and dashes: %w", network, ErrInvalid)
	}
	rec := &Record{Name: name, ID: name, Org: s.org, Network: network, CreatedAt: time.Now().UTC().Format(time.RFC3339)}
	if _, err := store.PutJSON(ctx, s.st, Key(name), rec, 0); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("app %s: %w", name, ErrExists)
		}
		return nil, fmt.Errorf("create app %s: %w", name, err)
	}
	return rec, nil
}

// Ensure creates app name (on the default network) unless it exists.
func (s *Service) Ensure(ctx context.Context, name string) error {
	_, err := s.Create(ctx, name, "")
	if errors.Is(err, ErrExists) {
		return nil
	}
	return err
}

// Get returns app name's record; ErrNotFound, with a hint, if there is none.
func (s *Service) Get(ctx context.Context, name string) (*Record, error) {
	var rec Record
	if _, err := store.GetJSON(ctx, s.st, Key(name), &rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("app %s not found; create it with `hangar apps create %s` or deploy: %w", name, name, ErrNotFound)
		}
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	return &rec, nil
}

// Exists reports whether app name has a record.
func (s *Service) Exists(ctx context.Context, name string) (bool, error) {
	_, err := s.st.Get(ctx, Key(name))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// List returns every app's record, by name.
func (s *Service) List(ctx context.Context) ([]Record, error) {
	kvs, err := s.st.List(ctx, Prefix)
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	out := make([]Record, 0, len(kvs))
	for _, kv := range kvs {
		if NameOf(kv.Key) == "" {
			continue
		}
		var rec Record
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("app record %s: %w", kv.Key, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// Delete removes app name's record and, in the same transaction, the keys
// given: the records other packages keep of the app (deploy's releases),
// which must exist. The app's machines must be gone first; the cleaners
// subscribed to Deletions remove the rest.
func (s *Service) Delete(ctx context.Context, name string, alsoKeys ...string) error {
	ops := []store.Op{{Key: Key(name), Delete: true, Expect: store.AnyRevision}}
	for _, k := range alsoKeys {
		ops = append(ops, store.Op{Key: k, Delete: true, Expect: store.AnyRevision})
	}
	if _, err := s.st.Txn(ctx, ops); err != nil {
		return fmt.Errorf("delete app %s: %w", name, err)
	}
	return nil
}
