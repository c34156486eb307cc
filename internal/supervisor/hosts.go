package supervisor

import (
	"context"
	"errors"
	"fmt"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// ErrOtherHost: the machine runs on another host, whose daemon is its
// authority (the API forwards such operations to it).
var ErrOtherHost = types.NewError(types.ErrConflict, "machine of another host")

// HostID is the host this supervisor runs machines for.
func (s *Supervisor) HostID() string { return s.opt.HostID }

// Mine reports whether this supervisor is the authority for r: r's host is
// this one, or r was written before machines had hosts (claimed at
// Recover) and this supervisor has no host id either.
func (s *Supervisor) Mine(r *Record) bool {
	return r.HostID == s.opt.HostID || (r.HostID == "" && s.opt.HostID == "")
}

// getOwn is Get for an operation that drives the machine: only the
// machine's host may.
func (s *Supervisor) getOwn(ctx context.Context, app, id string) (*Record, error) {
	r, err := s.Get(ctx, app, id)
	if err != nil {
		return nil, err
	}
	if !s.Mine(r) {
		return nil, fmt.Errorf("machine %s runs on host %s, not on this one (%s): ask that host's API, or any host's, which forwards it: %w",
			id, r.HostID, s.opt.HostID, ErrOtherHost)
	}
	return r, nil
}

// ListLocal returns the machines of an app (all apps when app is "") that
// this host runs.
func (s *Supervisor) ListLocal(ctx context.Context, app string) ([]*Record, error) {
	all, err := s.List(ctx, app)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, r := range all {
		if s.Mine(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

var errNotClaimed = errors.New("not claimed")

// claimUnhosted gives this host the machines recorded before machines had
// hosts (a single host's state, now under a host id). The write is
// conditional, so when several daemons share the state each such machine
// goes to exactly one of them.
func (s *Supervisor) claimUnhosted(ctx context.Context, recs []*Record) {
	if s.opt.HostID == "" {
		return
	}
	for _, r := range recs {
		if r.HostID != "" {
			continue
		}
		var other string
		_, _, err := store.UpdateJSON(ctx, s.opt.Store, machineKey(r.App, r.ID), func(cur *Record) (*Record, error) {
			if cur == nil {
				return nil, errNotClaimed // destroyed meanwhile
			}
			if cur.HostID != "" {
				other = cur.HostID
				return nil, errNotClaimed // another host was first
			}
			cur.HostID = s.opt.HostID
			return cur, nil
		})
		switch {
		case err == nil:
			r.HostID = s.opt.HostID
		case errors.Is(err, errNotClaimed):
			r.HostID = other
		default:
			s.log.Warn("give a machine of before host ids to this host", "machine", r.ID, "err", err)
		}
	}
}
