package hosts

// Removal: `hangar hosts remove ID` forgets a host that is gone for good
// (a dead server, a decommissioned one). Its daemon must be stopped (the
// host reads unreachable); the machines failover replaced elsewhere lose
// their stale records, and so, with force, do the machines and volumes
// that only lived there. The host's record, its 6PN /64, its RTTs and its
// cluster membership (its etcd member, when it was one) go; a tombstone
// keeps a daemon with the removed host's old data dir from coming back
// as if nothing happened (CheckNotRemoved).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// removedPrefix holds one tombstone per removed host: removedRecord.
const removedPrefix = "hosts-removed/"

type removedRecord struct {
	RemovedAt time.Time `json:"removed_at"`
	By        string    `json:"by"`
}

// ErrHostRemoved is returned (wrapped) by CheckNotRemoved.
var ErrHostRemoved = types.NewError(types.ErrConflict, "host was removed")

// Remover removes hosts. Registry is required; the hooks are optional.
type Remover struct {
	Registry *Registry
	// ReleaseSubnet frees the host's 6PN /64 (mesh.ReleaseSubnet).
	ReleaseSubnet func(ctx context.Context, host string) error
	// RemoveMember takes the host out of the cluster's membership (its
	// etcd member, when it is one). It reports whether there was one.
	RemoveMember func(ctx context.Context, h types.Host) (bool, error)
}

func (m machineRec) name() string { return m.App + "/" + m.ID }

// Remove forgets host id. It refuses this host, a host that is not
// unreachable, and, without force, a host that still has machines
// failover has not replaced or volumes (their data is on that host and
// nowhere else). It may be run again after a failure: every step is
// idempotent, and the host's record goes last.
func (rm *Remover) Remove(ctx context.Context, id string, force bool) (types.HostRemoval, error) {
	r := rm.Registry
	out := types.HostRemoval{Host: id, Machines: []string{}, Volumes: []string{}}
	if id == r.SelfID() {
		return out, types.NewError(types.ErrInvalid, fmt.Sprintf("host %s is the one answering: ask another host to remove it (`HANGAR_API_URL=<another host API URL> hangar hosts remove %s`)", id, id))
	}
	states, err := r.States(ctx)
	if err != nil {
		return out, err
	}
	h, ok := states[id]
	if !ok {
		return out, fmt.Errorf("host %s is not registered (see `hangar hosts list`): %w", id, ErrNotFound)
	}
	if h.State != types.HostUnreachable {
		return out, types.NewError(types.ErrConflict, fmt.Sprintf("host %s is %s: only a host whose daemon is gone can be removed; move its machines away (`hangar hosts drain %s`), stop its daemon, wait until `hangar hosts list` shows it unreachable (about %s), then remove it", id, h.State, id, r.ttl()))
	}
	machines, err := rm.machinesOn(ctx, id)
	if err != nil {
		return out, err
	}
	vols, err := volumesOn(ctx, r.Store, id)
	if err != nil {
		return out, err
	}
	var kept []string // machines only this host has
	for _, m := range machines {
		if m.Machine.ReplacedBy == "" && m.State != types.StateDestroyed {
			kept = append(kept, m.name())
		}
	}
	if !force && (len(kept) > 0 || len(vols) > 0) {
		var what []string
		if len(kept) > 0 {
			what = append(what, fmt.Sprintf("machines not replaced elsewhere (%s; failover replaces those without volumes after --host-failure-grace)", strings.Join(kept, ", ")))
		}
		if len(vols) > 0 {
			names := make([]string, len(vols))
			for i, v := range vols {
				names[i] = v.app + "/" + v.ID
			}
			what = append(what, fmt.Sprintf("volumes whose data is on it (%s)", strings.Join(names, ", ")))
		}
		return out, types.NewError(types.ErrConflict, fmt.Sprintf("host %s still has %s: wait for failover, or remove it with --force, which forgets them (the data on that host is lost to Hangar)", id, strings.Join(what, " and ")))
	}
	tomb, _ := json.Marshal(removedRecord{RemovedAt: time.Now().UTC(), By: r.SelfID()})
	if _, err := r.Store.Put(ctx, removedPrefix+id, tomb, store.AnyRevision); err != nil {
		return out, fmt.Errorf("remove host %s: write its tombstone: %w", id, err)
	}
	for _, m := range machines {
		if err := forgetOnHost(ctx, r.Store, "machines/"+m.App+"/"+m.ID, id); err != nil {
			return out, fmt.Errorf("remove host %s: forget machine %s: %w", id, m.name(), err)
		}
		out.Machines = append(out.Machines, m.name())
	}
	for _, v := range vols {
		if err := forgetOnHost(ctx, r.Store, "volumes/"+v.app+"/"+v.ID, id); err != nil {
			return out, fmt.Errorf("remove host %s: forget volume %s/%s: %w", id, v.app, v.ID, err)
		}
		out.Volumes = append(out.Volumes, v.app+"/"+v.ID)
	}
	if rm.ReleaseSubnet != nil {
		if err := rm.ReleaseSubnet(ctx, id); err != nil {
			return out, fmt.Errorf("remove host %s: %w", id, err)
		}
	}
	if err := forgetRTTs(ctx, r.Store, id); err != nil {
		return out, fmt.Errorf("remove host %s: %w", id, err)
	}
	if rm.RemoveMember != nil {
		if out.ClusterMember, err = rm.RemoveMember(ctx, h); err != nil {
			return out, fmt.Errorf("remove host %s from the cluster's members: %w", id, err)
		}
	}
	if _, err := r.Store.Delete(ctx, hostsPrefix+id, store.AnyRevision); err != nil && !errors.Is(err, store.ErrNotFound) {
		return out, fmt.Errorf("remove host %s: delete its record: %w", id, err)
	}
	r.logger().Info("removed a host", "host", id, "machines", len(out.Machines), "volumes", len(out.Volumes), "cluster_member", out.ClusterMember)
	return out, nil
}

// machinesOn lists the machine records of host.
func (rm *Remover) machinesOn(ctx context.Context, host string) ([]machineRec, error) {
	kvs, err := rm.Registry.Store.List(ctx, "machines/")
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	var out []machineRec
	for _, kv := range kvs {
		var m machineRec
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("machine record %s: %w", kv.Key, err)
		}
		if m.HostID == host {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name() < out[j].name() })
	return out, nil
}

type volRec struct {
	types.Volume
	app string
}

// volumesOn lists the volume records of host (keys volumes/<app>/<id>).
func volumesOn(ctx context.Context, st store.Store, host string) ([]volRec, error) {
	kvs, err := st.List(ctx, "volumes/")
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []volRec
	for _, kv := range kvs {
		var v types.Volume
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("volume record %s: %w", kv.Key, err)
		}
		parts := strings.Split(strings.TrimPrefix(kv.Key, "volumes/"), "/")
		if v.HostID == host && len(parts) == 2 {
			out = append(out, volRec{Volume: v, app: parts[0]})
		}
	}
	return out, nil
}

// forgetOnHost deletes key if its record still names host (a record moved
// to another host meanwhile is left alone).
func forgetOnHost(ctx context.Context, st store.Store, key, host string) error {
	for attempt := 0; attempt < 8; attempt++ {
		kv, err := st.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var rec struct {
			HostID string `json:"host_id"`
		}
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return fmt.Errorf("record %s: %w", key, err)
		}
		if rec.HostID != host {
			return nil
		}
		_, err = st.Delete(ctx, key, kv.ModRevision)
		if err == nil || errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("record %s keeps changing; try again", key)
}

// forgetRTTs deletes the round trips measured from and to host.
func forgetRTTs(ctx context.Context, st store.Store, host string) error {
	kvs, err := st.List(ctx, rttPrefix)
	if err != nil {
		return fmt.Errorf("list round trips: %w", err)
	}
	for _, kv := range kvs {
		from, to, _ := strings.Cut(strings.TrimPrefix(kv.Key, rttPrefix), "/")
		if from != host && to != host {
			continue
		}
		if _, err := st.Delete(ctx, kv.Key, store.AnyRevision); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("forget round trip %s: %w", kv.Key, err)
		}
	}
	return nil
}

// CheckNotRemoved refuses to run a host that `hosts remove` removed with
// the data dir it had then (its machines and volumes are forgotten; going
// on would run them behind the cluster's back). A data dir whose host id
// was made after the removal (the host was wiped and joined again under
// the same name) clears the tombstone.
func CheckNotRemoved(ctx context.Context, st store.Store, dataDir, id string) error {
	kv, err := st.Get(ctx, removedPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read host %s's removal: %w", id, err)
	}
	var rec removedRecord
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return fmt.Errorf("host %s's removal record: %w", id, err)
	}
	fi, err := os.Stat(filepath.Join(dataDir, IDFile))
	if err != nil {
		return fmt.Errorf("host id file: %w", err)
	}
	if fi.ModTime().Before(rec.RemovedAt) {
		return fmt.Errorf("%w: host %s was removed from this installation at %s (by host %s, `hangar hosts remove`); its machines and volumes were forgotten. Empty the data dir %s and join again (`hangar server --join` with a new token) to bring this server back as a new host",
			ErrHostRemoved, id, rec.RemovedAt.Format(time.RFC3339), rec.By, dataDir)
	}
	if _, err := st.Delete(ctx, removedPrefix+id, kv.ModRevision); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("clear host %s's removal: %w", id, err)
	}
	return nil
}
