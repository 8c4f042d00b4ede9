// Package networkdata is OpenStack's config drive network_data.json: the
// one set of types the renderer writes and the deploy agent reads back.
// Parse validates strictly what the agent will apply, because the agent
// configures the node's only network from it and has no one to ask.
// It imports only the standard library, so the agent binary stays small.
package networkdata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
)

// Data is network_data.json, in the shape Nova writes and cloud-init's
// convert_net_json reads. Field order is fixed so rendered output is
// stable.
type Data struct {
	Links    []Link    `json:"links"`
	Networks []Network `json:"networks"`
	Services []Service `json:"services"`
}

// Link types.
const (
	LinkPhy  = "phy"
	LinkBond = "bond"
	LinkVLAN = "vlan"
)

// Link is one layer-2 interface: a NIC (found by MAC), a bond or a VLAN.
type Link struct {
	ID         string   `json:"id"`
	Type       string   `json:"type"`
	MAC        string   `json:"ethernet_mac_address,omitempty"`
	MTU        int      `json:"mtu,omitempty"`
	BondLinks  []string `json:"bond_links,omitempty"`
	BondMode   string   `json:"bond_mode,omitempty"`
	BondMiimon int      `json:"bond_miimon,omitempty"`
	VLANLink   string   `json:"vlan_link,omitempty"`
	VLANID     int      `json:"vlan_id,omitempty"`
	VLANMAC    string   `json:"vlan_mac_address,omitempty"`
}

// Network types: static addresses only. A node on DHCP gets no networks at
// all, and the agent asks for a DHCPv4 lease instead (no SLAAC).
const (
	NetworkIPv4 = "ipv4"
	NetworkIPv6 = "ipv6"
)

// Network is one static address on a link, with its routes.
type Network struct {
	ID        string  `json:"id"`
	Type      string  `json:"type"`
	Link      string  `json:"link"`
	IPAddress string  `json:"ip_address"`
	Netmask   string  `json:"netmask"`
	Routes    []Route `json:"routes"`
}

// Route is a route through a gateway; 0.0.0.0/0.0.0.0 (or ::/::) is the
// default route.
type Route struct {
	Network string `json:"network"`
	Netmask string `json:"netmask"`
	Gateway string `json:"gateway"`
	// Metric is not in Nova's format; cloud-init passes it through.
	Metric int `json:"metric,omitempty"`
}

// ServiceDNS is the only service type: a name server.
const ServiceDNS = "dns"

// Service is a name server.
type Service struct {
	Type    string `json:"type"`
	Address string `json:"address"`
	// Search is not in Nova's format (which has no search domains);
	// cloud-init reads it from a nameserver entry.
	Search []string `json:"search,omitempty"`
}

// BondModes are the Linux bonding modes by the names the kernel and
// Nova use.
var bondModes = []string{"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"}

// Parse decodes and validates network_data.json. Unknown fields, link,
// network and service types are errors, as are dangling references; the
// error names the link or network id at fault. Trailing whitespace (the
// padding of a fixed-size media slot) is allowed.
func Parse(b []byte) (*Data, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d Data
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("network data: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("network data: trailing data after the JSON object")
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("network data: %w", err)
	}
	return &d, nil
}

// Validate checks what Parse checks, for data built in Go.
func (d *Data) Validate() error {
	links := make(map[string]*Link, len(d.Links))
	macs := map[string]string{}
	member := map[string]string{} // phy id -> bond id
	for i := range d.Links {
		l := &d.Links[i]
		if l.ID == "" {
			return fmt.Errorf("link %d: empty id", i)
		}
		if links[l.ID] != nil {
			return fmt.Errorf("link %s: duplicate id", l.ID)
		}
		if err := l.check(links, member); err != nil {
			return fmt.Errorf("link %s: %w", l.ID, err)
		}
		if l.Type == LinkPhy {
			m := l.HardwareAddr().String()
			if other, ok := macs[m]; ok {
				return fmt.Errorf("link %s: mac %s is also link %s", l.ID, m, other)
			}
			macs[m] = l.ID
		}
		links[l.ID] = l
	}
	ids := map[string]bool{}
	for i, n := range d.Networks {
		if n.ID == "" {
			return fmt.Errorf("network %d: empty id", i)
		}
		if ids[n.ID] {
			return fmt.Errorf("network %s: duplicate id", n.ID)
		}
		ids[n.ID] = true
		if err := n.check(links, member); err != nil {
			return fmt.Errorf("network %s: %w", n.ID, err)
		}
	}
	for i, s := range d.Services {
		if s.Type != ServiceDNS {
			return fmt.Errorf("service %d: unknown type %q", i, s.Type)
		}
		if _, err := netip.ParseAddr(s.Address); err != nil {
			return fmt.Errorf("service %d: address: %w", i, err)
		}
	}
	return nil
}

// check validates l against the links before it (members and VLAN parents
// come first, as the renderer writes them).
func (l *Link) check(before map[string]*Link, member map[string]string) error {
	if l.MTU != 0 && (l.MTU < 68 || l.MTU > 65535) {
		return fmt.Errorf("mtu %d out of range 68-65535", l.MTU)
	}
	if l.MAC != "" {
		if _, err := parseMAC(l.MAC); err != nil {
			return err
		}
	}
	if l.VLANMAC != "" {
		if _, err := parseMAC(l.VLANMAC); err != nil {
			return fmt.Errorf("vlan mac: %w", err)
		}
	}
	isBond := l.BondMode != "" || l.BondMiimon != 0 || len(l.BondLinks) > 0
	isVLAN := l.VLANLink != "" || l.VLANID != 0 || l.VLANMAC != ""
	switch l.Type {
	case LinkPhy:
		if l.MAC == "" {
			return errors.New("phy without ethernet_mac_address")
		}
		if isBond || isVLAN {
			return errors.New("phy with bond or vlan fields")
		}
	case LinkBond:
		if isVLAN {
			return errors.New("bond with vlan fields")
		}
		if !slices.Contains(bondModes, l.BondMode) {
			return fmt.Errorf("unknown bond_mode %q", l.BondMode)
		}
		if l.BondMiimon < 0 {
			return fmt.Errorf("negative bond_miimon %d", l.BondMiimon)
		}
		if len(l.BondLinks) == 0 {
			return errors.New("bond without bond_links")
		}
		for _, m := range l.BondLinks {
			p := before[m]
			if p == nil || p.Type != LinkPhy {
				return fmt.Errorf("bond member %q is not a phy link listed before the bond", m)
			}
			if b, ok := member[m]; ok {
				return fmt.Errorf("bond member %s is already in bond %s", m, b)
			}
			member[m] = l.ID
		}
	case LinkVLAN:
		if isBond {
			return errors.New("vlan with bond fields")
		}
		if l.VLANID < 1 || l.VLANID > 4094 {
			return fmt.Errorf("vlan_id %d out of range 1-4094", l.VLANID)
		}
		p := before[l.VLANLink]
		if p == nil || p.Type == LinkVLAN {
			return fmt.Errorf("vlan_link %q is not a phy or bond listed before the vlan", l.VLANLink)
		}
		if b, ok := member[l.VLANLink]; ok {
			return fmt.Errorf("vlan_link %s is a member of bond %s", l.VLANLink, b)
		}
		for _, o := range before {
			if o.Type == LinkVLAN && o.VLANLink == l.VLANLink && o.VLANID == l.VLANID {
				return fmt.Errorf("vlan %d on %s is also link %s", l.VLANID, l.VLANLink, o.ID)
			}
		}
	default:
		return fmt.Errorf("unknown type %q", l.Type)
	}
	return nil
}

// HardwareAddr is the link's MAC (VLANMAC for a VLAN, falling back to
// ethernet_mac_address), nil when none is set or it does not parse.
func (l *Link) HardwareAddr() net.HardwareAddr {
	s := l.MAC
	if l.Type == LinkVLAN && l.VLANMAC != "" {
		s = l.VLANMAC
	}
	m, err := parseMAC(s)
	if err != nil {
		return nil
	}
	return m
}

func parseMAC(s string) (net.HardwareAddr, error) {
	m, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("mac: %w", err)
	}
	if len(m) != 6 {
		return nil, fmt.Errorf("mac %s: not an ethernet (EUI-48) address", s)
	}
	return m, nil
}

func (n *Network) check(links map[string]*Link, member map[string]string) error {
	if links[n.Link] == nil {
		return fmt.Errorf("unknown link %q", n.Link)
	}
	if b, ok := member[n.Link]; ok {
		return fmt.Errorf("link %s is a member of bond %s and cannot carry addresses", n.Link, b)
	}
	if n.Type != NetworkIPv4 && n.Type != NetworkIPv6 {
		return fmt.Errorf("unknown type %q (only static ipv4 and ipv6)", n.Type)
	}
	p, err := n.Prefix()
	if err != nil {
		return err
	}
	if p.Addr().Is6() != (n.Type == NetworkIPv6) {
		return fmt.Errorf("address %s is not %s", p.Addr(), n.Type)
	}
	if a := p.Addr(); a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		return fmt.Errorf("address %s cannot be assigned", a)
	}
	for i, r := range n.Routes {
		dst, err := r.Destination()
		if err != nil {
			return fmt.Errorf("route %d: %w", i, err)
		}
		gw, err := r.Via()
		if err != nil {
			return fmt.Errorf("route %d: %w", i, err)
		}
		if dst.Addr().Is6() != p.Addr().Is6() || gw.Is6() != p.Addr().Is6() {
			return fmt.Errorf("route %d: %s via %s is not %s", i, dst, gw, n.Type)
		}
		if r.Metric < 0 {
			return fmt.Errorf("route %d: negative metric %d", i, r.Metric)
		}
	}
	return nil
}

// Prefix is the network's address with its prefix length.
func (n *Network) Prefix() (netip.Prefix, error) {
	return prefix(n.IPAddress, n.Netmask, false)
}

// Destination is the route's destination prefix (0.0.0.0/0 or ::/0 for
// the default route).
func (r *Route) Destination() (netip.Prefix, error) {
	return prefix(r.Network, r.Netmask, true)
}

// Via is the route's gateway.
func (r *Route) Via() (netip.Addr, error) {
	a, err := netip.ParseAddr(r.Gateway)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("gateway: %w", err)
	}
	if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("gateway %s cannot be a next hop", a)
	}
	return a.Unmap(), nil
}

// prefix combines an address and a netmask of the same family; route
// destinations must have no host bits set.
func prefix(addr, mask string, network bool) (netip.Prefix, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address: %w", err)
	}
	if a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("address %s: zones and mapped addresses are not allowed", addr)
	}
	m, err := netip.ParseAddr(mask)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("netmask: %w", err)
	}
	if m.BitLen() != a.BitLen() || m.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("netmask %s does not fit address %s", mask, addr)
	}
	ones, bits := net.IPMask(m.AsSlice()).Size()
	if bits == 0 {
		return netip.Prefix{}, fmt.Errorf("netmask %s is not contiguous", mask)
	}
	p := netip.PrefixFrom(a, ones)
	if network && p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%s/%d has host bits set", addr, ones)
	}
	return p, nil
}
