package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/network"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// An app's IP addresses. Only Flycast addresses (type private_v6) are
// allocated: public traffic reaches every app on the proxy's listen
// addresses without one.
//
// Store keys: FlycastKeyPrefix+<app> holds the app's address
// (flycastRecord, JSON); ipam-flycast/<n> reserves address number n (its
// value is the app).
const (
	FlycastKeyPrefix = "flycast/"
	flycastIPAMKey   = "ipam-flycast/"
)

type flycastRecord struct {
	types.IPAddress
	N int `json:"n"` // the address's number in the Flycast range
}

func flycastIPAMKeyFor(n int) string { return fmt.Sprintf("%s%08d", flycastIPAMKey, n) }

// CheckOrg refuses an org slug other than this daemon's ("" and
// "personal" mean this daemon's).
func (s *Service) CheckOrg(slug string) error {
	if slug != "" && slug != s.org && slug != "personal" {
		return fmt.Errorf("org_slug %q: this daemon serves org %q: %w", slug, s.org, ErrInvalid)
	}
	return nil
}

// IPs returns app's IP addresses (its Flycast address, if it has one).
func (s *Service) IPs(ctx context.Context, app string) ([]types.IPAddress, error) {
	if _, err := s.Get(ctx, app); err != nil {
		return nil, err
	}
	out := []types.IPAddress{}
	if rec, err := GetFlycast(ctx, s.st, app); err == nil {
		out = append(out, rec)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return out, nil
}

// AllocateIP gives app the address req asks for, or returns the one it
// has (created false). Only private_v6 (Flycast) is allocated.
func (s *Service) AllocateIP(ctx context.Context, app string, req types.AllocateIPRequest) (ip types.IPAddress, created bool, err error) {
	rec, err := s.Get(ctx, app)
	if err != nil {
		return types.IPAddress{}, false, err
	}
	switch req.Type {
	case types.IPTypePrivateV6:
	case "v4", "v6", "shared_v4":
		return types.IPAddress{}, false, fmt.Errorf("type %q: Hangar serves public traffic for every app on the proxy's listen addresses, so there is no public address to allocate; for a private load-balanced address use type private_v6 (`hangar ips allocate-v6 --private`): %w", req.Type, ErrInvalid)
	default:
		return types.IPAddress{}, false, fmt.Errorf("type %q: want private_v6: %w", req.Type, ErrInvalid)
	}
	if req.Network != "" && req.Network != rec.Network {
		return types.IPAddress{}, false, fmt.Errorf("network %q: app %s is on network %q; every machine of this daemon shares one private network, so leave the network out: %w", req.Network, app, rec.Network, ErrInvalid)
	}
	if err := s.CheckOrg(req.OrgSlug); err != nil {
		return types.IPAddress{}, false, err
	}
	if !s.flycast.IsValid() {
		return types.IPAddress{}, false, fmt.Errorf("Flycast addresses are not available on this daemon (its --subnet6 is too small, or it is older): %w", ErrNotFound)
	}
	return AllocateFlycast(ctx, s.st, s.flycast, app, rec.Network)
}

// IPAssignments returns app's addresses in the shape of Fly's
// ip_assignments endpoint.
func (s *Service) IPAssignments(ctx context.Context, app string) (types.IPAssignmentsList, error) {
	ips, err := s.IPs(ctx, app)
	if err != nil {
		return types.IPAssignmentsList{}, err
	}
	out := types.IPAssignmentsList{IPs: []types.IPAssignment{}}
	for _, ip := range ips {
		out.IPs = append(out.IPs, ip.Assignment())
	}
	return out, nil
}

// AssignIP is AllocateIP for Fly's ip_assignments request. Addresses are
// not regional on Hangar: the region may be empty, "global" or
// localRegion (the daemon's). A service_name is refused: Hangar has no
// named IP services.
func (s *Service) AssignIP(ctx context.Context, app, localRegion string, req types.AssignIPRequest) (ip types.IPAssignment, created bool, err error) {
	if req.ServiceName != "" {
		return types.IPAssignment{}, false, fmt.Errorf("service_name %q: Hangar has no named IP services; leave it out: %w", req.ServiceName, ErrInvalid)
	}
	if req.Region != "" && req.Region != "global" && req.Region != localRegion {
		return types.IPAssignment{}, false, fmt.Errorf("region %q: this daemon serves region %q and its addresses are not regional; leave the region out: %w", req.Region, localRegion, ErrInvalid)
	}
	addr, created, err := s.AllocateIP(ctx, app, types.AllocateIPRequest{Type: req.Type, Network: req.Network, OrgSlug: req.OrgSlug})
	if err != nil {
		return types.IPAssignment{}, false, err
	}
	return addr.Assignment(), created, nil
}

// ReleaseIP releases app's address addr.
func (s *Service) ReleaseIP(ctx context.Context, app string, addr netip.Addr) error {
	if _, err := s.Get(ctx, app); err != nil {
		return err
	}
	cur, err := GetFlycast(ctx, s.st, app)
	if err != nil || cur.Address != addr.String() {
		return fmt.Errorf("app %s has no IP address %s; list them with `hangar ips list -a %s`: %w", app, addr, app, types.ErrNotFound)
	}
	return ReleaseFlycast(ctx, s.st, app)
}

// GetFlycast returns an app's Flycast address (an error wrapping
// store.ErrNotFound if it has none).
func GetFlycast(ctx context.Context, st store.Store, app string) (types.IPAddress, error) {
	var rec flycastRecord
	if _, err := store.GetJSON(ctx, st, FlycastKeyPrefix+app, &rec); err != nil {
		return types.IPAddress{}, err
	}
	return rec.IPAddress, nil
}

// ListFlycast returns every app's Flycast address.
func ListFlycast(ctx context.Context, st store.Store) ([]types.IPAddress, error) {
	kvs, err := st.List(ctx, FlycastKeyPrefix)
	if err != nil {
		return nil, fmt.Errorf("list Flycast addresses: %w", err)
	}
	out := make([]types.IPAddress, 0, len(kvs))
	for _, kv := range kvs {
		var rec flycastRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("Flycast record %s: %w", kv.Key, err)
		}
		out = append(out, rec.IPAddress)
	}
	return out, nil
}

// AllocateFlycast gives app the lowest free address of rng, or returns the
// one it has (created false). Concurrent allocations never share an
// address: the address number is reserved in the same transaction.
func AllocateFlycast(ctx context.Context, st store.Store, rng netip.Prefix, app, net string) (types.IPAddress, bool, error) {
	for range 20 {
		if cur, err := GetFlycast(ctx, st, app); err == nil {
			return cur, false, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return types.IPAddress{}, false, err
		}
		kvs, err := st.List(ctx, flycastIPAMKey)
		if err != nil {
			return types.IPAddress{}, false, fmt.Errorf("Flycast addresses in use: %w", err)
		}
		n := 1
		for _, kv := range kvs { // sorted by number: take the first gap
			if kv.Key != flycastIPAMKeyFor(n) {
				break
			}
			n++
		}
		addr, err := network.FlycastAddr(rng, n)
		if err != nil {
			return types.IPAddress{}, false, fmt.Errorf("app %s: %w", app, err)
		}
		rec := flycastRecord{N: n, IPAddress: types.IPAddress{
			ID: fmt.Sprintf("ip_%08d", n), Address: addr.String(), Type: types.IPTypePrivateV6, Region: "global",
			Network: net, App: app, CreatedAt: time.Now().UTC().Format(time.RFC3339),
		}}
		b, err := json.Marshal(rec)
		if err != nil {
			return types.IPAddress{}, false, err
		}
		_, err = st.Txn(ctx, []store.Op{
			{Key: FlycastKeyPrefix + app, Value: b, Expect: 0},
			{Key: flycastIPAMKeyFor(n), Value: []byte(app), Expect: 0},
		})
		if err == nil {
			return rec.IPAddress, true, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return types.IPAddress{}, false, fmt.Errorf("allocate a Flycast address for %s: %w", app, err)
		}
		// Another allocation took the number (or this app): look again.
	}
	return types.IPAddress{}, false, fmt.Errorf("allocate a Flycast address for %s: too many concurrent allocations; try again: %w", app, types.ErrConflict)
}

// ReleaseFlycast removes app's Flycast address and frees its number;
// releasing an app without one is a no-op.
func ReleaseFlycast(ctx context.Context, st store.Store, app string) error {
	var rec flycastRecord
	rev, err := store.GetJSON(ctx, st, FlycastKeyPrefix+app, &rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ops := []store.Op{{Key: FlycastKeyPrefix + app, Delete: true, Expect: rev}}
	if kv, err := st.Get(ctx, flycastIPAMKeyFor(rec.N)); err == nil && string(kv.Value) == app {
		ops = append(ops, store.Op{Key: kv.Key, Delete: true, Expect: kv.ModRevision})
	}
	if _, err := st.Txn(ctx, ops); err != nil {
		return fmt.Errorf("release the Flycast address of %s: %w", app, err)
	}
	return nil
}

// FlycastAppOf is the app of a FlycastKeyPrefix key ("" for other keys).
func FlycastAppOf(key string) string {
	app, ok := strings.CutPrefix(key, FlycastKeyPrefix)
	if !ok || app == "" || strings.Contains(app, "/") {
		return ""
	}
	return app
}
