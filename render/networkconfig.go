package render

import (
	"fmt"
	"strconv"
	"strings"

	"metalsync.dev/metalsync/schema"
)

// NetworkConfig returns a cloud-init network-config version 2 document
// (netplan syntax) for n. Interfaces get the link names of the inventory:
// phys are matched by MAC and renamed with set-name, so every cloud-init
// renderer (netplan, networkd, ENI) ends up with the same names. Default
// routes are written 0.0.0.0/0 and ::/0, never "default", which cloud-init
// 22.4's ENI and networkd renderers reject. It returns ErrNoStaticNetwork
// when n is nil or DHCP.
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
	y.line(0, "version: 2")
	for _, sec := range []struct{ typ, key string }{
		{schema.LinkPhy, "ethernets"}, {schema.LinkBond, "bonds"}, {schema.LinkVLAN, "vlans"},
	} {
		first := true
		for _, l := range p.links {
			if l.Type != sec.typ {
				continue
			}
			if first {
				y.line(0, sec.key+":")
				first = false
			}
			p.writeV2Link(&y, l)
		}
	}
	return []byte(y.String()), nil
}

func (p *netPlan) writeV2Link(y *yamlWriter, l *planLink) {
	start := y.Len()
	y.line(1, q(l.Name)+":")
	body := y.Len()
	switch l.Type {
	case schema.LinkPhy:
		if l.mac != "" {
			y.line(2, "match:")
			y.line(3, "macaddress: "+q(l.mac))
			y.line(2, "set-name: "+q(l.Name))
		}
	case schema.LinkBond:
		y.list(2, "interfaces", names(l.members))
		// Without a MAC cloud-init derives one from the machine-id, which
		// changes on every redeploy.
		y.line(2, "macaddress: "+q(l.effMAC))
		y.line(2, "parameters:")
		if l.Mode != "" {
			y.line(3, "mode: "+q(l.Mode))
		}
		y.line(3, fmt.Sprintf("mii-monitor-interval: %d", bondMiimon))
	case schema.LinkVLAN:
		y.line(2, fmt.Sprintf("id: %d", l.ID))
		y.line(2, "link: "+q(l.Parent))
		if l.mac != "" {
			y.line(2, "macaddress: "+q(l.mac))
		}
	}
	if l.MTU > 0 {
		y.line(2, fmt.Sprintf("mtu: %d", l.MTU))
	}
	var addrs []string
	var routes []planRoute
	for i, a := range l.addrs {
		addrs = append(addrs, a.String())
		routes = append(routes, l.routes[i]...)
	}
	y.list(2, "addresses", addrs)
	if len(routes) > 0 {
		y.line(2, "routes:")
		for _, r := range routes {
			y.line(3, "- to: "+q(r.to.String()))
			y.line(4, "via: "+q(r.via.String()))
			if r.metric > 0 {
				y.line(4, fmt.Sprintf("metric: %d", r.metric))
			}
		}
	}
	if p.dnsLink == l {
		y.line(2, "nameservers:")
		y.list(3, "addresses", p.dns.Servers)
		y.list(3, "search", p.dns.Search)
	}
	if y.Len() == body {
		// A bare member NIC without a MAC: an empty mapping.
		y.Truncate(start)
		y.line(1, q(l.Name)+": {}")
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

// Truncate cuts the output back to n bytes.
func (y *yamlWriter) Truncate(n int) {
	s := y.String()[:n]
	y.Reset()
	y.WriteString(s)
}
