package mesh

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
	"github.com/hangar-dev/hangar/internal/types"
)

var org = netip.MustParsePrefix("fdaa:0:1::/48")

func TestSubnetOf(t *testing.T) {
	for _, c := range []struct {
		i    int
		want string
	}{{0, "fdaa:0:1::/64"}, {1, "fdaa:0:1:1::/64"}, {0xabcd, "fdaa:0:1:abcd::/64"}, {MaxSubnets - 1, "fdaa:0:1:ffff::/64"}} {
		got, err := SubnetOf(org, c.i)
		if err != nil || got.String() != c.want {
			t.Errorf("SubnetOf(%d) = %v, %v; want %s", c.i, got, err, c.want)
		}
	}
	for _, bad := range []struct {
		org string
		i   int
	}{{"fdaa:0:1::/64", 0}, {"10.0.0.0/8", 0}, {"fdaa:0:1::/48", -1}, {"fdaa:0:1::/48", MaxSubnets}} {
		if _, err := SubnetOf(netip.MustParsePrefix(bad.org), bad.i); err == nil {
			t.Errorf("SubnetOf(%s, %d) succeeded", bad.org, bad.i)
		}
	}
}

// testAllocation runs the allocation rules against a store: the first
// host keeps the single-host /64, a host gets its own back, concurrent
// hosts never share one, a released /64 is given out again.
func testAllocation(t *testing.T, st store.Store) {
	ctx := context.Background()
	first, err := AllocateSubnet(ctx, st, org, "host-a")
	if err != nil || first.String() != "fdaa:0:1::/64" {
		t.Fatalf("first host: %v %v; want fdaa:0:1::/64 (the single-host default, so its machines keep their addresses)", first, err)
	}
	again, err := AllocateSubnet(ctx, st, org, "host-a")
	if err != nil || again != first {
		t.Fatalf("same host again: %v %v; want %v", again, err, first)
	}
	const n = 12
	var wg sync.WaitGroup
	got := make([]netip.Prefix, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = AllocateSubnet(ctx, st, org, fmt.Sprintf("host-%02d", i))
		}()
	}
	wg.Wait()
	seen := map[netip.Prefix]int{first: -1}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("host %d: %v", i, errs[i])
		}
		if j, dup := seen[got[i]]; dup {
			t.Fatalf("hosts %d and %d both got %s", i, j, got[i])
		}
		seen[got[i]] = i
	}
	if err := ReleaseSubnet(ctx, st, "host-03"); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseSubnet(ctx, st, "never-allocated"); err != nil {
		t.Fatalf("releasing a host without a subnet: %v", err)
	}
	reused, err := AllocateSubnet(ctx, st, org, "host-new")
	if err != nil || reused != got[3] {
		t.Fatalf("after a release: %v %v; want the freed %s", reused, err, got[3])
	}
	if _, err := AllocateSubnet(ctx, st, netip.MustParsePrefix("fdaa:0:1::/64"), "host-x"); err == nil {
		t.Fatal("a /64 org prefix was accepted")
	}
	if _, err := AllocateSubnet(ctx, st, org, ""); err == nil {
		t.Fatal("an empty host id was accepted")
	}
}

func TestAllocateSubnetBolt(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	testAllocation(t, st)
}

func TestAllocateSubnetEtcd(t *testing.T) {
	ctx := context.Background()
	st, err := etcdstore.Open(ctx, clientv3.Config{Endpoints: etcdtest.Start(t)}, etcdstore.Options{Prefix: "/mesh-test/"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	testAllocation(t, st)
}

func TestAllocateSubnetFull(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	// Fill the index space directly (allocating 65536 hosts one by one
	// would only be slower).
	ops := make([]store.Op, 0, 4096)
	for i := range MaxSubnets {
		ops = append(ops, store.Op{Key: fmt.Sprintf("%s%d", subnetKeyPrefix, i), Value: []byte(`{}`)})
		if len(ops) == cap(ops) {
			if _, err := st.Txn(ctx, ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	_, err = AllocateSubnet(ctx, st, org, "one-too-many")
	if !errors.Is(err, types.ErrNoSpace) {
		t.Fatalf("full prefix: %v, want an ErrNoSpace error", err)
	}
}
