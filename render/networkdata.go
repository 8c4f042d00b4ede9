package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"metalsync.dev/metalsync/render/networkdata"
	"metalsync.dev/metalsync/schema"
)

// bondMiimon is the link monitoring interval (ms) every bond gets: without
// one the kernel never notices a dead member.
const bondMiimon = 100

// NetworkData returns the OpenStack config drive network_data.json for n.
// Interface names are left to the consumer (cloud-init names NICs by MAC,
// bonds bond0, bond1… in link order and vlans <lower>.<vid>), so every phy
// needs a MAC. It returns ErrNoStaticNetwork when n is nil or DHCP.
func NetworkData(n *schema.Network) ([]byte, error) {
	p, err := plan(n)
	if err != nil {
		return nil, err
	}
	doc := networkdata.Data{Links: []networkdata.Link{}, Networks: []networkdata.Network{}, Services: []networkdata.Service{}}
	for _, l := range p.links {
		ol := networkdata.Link{ID: l.Name, MTU: l.MTU}
		switch l.Type {
		case schema.LinkPhy:
			if l.mac == "" {
				return nil, fmt.Errorf("link %s: a config drive needs the mac of every phy", l.Name)
			}
			ol.Type, ol.MAC = networkdata.LinkPhy, l.mac
		case schema.LinkBond:
			ol.Type, ol.MAC = networkdata.LinkBond, l.effMAC
			ol.BondMode, ol.BondMiimon = l.Mode, bondMiimon
			for _, m := range l.members {
				ol.BondLinks = append(ol.BondLinks, m.Name)
			}
		case schema.LinkVLAN:
			ol.Type, ol.VLANLink, ol.VLANID, ol.VLANMAC = networkdata.LinkVLAN, l.Parent, l.ID, l.effMAC
			if ol.VLANMAC == "" {
				return nil, fmt.Errorf("link %s: a config drive needs a mac for the vlan or its parent %s", l.Name, l.Parent)
			}
		}
		doc.Links = append(doc.Links, ol)
		for i, a := range l.addrs {
			on := networkdata.Network{
				ID:        fmt.Sprintf("network%d", len(doc.Networks)),
				Type:      networkdata.NetworkIPv4,
				Link:      l.Name,
				IPAddress: a.Addr().String(),
				Netmask:   mask(a),
				Routes:    []networkdata.Route{},
			}
			if a.Addr().Is6() {
				on.Type = networkdata.NetworkIPv6
			}
			for _, r := range l.routes[i] {
				on.Routes = append(on.Routes, networkdata.Route{
					Network: r.to.Addr().String(),
					Netmask: mask(r.to),
					Gateway: r.via.String(),
					Metric:  r.metric,
				})
			}
			doc.Networks = append(doc.Networks, on)
		}
	}
	if len(p.dns.Search) > 0 && len(p.dns.Servers) == 0 {
		return nil, errors.New("dns: a config drive carries search domains only together with a server")
	}
	for i, s := range p.dns.Servers {
		svc := networkdata.Service{Type: networkdata.ServiceDNS, Address: s}
		if i == 0 {
			svc.Search = p.dns.Search
		}
		doc.Services = append(doc.Services, svc)
	}
	return marshalJSON(doc)
}

// mask writes a prefix length as a netmask, the form Nova uses for both
// families (0.0.0.0 and :: for default routes).
func mask(p netip.Prefix) string {
	m := net.CIDRMask(p.Bits(), p.Addr().BitLen())
	a, _ := netip.AddrFromSlice(m)
	return a.String()
}

func marshalJSON(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
