package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/types"
)

// Members lists the cluster's hosts with their role and, for voters, the
// health of their etcd member. Without a quorum it still answers, from
// this host's copy of the records (Quorum false), where it has one.
func (n *Node) Members(ctx context.Context) (types.ClusterMembers, error) {
	out := types.ClusterMembers{ClusterID: n.mf.ClusterID, Quorum: true}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	get := func(opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
		return n.cli.Get(ctx, keyPrefix, append([]clientv3.OpOption{clientv3.WithPrefix()}, opts...)...)
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	resp, err := n.cli.Get(clientv3.WithRequireLeader(rctx), keyPrefix, clientv3.WithPrefix())
	rcancel()
	if err != nil {
		out.Quorum = false
		if resp, err = get(clientv3.WithSerializable()); err != nil {
			return out, etcdErr("read the cluster's members", err)
		}
	}
	byName := map[string]*types.ClusterMember{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		switch {
		case k == keyPrefix+"config":
			var c clusterConfig
			if json.Unmarshal(kv.Value, &c) == nil {
				out.Voters = c.Voters
			}
		case len(k) > len(keyPrefix+"members/") && k[:len(keyPrefix+"members/")] == keyPrefix+"members/":
			var r memberRecord
			if json.Unmarshal(kv.Value, &r) != nil {
				continue
			}
			m := types.ClusterMember{Name: r.Name, Region: r.Region, Role: r.Role, ClusterURL: r.ClusterURL, ClientURL: r.ClientURL, JoinedAt: r.JoinedAt}
			out.Members = append(out.Members, m)
		}
	}
	for i := range out.Members {
		byName[out.Members[i].Name] = &out.Members[i]
	}
	if ml, err := n.cli.MemberList(ctx, clientv3.WithSerializable()); err == nil {
		for _, em := range ml.Members {
			m := byName[em.Name]
			if m == nil {
				continue
			}
			m.Learner = em.IsLearner
			m.Health = "unreachable"
			for _, cu := range em.ClientURLs {
				sctx, scancel := context.WithTimeout(ctx, time.Second)
				st, err := n.cli.Status(sctx, cu)
				scancel()
				if err == nil {
					m.Health = "healthy"
					if st.Leader == 0 {
						m.Health = "no leader"
					}
					m.Leader = st.Leader == st.Header.MemberId
					break
				}
			}
		}
	}
	sort.Slice(out.Members, func(i, j int) bool {
		a, b := out.Members[i], out.Members[j]
		if a.Role != b.Role {
			return a.Role == RoleVoter
		}
		return a.Name < b.Name
	})
	return out, nil
}

// JoinURL is where a new host joins: this host's cluster listener if it is
// a voter (voters sign joins), else a voter's.
func (n *Node) JoinURL(ctx context.Context) string {
	if n.ca.key != nil {
		return n.ClusterURL()
	}
	if ms, err := n.Members(ctx); err == nil {
		for _, m := range ms.Members {
			if m.Role == RoleVoter {
				return m.ClusterURL
			}
		}
	}
	return n.ClusterURL()
}

// RemoveMember takes a host out of the cluster for good (`hangar hosts
// remove`): its etcd member, when it is a voter or a learner, and its
// member record. The host is the one whose member name is h.ID or whose
// cluster listener is h.APIURL. It reports whether the host was a member.
// etcd refuses to remove a voter when the rest would lose their quorum.
func (n *Node) RemoveMember(ctx context.Context, h types.Host) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := n.cli.Get(ctx, keyPrefix+"members/", clientv3.WithPrefix())
	if err != nil {
		return false, etcdErr("read the cluster's members", err)
	}
	var rec *memberRecord
	for _, kv := range resp.Kvs {
		var r memberRecord
		if json.Unmarshal(kv.Value, &r) == nil && (r.Name == h.ID || (h.APIURL != "" && r.ClusterURL == h.APIURL)) {
			rec = &r
			break
		}
	}
	if rec == nil {
		return false, nil
	}
	if rec.Name == n.mf.Name {
		return false, fmt.Errorf("host %s is this host's cluster member: ask another host to remove it: %w", h.ID, types.ErrInvalid)
	}
	ml, err := n.cli.MemberList(ctx)
	if err != nil {
		return false, etcdErr("list etcd's members", err)
	}
	for _, em := range ml.Members {
		if em.Name != rec.Name && (rec.PeerURL == "" || !slices.Contains(em.PeerURLs, rec.PeerURL)) {
			continue
		}
		if _, err := n.cli.MemberRemove(ctx, em.ID); err != nil {
			return true, fmt.Errorf("remove etcd member %s (%x): %v; etcd refuses when the other voting members would lose their majority: bring another voter back first (`hangar cluster members`): %w", em.Name, em.ID, err, types.ErrConflict)
		}
		n.log.Info("removed a host's etcd member", "host", h.ID, "member", em.Name, "id", fmt.Sprintf("%x", em.ID), "learner", em.IsLearner)
	}
	if _, err := n.cli.Delete(ctx, memberKey(rec.Name)); err != nil {
		return true, etcdErr("delete the host's member record", err)
	}
	return true, nil
}

// removed reports whether the other voters say this member is no longer
// one of the cluster's (a restart after `hangar hosts remove`).
func (n *Node) removed(ctx context.Context) bool {
	if n.mf.PeerURL == "" {
		return false
	}
	c := n.othersClient()
	if c == nil {
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ml, err := c.MemberList(ctx)
	if err != nil {
		return false
	}
	for _, m := range ml.Members {
		if m.Name == n.mf.Name || slices.Contains(m.PeerURLs, n.mf.PeerURL) {
			return false
		}
	}
	return true
}
