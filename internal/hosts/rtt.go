package hosts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// The round-trip times between hosts, as each host measures them over the
// mesh (rttprobe.go) and publishes them: rttPrefix<from>/<to> holds the
// smoothed RTT from one host to another and when it was written. A record
// older than RTTStale is no measurement (its writer stopped measuring: the
// host died, or the other one went away), so nothing needs to expire it.
const (
	rttPrefix = "hosts-rtt/"
	// RTTStale is the age after which a published RTT is unknown.
	RTTStale = 30 * time.Second
)

// rttRecord is the value of rttPrefix<from>/<to>.
type rttRecord struct {
	// Micros is the smoothed round trip in microseconds.
	Micros int64     `json:"rtt_us"`
	At     time.Time `json:"at"`
}

func rttKey(from, to string) string { return rttPrefix + from + "/" + to }

// PublishRTT records the RTT measured from one host to another.
func PublishRTT(ctx context.Context, st store.Store, from, to string, rtt time.Duration, at time.Time) error {
	if _, err := store.PutJSON(ctx, st, rttKey(from, to), rttRecord{Micros: rtt.Microseconds(), At: at.UTC()}, store.AnyRevision); err != nil {
		return fmt.Errorf("publish the RTT from host %s to %s: %w", from, to, err)
	}
	return nil
}

// DeleteRTT removes the RTT from one host to another (no longer measured).
func DeleteRTT(ctx context.Context, st store.Store, from, to string) error {
	if _, err := st.Delete(ctx, rttKey(from, to), store.AnyRevision); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete the RTT from host %s to %s: %w", from, to, err)
	}
	return nil
}

// RTTs is what a host knows of the others for routing to the nearest:
// their regions and states (hosts/, hosts-alive/) and the RTTs they
// measured (hosts-rtt/), followed from the store by Run (or read once by
// Refresh). Its methods are safe for concurrent use; the zero value knows
// nothing. Reads never touch the store.
type RTTs struct {
	Store store.Store
	Log   *slog.Logger
	// Now is the clock that ages the records (time.Now if nil).
	Now func() time.Time

	mu    sync.RWMutex // guards hosts and rtt
	hosts map[string]types.Host
	rtt   map[[2]string]rttRecord
}

func (r *RTTs) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Refresh reads the hosts and the RTTs from the store once.
func (r *RTTs) Refresh(ctx context.Context) error {
	hosts, err := (&Registry{Store: r.Store}).States(ctx)
	if err != nil {
		return err
	}
	kvs, err := r.Store.List(ctx, rttPrefix)
	if err != nil {
		return fmt.Errorf("list the RTTs between hosts: %w", err)
	}
	rtt := make(map[[2]string]rttRecord, len(kvs))
	for _, kv := range kvs {
		from, to, ok := strings.Cut(strings.TrimPrefix(kv.Key, rttPrefix), "/")
		var rec rttRecord
		if !ok || from == "" || to == "" || strings.Contains(to, "/") || json.Unmarshal(kv.Value, &rec) != nil || rec.Micros < 0 {
			continue // not a record of ours: no measurement
		}
		rtt[[2]string{from, to}] = rec
	}
	r.mu.Lock()
	r.hosts, r.rtt = hosts, rtt
	r.mu.Unlock()
	return nil
}

// Run follows the store until ctx ends: a Refresh at every change of a
// host, its alive mark or an RTT (one watch on the three prefixes), and
// every resync as a safety net (records age without changing).
func (r *RTTs) Run(ctx context.Context, resync time.Duration) {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	if resync <= 0 {
		resync = 5 * time.Second
	}
	tick := time.NewTicker(resync)
	defer tick.Stop()
	for ctx.Err() == nil {
		rev, err := r.Store.Revision(ctx)
		if err == nil {
			err = r.Refresh(ctx)
		}
		var ch <-chan store.Event
		wctx, cancel := context.WithCancel(ctx)
		if err == nil {
			// "hosts" covers hosts/, hosts-alive/ and hosts-rtt/.
			ch, err = r.Store.Watch(wctx, "hosts", rev)
		}
		if err != nil {
			cancel()
			if ctx.Err() == nil {
				log.Warn("hosts: following the hosts and their RTTs; retrying", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
			continue
		}
	watch:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return
			case _, ok := <-ch:
				if !ok {
					break watch
				}
				// Coalesce a burst of events into one read.
				for drained := false; !drained; {
					select {
					case _, ok = <-ch:
						if !ok {
							break watch
						}
					default:
						drained = true
					}
				}
			case <-tick.C:
			}
			if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
				log.Warn("hosts: read the hosts and their RTTs", "err", err)
			}
		}
		cancel()
	}
}

// Between returns the RTT measured between two hosts (by their ids): the
// one fromHost measured, else the one toHost measured the other way; 0 for
// a host and itself. ok is false when neither is known (not measured, or
// older than RTTStale).
func (r *RTTs) Between(fromHost, toHost string) (time.Duration, bool) {
	if fromHost == toHost && fromHost != "" {
		return 0, true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.betweenLocked(fromHost, toHost)
}

func (r *RTTs) betweenLocked(fromHost, toHost string) (time.Duration, bool) {
	now := r.now()
	for _, k := range [][2]string{{fromHost, toHost}, {toHost, fromHost}} {
		if rec, ok := r.rtt[k]; ok && now.Sub(rec.At) < RTTStale {
			return time.Duration(rec.Micros) * time.Microsecond, true
		}
	}
	return 0, false
}

// NearestRegions returns the regions that have a ready host, ordered by
// the smallest RTT measured from fromHost to any ready host of the region;
// fromHost's own region first (whatever its hosts' state), regions with no
// measurement last, by name.
func (r *RTTs) NearestRegions(fromHost string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	own := r.hosts[fromHost].Region
	best := map[string]time.Duration{}
	for id, h := range r.hosts {
		if h.State != types.HostReady || h.Region == "" || h.Region == own {
			continue
		}
		d, ok := r.betweenLocked(fromHost, id)
		if !ok {
			d = math.MaxInt64
		}
		if cur, seen := best[h.Region]; !seen || d < cur {
			best[h.Region] = d
		}
	}
	out := make([]string, 0, len(best)+1)
	for region := range best {
		out = append(out, region)
	}
	sort.Slice(out, func(i, j int) bool {
		if best[out[i]] != best[out[j]] {
			return best[out[i]] < best[out[j]]
		}
		return out[i] < out[j]
	})
	if own != "" {
		out = append([]string{own}, out...)
	}
	return out
}

// Reachable reports whether a host's daemon keeps its alive mark (ready
// or draining). A host the store has no record of is unknown: reachable
// (a machine recorded before hosts existed has no host).
func (r *RTTs) Reachable(host string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.hosts[host]
	return !ok || h.State != types.HostUnreachable
}

// Host returns a host's record as last read (State set), and whether
// there is one.
func (r *RTTs) Host(id string) (types.Host, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.hosts[id]
	return h, ok
}
