package render

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"metalsync.dev/metalsync/schema"
)

// ErrNoStaticNetwork is returned by the network document functions for a
// node without a static network (none given, or dhcp: true): such a node
// gets no network file on its media and configures itself by DHCP.
var ErrNoStaticNetwork = errors.New("no static network")

// knownBondMode reports whether m is a Linux bonding mode by the name
// cloud-init and netplan accept. Numeric modes make netplan reject the
// whole config.
func knownBondMode(m string) bool {
	switch m {
	case "balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb":
		return true
	}
	return false
}

// netPlan is a checked, resolved schema.Network: the single place that
// decides what either output format may express.
type netPlan struct {
	links  []*planLink
	byName map[string]*planLink
	dns    schema.DNS
}

type planLink struct {
	schema.Link
	mac      string // normalized own MAC, "" if none given
	effMAC   string // own MAC, else the MAC the kernel will give it
	addrs    []netip.Prefix
	routes   [][]planRoute // per address, routes whose gateway it reaches
	bondedBy *planLink
	parent   *planLink
	members  []*planLink
}

type planRoute struct {
	to     netip.Prefix
	via    netip.Addr
	metric int
}

// hasNetwork reports whether n asks for a static network.
func hasNetwork(n *schema.Network) bool {
	return n != nil && (n.DHCP == nil || !*n.DHCP)
}

func plan(n *schema.Network) (*netPlan, error) {
	if !hasNetwork(n) {
		return nil, ErrNoStaticNetwork
	}
	if len(n.Links) == 0 {
		return nil, errors.New("network has no links")
	}
	p := &netPlan{byName: make(map[string]*planLink, len(n.Links))}
	macs := map[string]string{}
	for _, l := range n.Links {
		if err := checkIfName(l.Name); err != nil {
			return nil, fmt.Errorf("link %q: %w", l.Name, err)
		}
		if p.byName[l.Name] != nil {
			return nil, fmt.Errorf("link %s: defined twice", l.Name)
		}
		pl := &planLink{Link: l}
		if l.MTU < 0 || l.MTU > 65535 {
			return nil, fmt.Errorf("link %s: mtu %d out of range", l.Name, l.MTU)
		}
		if l.MAC != "" {
			hw, err := net.ParseMAC(l.MAC)
			if err != nil || len(hw) != 6 {
				return nil, fmt.Errorf("link %s: mac %q is not an Ethernet MAC address", l.Name, l.MAC)
			}
			pl.mac = hw.String()
			// Two phys with one MAC would make the consumer pick either NIC.
			if l.Type == schema.LinkPhy {
				if other, dup := macs[pl.mac]; dup {
					return nil, fmt.Errorf("link %s: mac %s is also the mac of link %s", l.Name, pl.mac, other)
				}
				macs[pl.mac] = l.Name
			}
		}
		switch l.Type {
		case schema.LinkPhy, schema.LinkBond, schema.LinkVLAN:
		default:
			return nil, fmt.Errorf("link %s: unknown type %q (want phy, bond or vlan)", l.Name, l.Type)
		}
		for _, a := range l.Addresses {
			pfx, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("link %s: address %q: want an address with prefix length, like 192.0.2.10/24 or 2001:db8::10/64", l.Name, a)
			}
			if pfx.Addr().Zone() != "" || pfx.Addr().Is4In6() || pfx.Addr().IsUnspecified() {
				return nil, fmt.Errorf("link %s: address %s cannot be configured statically", l.Name, a)
			}
			pl.addrs = append(pl.addrs, pfx)
		}
		pl.routes = make([][]planRoute, len(pl.addrs))
		p.links = append(p.links, pl)
		p.byName[l.Name] = pl
	}
	if err := p.resolveLinks(); err != nil {
		return nil, err
	}
	if err := p.checkAddresses(); err != nil {
		return nil, err
	}
	for i, r := range n.Routes {
		if err := p.addRoute(r); err != nil {
			return nil, fmt.Errorf("route %d (to %s via %s): %w", i+1, r.To, r.Via, err)
		}
	}
	if n.DNS != nil {
		if err := p.setDNS(*n.DNS); err != nil {
			return nil, fmt.Errorf("dns: %w", err)
		}
	}
	return p, nil
}

// checkIfName accepts names Linux accepts for an interface, because
// network-config uses them as interface names.
func checkIfName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > 15 {
		return errors.New("name longer than 15 characters (the Linux interface name limit)")
	}
	if s == "." || s == ".." {
		return errors.New("invalid interface name")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("character %q not allowed in an interface name", r)
		}
	}
	return nil
}

func (p *netPlan) resolveLinks() error {
	for _, l := range p.links {
		switch l.Type {
		case schema.LinkBond:
			if l.Mode != "" && !knownBondMode(l.Mode) {
				return fmt.Errorf("link %s: unknown bond mode %q (want 802.3ad, active-backup, balance-rr, balance-xor, broadcast, balance-tlb or balance-alb)", l.Name, l.Mode)
			}
			if len(l.Members) == 0 {
				return fmt.Errorf("link %s: bond has no members", l.Name)
			}
			for _, m := range l.Members {
				ml := p.byName[m]
				switch {
				case ml == nil:
					return fmt.Errorf("link %s: bond member %q is not a link", l.Name, m)
				case ml.Type != schema.LinkPhy:
					return fmt.Errorf("link %s: bond member %s is a %s, not a phy", l.Name, m, ml.Type)
				case ml.bondedBy != nil:
					return fmt.Errorf("link %s: bond member %s already belongs to bond %s", l.Name, m, ml.bondedBy.Name)
				}
				ml.bondedBy = l
				l.members = append(l.members, ml)
			}
		case schema.LinkVLAN:
			if l.ID < 1 || l.ID > 4094 {
				return fmt.Errorf("link %s: vlan id %d out of range 1-4094", l.Name, l.ID)
			}
			pl := p.byName[l.Parent]
			switch {
			case l.Parent == "":
				return fmt.Errorf("link %s: vlan has no parent", l.Name)
			case pl == nil:
				return fmt.Errorf("link %s: vlan parent %q is not a link", l.Name, l.Parent)
			case pl.Type == schema.LinkVLAN:
				return fmt.Errorf("link %s: vlan parent %s is itself a vlan (stacked vlans are not supported)", l.Name, l.Parent)
			}
			l.parent = pl
		}
		if l.Type != schema.LinkBond && len(l.Members) > 0 {
			return fmt.Errorf("link %s: only a bond has members", l.Name)
		}
	}
	seenVLAN := map[string]string{}
	for _, l := range p.links {
		if l.bondedBy != nil && len(l.addrs) > 0 {
			return fmt.Errorf("link %s: member of bond %s cannot have addresses", l.Name, l.bondedBy.Name)
		}
		if l.Type != schema.LinkVLAN {
			continue
		}
		if l.parent.bondedBy != nil {
			return fmt.Errorf("link %s: vlan parent %s is a member of bond %s; put the vlan on the bond", l.Name, l.parent.Name, l.parent.bondedBy.Name)
		}
		key := fmt.Sprintf("%s.%d", l.Parent, l.ID)
		if other, dup := seenVLAN[key]; dup {
			return fmt.Errorf("link %s: vlan %d on %s is also link %s", l.Name, l.ID, l.Parent, other)
		}
		seenVLAN[key] = l.Name
	}
	// Effective MACs, as the kernel assigns them: a bond without its own
	// takes its first member's, a vlan its parent's. Resolving phys, then
	// bonds, then vlans sees every parent before its children.
	for _, typ := range []string{schema.LinkPhy, schema.LinkBond, schema.LinkVLAN} {
		for _, l := range p.links {
			if l.Type != typ {
				continue
			}
			l.effMAC = l.mac
			if l.effMAC != "" {
				continue
			}
			switch typ {
			case schema.LinkBond:
				l.effMAC = l.members[0].effMAC
				if l.effMAC == "" {
					// cloud-init would derive one from the machine-id, which
					// changes on every redeploy.
					return fmt.Errorf("link %s: bond has no mac and neither has its first member %s", l.Name, l.members[0].Name)
				}
			case schema.LinkVLAN:
				l.effMAC = l.parent.effMAC
			}
		}
	}
	return nil
}

func (p *netPlan) checkAddresses() error {
	seen := map[netip.Addr]string{}
	for _, l := range p.links {
		for _, a := range l.addrs {
			if other, dup := seen[a.Addr()]; dup {
				return fmt.Errorf("link %s: address %s is also on link %s", l.Name, a.Addr(), other)
			}
			seen[a.Addr()] = l.Name
		}
	}
	return nil
}

// addRoute attaches a route to the first address (in link order) whose
// subnet holds the gateway: both formats tie routes to one interface.
func (p *netPlan) addRoute(r schema.Route) error {
	to, err := netip.ParsePrefix(r.To)
	if err != nil {
		return fmt.Errorf("destination %q: want a prefix like 0.0.0.0/0, ::/0 or 10.1.0.0/16", r.To)
	}
	if to != to.Masked() {
		return fmt.Errorf("destination %s has host bits set (did you mean %s?)", to, to.Masked())
	}
	via, err := netip.ParseAddr(r.Via)
	if err != nil {
		return fmt.Errorf("gateway %q is not an IP address", r.Via)
	}
	if via.Zone() != "" {
		return fmt.Errorf("gateway %s: zones are not supported", via)
	}
	if to.Addr().Is4() != via.Is4() {
		return fmt.Errorf("an %s destination needs an %s gateway", family(to.Addr()), family(to.Addr()))
	}
	if r.Metric < 0 {
		return fmt.Errorf("negative metric %d", r.Metric)
	}
	for _, l := range p.links {
		for i, a := range l.addrs {
			if a.Addr().Is4() != via.Is4() || !a.Contains(via) {
				continue
			}
			if a.Addr() == via {
				return fmt.Errorf("gateway %s is the node's own address on link %s", via, l.Name)
			}
			l.routes[i] = append(l.routes[i], planRoute{to: to, via: via, metric: r.Metric})
			return nil
		}
	}
	if via.IsLinkLocalUnicast() {
		return fmt.Errorf("link-local gateway %s cannot be tied to a link; use a gateway inside a link's subnet", via)
	}
	return fmt.Errorf("gateway %s is not inside the subnet of any link address", via)
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func (p *netPlan) setDNS(d schema.DNS) error {
	for _, s := range d.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("server %q is not an IP address", s)
		}
		p.dns.Servers = append(p.dns.Servers, a.String())
	}
	for _, s := range d.Search {
		if err := checkDomain(s); err != nil {
			return fmt.Errorf("search domain %q: %w", s, err)
		}
		p.dns.Search = append(p.dns.Search, strings.TrimSuffix(s, "."))
	}
	if len(p.dns.Servers) == 0 && len(p.dns.Search) == 0 {
		return nil
	}
	// cloud-init puts resolvers on links with an address: without one
	// they would reach no link.
	for _, l := range p.links {
		if len(l.addrs) > 0 {
			return nil
		}
	}
	return errors.New("no link has an address to carry the resolvers")
}

func checkDomain(s string) error {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return errors.New("not a domain name")
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("not a domain name")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("character %q not allowed", r)
			}
		}
	}
	return nil
}
