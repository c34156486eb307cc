package network

import (
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// natTable is the nftables table of this manager's bridge.
func (m *Manager) natTable(family nftables.TableFamily) *nftables.Table {
	return &nftables.Table{Family: family, Name: "hangar_" + m.cfg.Bridge}
}

// ensureNAT masquerades traffic from the machine subnets that leaves
// through any interface but the bridge, so machines reach the outside
// world as Fly machines do, while traffic between machines and from the
// host keeps its addresses (and, with a Mesh interface, IPv6 to the other
// hosts' machines). It replaces the rules of its own chain in the
// manager's own tables only, in one transaction, and leaves the tables'
// other chains alone: a daemon taking over from another (a reload) keeps
// the Flycast redirect (RedirectFlycast) that serves machines meanwhile.
func (m *Manager) ensureNAT() error {
	c := &nftables.Conn{}
	for _, fam := range []struct {
		family nftables.TableFamily
		subnet *net.IPNet
		offset uint32 // source address in the network header
	}{
		{nftables.TableFamilyIPv4, m.net4, 12},
		{nftables.TableFamilyIPv6, m.net6, 8},
	} {
		t := c.AddTable(m.natTable(fam.family))
		ch := c.AddChain(&nftables.Chain{
			Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
		})
		c.FlushChain(ch)
		ip := fam.subnet.IP
		if fam.family == nftables.TableFamilyIPv4 {
			ip = ip.To4()
		} else {
			ip = ip.To16()
		}
		n := uint32(len(ip))
		exprs := []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.offset, Len: n},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: fam.subnet.Mask, Xor: make([]byte, n)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(m.cfg.Bridge)},
		}
		if m.cfg.Mesh != "" && fam.family == nftables.TableFamilyIPv6 {
			exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(m.cfg.Mesh)})
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(exprs, &expr.Masq{})})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: nftables masquerade for %s: %w", m.cfg.Bridge, err)
	}
	return nil
}

// deleteNATTables removes the manager's tables if they exist.
func (m *Manager) deleteNATTables(c *nftables.Conn) {
	tables, err := c.ListTables()
	if err != nil {
		return
	}
	for _, t := range tables {
		if t.Name == "hangar_"+m.cfg.Bridge {
			c.DelTable(t)
		}
	}
	_ = c.Flush()
}

// ifname pads an interface name as nftables compares it.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}
