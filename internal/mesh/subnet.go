package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// Store keys of the subnet allocation: one key per taken index (so two
// hosts can never take the same /64) and one per host (so a host gets its
// own back after a restart).
const (
	subnetKeyPrefix = "mesh/subnets/"
	hostKeyPrefix   = "mesh/hosts/"
	orgKey          = "mesh/org"
)

// MaxSubnets is how many /64s a /48 org prefix holds.
const MaxSubnets = 1 << 16

// ErrNoSubnet is returned when the org prefix is full.
var ErrNoSubnet = types.NewError(types.ErrNoSpace, "no 6PN subnet left in the org prefix")

// SubnetOf is the index-th /64 of a /48 org prefix.
func SubnetOf(org netip.Prefix, index int) (netip.Prefix, error) {
	if !org.Addr().Is6() || org.Bits() != 48 {
		return netip.Prefix{}, fmt.Errorf("mesh: org prefix %s: want an IPv6 /48 such as fdaa:0:1::/48", org)
	}
	if index < 0 || index >= MaxSubnets {
		return netip.Prefix{}, fmt.Errorf("mesh: subnet index %d outside 0..%d", index, MaxSubnets-1)
	}
	b := org.Masked().Addr().As16()
	b[6], b[7] = byte(index>>8), byte(index)
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), nil
}

// AllocateSubnet gives host a /64 of the org's /48, the same one every
// time it asks, a different one from every other host's. The lowest free
// index is taken, so the first host of a cluster keeps index 0: the /64 a
// single host uses by default (fdaa:0:1::/64 in fdaa:0:1::/48), and the
// machines it already runs keep their addresses.
func AllocateSubnet(ctx context.Context, st store.Store, org netip.Prefix, host string) (netip.Prefix, error) {
	if host == "" {
		return netip.Prefix{}, errors.New("mesh: allocate a subnet: no host id")
	}
	if _, err := SubnetOf(org, 0); err != nil {
		return netip.Prefix{}, err
	}
	org, err := clusterOrg(ctx, st, org)
	if err != nil {
		return netip.Prefix{}, err
	}
	for attempt := 0; attempt < 64; attempt++ {
		var mine Member
		if _, err := store.GetJSON(ctx, st, hostKeyPrefix+host, &mine); err == nil {
			return SubnetOf(org, mine.Index)
		} else if !errors.Is(err, store.ErrNotFound) {
			return netip.Prefix{}, fmt.Errorf("mesh: read host %s's subnet: %w", host, err)
		}
		taken, err := st.List(ctx, subnetKeyPrefix)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("mesh: list subnets: %w", err)
		}
		used := make(map[int]bool, len(taken))
		for _, kv := range taken {
			if n, err := strconv.Atoi(kv.Key[len(subnetKeyPrefix):]); err == nil {
				used[n] = true
			}
		}
		index := -1
		for i := 0; i < MaxSubnets; i++ {
			if !used[i] {
				index = i
				break
			}
		}
		if index < 0 {
			return netip.Prefix{}, fmt.Errorf("mesh: %w %s (%d hosts): free the /64s of hosts that left the cluster (mesh.ReleaseSubnet)", ErrNoSubnet, org, len(taken))
		}
		sub, _ := SubnetOf(org, index)
		rec, _ := json.Marshal(Member{Host: host, Index: index, Subnet: sub.String()})
		_, err = st.Txn(ctx, []store.Op{
			{Key: subnetKeyPrefix + strconv.Itoa(index), Value: rec, Expect: 0},
			{Key: hostKeyPrefix + host, Value: rec, Expect: 0},
		})
		if err == nil {
			return sub, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return netip.Prefix{}, fmt.Errorf("mesh: record subnet %s for host %s: %w", sub, host, err)
		}
		// Another host took the index, or this host raced itself: look again.
	}
	return netip.Prefix{}, fmt.Errorf("mesh: allocate a subnet for host %s: too many concurrent allocations, try again", host)
}

// clusterOrg is the org prefix of the cluster: the first host's, kept in
// the store, so that every host's /64 comes out of one /48 whatever
// --subnet6 the others were given.
func clusterOrg(ctx context.Context, st store.Store, mine netip.Prefix) (netip.Prefix, error) {
	for attempt := 0; attempt < 4; attempt++ {
		kv, err := st.Get(ctx, orgKey)
		if err == nil {
			p, perr := netip.ParsePrefix(string(kv.Value))
			if perr != nil {
				return netip.Prefix{}, fmt.Errorf("mesh: the cluster's org prefix %q is damaged: %w", kv.Value, perr)
			}
			return p, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return netip.Prefix{}, fmt.Errorf("mesh: read the org prefix: %w", err)
		}
		if _, err := st.Put(ctx, orgKey, []byte(mine.Masked().String()), 0); err == nil {
			return mine.Masked(), nil
		} else if !errors.Is(err, store.ErrConflict) {
			return netip.Prefix{}, fmt.Errorf("mesh: record the org prefix: %w", err)
		}
	}
	return netip.Prefix{}, errors.New("mesh: the org prefix keeps changing; try again")
}

// ReleaseSubnet frees host's /64 (when the host leaves the cluster). A host
// with none is not an error.
func ReleaseSubnet(ctx context.Context, st store.Store, host string) error {
	var mine Member
	rev, err := store.GetJSON(ctx, st, hostKeyPrefix+host, &mine)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mesh: read host %s's subnet: %w", host, err)
	}
	_, err = st.Txn(ctx, []store.Op{
		{Key: hostKeyPrefix + host, Delete: true, Expect: rev},
		{Key: subnetKeyPrefix + strconv.Itoa(mine.Index), Delete: true, Expect: store.AnyRevision},
	})
	if err != nil {
		return fmt.Errorf("mesh: release host %s's subnet %s: %w", host, mine.Subnet, err)
	}
	return nil
}
