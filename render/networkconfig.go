package render

import (
	"fmt"
	"strconv"
	"strings"

	"metalsync.dev/metalsync/schema"
)

// NetworkConfig returns a cloud-init network-config version 1 document for
// n: the format cloud-init converts a config drive's network_data.json to,
// so that NoCloud and config-drive media reach cloud-init's renderers in
// the same shape. Interfaces get the link names of the inventory (phys are
// matched by MAC where one is given). Every route sits on the address
// whose subnet holds its gateway, with its prefix and metric: cloud-init
// 22.4's conversion of version 2 hangs all routes of an interface off its
// first address (ENI), drops metrics and turns ::/0 into ::/64 (ENI and
// networkd); from version 1 all three renderers (netplan, networkd, ENI)
// keep every route. A link with a static IPv6
// address gets accept-ra: false, as cloud-init gives config drives, so a
// router on the segment cannot add addresses or routes. It returns
// ErrNoStaticNetwork when n is nil or DHCP.
//
// The YAML is written by hand with every string double-quoted: a YAML 1.1
// reader (PyYAML) would read an unquoted MAC such as 10:20:30:40:50:59 as
// a base-60 integer.
func NetworkConfig(n *schema.Network) ([]byte, error) {
	p, err := plan(n)
	if err != nil {
		return nil, err
	}
	var y yamlWriter
	y.line(0, "version: 1")
	y.line(0, "config:")
	// Phys, then bonds, then vlans: every member and parent is defined
	// before the link that uses it.
	for _, typ := range []string{schema.LinkPhy, schema.LinkBond, schema.LinkVLAN} {
		for _, l := range p.links {
			if l.Type == typ {
				writeV1Link(&y, l)
			}
		}
	}
	if len(p.dns.Servers) > 0 || len(p.dns.Search) > 0 {
		// Global resolvers, as cloud-init reads a config drive's dns
		// services: its renderers put them on the links that need them.
		y.line(1, `- type: "nameserver"`)
		if len(p.dns.Servers) == 0 {
			y.line(2, "address: []") // required by cloud-init, may be empty
		}
		y.list(2, "address", p.dns.Servers)
		y.list(2, "search", p.dns.Search)
	}
	return []byte(y.String()), nil
}

func writeV1Link(y *yamlWriter, l *planLink) {
	switch l.Type {
	case schema.LinkPhy:
		y.line(1, `- type: "physical"`)
		y.line(2, "name: "+q(l.Name))
		if l.mac != "" {
			y.line(2, "mac_address: "+q(l.mac))
		}
	case schema.LinkBond:
		y.line(1, `- type: "bond"`)
		y.line(2, "name: "+q(l.Name))
		// Without a MAC cloud-init derives one from the machine-id, which
		// changes on every redeploy.
		y.line(2, "mac_address: "+q(l.effMAC))
		y.list(2, "bond_interfaces", names(l.members))
		y.line(2, "params:")
		if l.Mode != "" {
			y.line(3, "bond-mode: "+q(l.Mode))
		}
		y.line(3, fmt.Sprintf("bond-miimon: %d", bondMiimon))
	case schema.LinkVLAN:
		y.line(1, `- type: "vlan"`)
		y.line(2, "name: "+q(l.Name))
		y.line(2, "vlan_link: "+q(l.Parent))
		y.line(2, fmt.Sprintf("vlan_id: %d", l.ID))
		if l.mac != "" {
			y.line(2, "mac_address: "+q(l.mac))
		}
	}
	if l.MTU > 0 {
		y.line(2, fmt.Sprintf("mtu: %d", l.MTU))
	}
	for _, a := range l.addrs {
		if a.Addr().Is6() {
			y.line(2, "accept-ra: false")
			break
		}
	}
	if len(l.addrs) == 0 {
		return
	}
	y.line(2, "subnets:")
	for i, a := range l.addrs {
		typ := "static"
		if a.Addr().Is6() {
			typ = "static6"
		}
		y.line(3, "- type: "+q(typ))
		y.line(4, "address: "+q(a.String()))
		if len(l.routes[i]) == 0 {
			continue
		}
		y.line(4, "routes:")
		for _, r := range l.routes[i] {
			// The prefix goes with the network: cloud-init drops a
			// separate prefix of 0 and would assume /24 or /64.
			y.line(5, "- network: "+q(r.to.String()))
			y.line(6, "gateway: "+q(r.via.String()))
			if r.metric > 0 {
				y.line(6, fmt.Sprintf("metric: %d", r.metric))
			}
		}
	}
}

func names(ls []*planLink) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name)
	}
	return out
}

// q double-quotes s. Go's escapes (\n, \", \xXX, \uXXXX) are all valid in
// YAML double-quoted scalars.
func q(s string) string { return strconv.Quote(s) }

type yamlWriter struct{ strings.Builder }

func (y *yamlWriter) line(indent int, s string) {
	for range indent {
		y.WriteString("  ")
	}
	y.WriteString(s)
	y.WriteByte('\n')
}

func (y *yamlWriter) list(indent int, key string, items []string) {
	if len(items) == 0 {
		return
	}
	y.line(indent, key+":")
	for _, it := range items {
		y.line(indent+1, "- "+q(it))
	}
}
