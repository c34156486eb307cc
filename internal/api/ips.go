package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/network"
	"github.com/hangar-dev/hangar/internal/store"
)

// IP address endpoints (flyctl's `ips` commands; Fly serves them over
// GraphQL, Hangar over REST). Only Flycast addresses (type private_v6) are
// allocated: public traffic reaches every app on the proxy's listen
// addresses without one.
//
//	GET    /v1/apps/{app}/ips          [IPAddress]
//	POST   /v1/apps/{app}/ips          AllocateIPRequest → IPAddress (201; 200 with the app's existing one)
//	DELETE /v1/apps/{app}/ips/{ip}     204
func init() {
	registerRoutes(func(s *Server, h HandleFunc) {
		h("GET /v1/apps/{app}/ips", s.listIPs)
		h("POST /v1/apps/{app}/ips", s.allocateIP)
		h("DELETE /v1/apps/{app}/ips/{ip}", s.releaseIP)
	})
	for k, v := range map[string]OpDoc{
		"GET /v1/apps/{app}/ips":         {ID: "IPs_list", Summary: "An app's IP addresses (its Flycast address, if it has one)", Hangar: true, Resp: []IPAddress{}, Errors: []int{404}},
		"POST /v1/apps/{app}/ips":        {ID: "IPs_allocate", Summary: "Allocate the app's Flycast address (type private_v6); an app has at most one, which a second call returns with 200", Hangar: true, Body: AllocateIPRequest{}, Status: http.StatusCreated, Resp: IPAddress{}, Errors: []int{400, 404}},
		"DELETE /v1/apps/{app}/ips/{ip}": {ID: "IPs_release", Summary: "Release one of the app's IP addresses", Hangar: true, Status: http.StatusNoContent, Errors: []int{404}},
	} {
		opDocs[k] = v
	}
}

// IP address types (Fly's names).
const (
	IPTypePrivateV6 = "private_v6"
)

// IPAddress is an app's IP address, with the fields of Fly's IPAddress.
type IPAddress struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	Type      string `json:"type"`
	Region    string `json:"region"`
	Network   string `json:"network"`
	App       string `json:"app"`
	CreatedAt string `json:"created_at"`
}

// AllocateIPRequest asks for an address (`hangar ips allocate-v6 --private`).
type AllocateIPRequest struct {
	// Type is "private_v6" (a Flycast address).
	Type string `json:"type"`
	// Network and OrgSlug may name only the app's own network and this
	// daemon's org: every machine of a daemon shares one 6PN.
	Network string `json:"network,omitempty"`
	OrgSlug string `json:"org_slug,omitempty"`
}

// Store keys of Flycast addresses: FlycastKeyPrefix+<app> holds the
// app's address (flycastRecord, JSON); ipam-flycast/<n> reserves address
// number n (its value is the app).
const (
	FlycastKeyPrefix = "flycast/"
	flycastIPAMKey   = "ipam-flycast/"
)

type flycastRecord struct {
	IPAddress
	N int `json:"n"` // the address's number in the Flycast range
}

func flycastIPAMKeyFor(n int) string { return fmt.Sprintf("%s%08d", flycastIPAMKey, n) }

// flycastRanges holds each server's Flycast range (SetFlycastRange).
var flycastRanges sync.Map // *Server → netip.Prefix

// SetFlycastRange gives the API the range Flycast addresses come from
// (network.Manager.FlycastRange).
func (s *Server) SetFlycastRange(p netip.Prefix) { flycastRanges.Store(s, p) }

func (s *Server) flycastRange() (netip.Prefix, error) {
	if v, ok := flycastRanges.Load(s); ok {
		return v.(netip.Prefix), nil
	}
	return netip.Prefix{}, fmt.Errorf("Flycast addresses are not available on this daemon (its --subnet6 is too small, or it is older): %w", errNotFound)
}

func (s *Server) listIPs(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	out := []IPAddress{}
	if rec, err := GetFlycast(r.Context(), s.Store, app); err == nil {
		out = append(out, rec)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) allocateIP(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	var req AllocateIPRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	switch req.Type {
	case IPTypePrivateV6:
	case "v4", "v6", "shared_v4":
		return badRequest("type %q: Hangar serves public traffic for every app on the proxy's listen addresses, so there is no public address to allocate; for a private load-balanced address use type private_v6 (`hangar ips allocate-v6 --private`)", req.Type)
	default:
		return badRequest("type %q: want private_v6", req.Type)
	}
	rec, err := s.getAppRecord(r.Context(), app)
	if err != nil {
		return err
	}
	if req.Network != "" && req.Network != rec.Network {
		return badRequest("network %q: app %s is on network %q; every machine of this daemon shares one private network, so leave the network out", req.Network, app, rec.Network)
	}
	if req.OrgSlug != "" && req.OrgSlug != s.Org && req.OrgSlug != "personal" {
		return badRequest("org_slug %q: this daemon serves org %q", req.OrgSlug, s.Org)
	}
	rng, err := s.flycastRange()
	if err != nil {
		return err
	}
	ip, created, err := AllocateFlycast(r.Context(), s.Store, rng, app, rec.Network)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, ip)
	return nil
}

func (s *Server) releaseIP(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	addr, err := netip.ParseAddr(r.PathValue("ip"))
	if err != nil {
		return badRequest("%q is not an IP address", r.PathValue("ip"))
	}
	cur, err := GetFlycast(r.Context(), s.Store, app)
	if err != nil || cur.Address != addr.String() {
		return fmt.Errorf("app %s has no IP address %s; list them with `hangar ips list -a %s`: %w", app, addr, app, errNotFound)
	}
	if err := ReleaseFlycast(r.Context(), s.Store, app); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// GetFlycast returns an app's Flycast address (an error wrapping
// store.ErrNotFound if it has none).
func GetFlycast(ctx context.Context, st store.Store, app string) (IPAddress, error) {
	var rec flycastRecord
	if _, err := store.GetJSON(ctx, st, FlycastKeyPrefix+app, &rec); err != nil {
		return IPAddress{}, err
	}
	return rec.IPAddress, nil
}

// ListFlycast returns every app's Flycast address.
func ListFlycast(ctx context.Context, st store.Store) ([]IPAddress, error) {
	kvs, err := st.List(ctx, FlycastKeyPrefix)
	if err != nil {
		return nil, fmt.Errorf("list Flycast addresses: %w", err)
	}
	out := make([]IPAddress, 0, len(kvs))
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
func AllocateFlycast(ctx context.Context, st store.Store, rng netip.Prefix, app, net string) (IPAddress, bool, error) {
	for range 20 {
		if cur, err := GetFlycast(ctx, st, app); err == nil {
			return cur, false, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return IPAddress{}, false, err
		}
		kvs, err := st.List(ctx, flycastIPAMKey)
		if err != nil {
			return IPAddress{}, false, fmt.Errorf("Flycast addresses in use: %w", err)
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
			return IPAddress{}, false, fmt.Errorf("app %s: %w", app, err)
		}
		rec := flycastRecord{N: n, IPAddress: IPAddress{
			ID: fmt.Sprintf("ip_%08d", n), Address: addr.String(), Type: IPTypePrivateV6, Region: "global",
			Network: net, App: app, CreatedAt: time.Now().UTC().Format(time.RFC3339),
		}}
		b, err := json.Marshal(rec)
		if err != nil {
			return IPAddress{}, false, err
		}
		_, err = st.Txn(ctx, []store.Op{
			{Key: FlycastKeyPrefix + app, Value: b, Expect: 0},
			{Key: flycastIPAMKeyFor(n), Value: []byte(app), Expect: 0},
		})
		if err == nil {
			return rec.IPAddress, true, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return IPAddress{}, false, fmt.Errorf("allocate a Flycast address for %s: %w", app, err)
		}
		// Another allocation took the number (or this app): look again.
	}
	return IPAddress{}, false, fmt.Errorf("allocate a Flycast address for %s: too many concurrent allocations; try again: %w", app, errConflict)
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
