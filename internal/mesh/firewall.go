package mesh

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// FirewallTable is the nftables table (family inet) of Isolate.
const FirewallTable = "hangar_mesh"

// Isolation is what Isolate needs to know of the host.
type Isolation struct {
	// Device is the mesh interface (DefaultDevice if empty).
	Device string
	// Bridge is the machines' bridge.
	Bridge string
	// Org is the cluster's 6PN prefix (the /48): the only sources the
	// mesh carries.
	Org netip.Prefix
	// Own is this host's /64: the only destinations the mesh delivers to.
	Own netip.Prefix
}

// Isolate keeps the org's network to itself on this host, with an
// nftables table of its own (FirewallTable, replaced whole in one
// transaction, so a restart or reload changes it atomically):
//
//   - from the mesh: only IPv6 from the org's /48, and (forwarded) only to
//     this host's /64: the mesh is no transit to anything else;
//   - to the mesh: only the org's /48;
//   - into the machines' bridge from any interface but the bridge and the
//     mesh: no new IPv6 connection (a host outside the cluster that routes
//     to the machines' /64, or spoofs an org address, gets nothing; the
//     machines' own connections' replies are let back in).
//
// The table stays when the daemon stops: the machines keep running and
// stay isolated; the next daemon replaces it.
func Isolate(iso Isolation) error {
	if iso.Device == "" {
		iso.Device = DefaultDevice
	}
	if !iso.Org.IsValid() || !iso.Own.IsValid() || !iso.Org.Addr().Is6() || iso.Bridge == "" {
		return fmt.Errorf("mesh: isolation of %+v: want an IPv6 org prefix, this host's /64 and the bridge", iso)
	}
	org, own := iso.Org.Masked(), iso.Own.Masked()
	c := &nftables.Conn{}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: FirewallTable}
	// Add then delete then add: the delete does not fail when the table is
	// new, and the whole batch applies at once.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	chain := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	}
	input, forward, output := chain("input", nftables.ChainHookInput), chain("forward", nftables.ChainHookForward), chain("output", nftables.ChainHookOutput)
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	rule := func(ch *nftables.Chain, exprs ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(exprs, drop)})
	}
	for _, ch := range []*nftables.Chain{input, forward} {
		// iifname <mesh> meta nfproto != ipv6 drop
		rule(ch, append(iif(iso.Device, true), nfproto(false)...)...)
		// iifname <mesh> ip6 saddr != <org> drop
		rule(ch, append(append(iif(iso.Device, true), nfproto(true)...), notIn(8, org)...)...)
	}
	// iifname <mesh> ip6 daddr != <own> drop (forwarded)
	rule(forward, append(append(iif(iso.Device, true), nfproto(true)...), notIn(24, own)...)...)
	for _, ch := range []*nftables.Chain{forward, output} {
		// oifname <mesh> ip6 daddr != <org> drop
		rule(ch, append(append(oif(iso.Device), nfproto(true)...), notIn(24, org)...)...)
	}
	// oifname <bridge> iifname != <bridge> iifname != <mesh> ct state new
	// meta nfproto ipv6 drop
	exprs := oif(iso.Bridge)
	exprs = append(exprs, iif(iso.Bridge, false)...)
	exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(iso.Device)})
	exprs = append(exprs, nfproto(true)...)
	exprs = append(exprs,
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)})
	rule(forward, exprs...)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("mesh: nftables isolation on %s: %w (is nftables available? `nft list table inet %s`)", iso.Device, err, FirewallTable)
	}
	return nil
}

// RemoveIsolation deletes Isolate's table, if there is one.
func RemoveIsolation() error {
	c := &nftables.Conn{}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: FirewallTable}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("mesh: remove the nftables isolation: %w", err)
	}
	return nil
}

// iif matches the input interface's name (eq) or not.
func iif(name string, eq bool) []expr.Any {
	op := expr.CmpOpEq
	if !eq {
		op = expr.CmpOpNeq
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: ifname(name)}}
}

// oif matches the output interface's name.
func oif(name string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)}}
}

// nfproto matches IPv6 packets (is6) or anything else.
func nfproto(is6 bool) []expr.Any {
	op := expr.CmpOpEq
	if !is6 {
		op = expr.CmpOpNeq
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: []byte{unix.NFPROTO_IPV6}}}
}

// notIn matches an IPv6 address (at offset in the header: 8 source, 24
// destination) outside p.
func notIn(offset uint32, p netip.Prefix) []expr.Any {
	mask := make([]byte, 16)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 16},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: mask, Xor: make([]byte, 16)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

// ifname pads an interface name as nftables compares it.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}
