package networkdata

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// bondVLAN is the renderer's bond-vlan golden output, with slot padding.
const bondVLAN = `{
  "links": [
    {"id": "eno1", "type": "phy", "ethernet_mac_address": "10:20:30:40:50:59", "mtu": 9000},
    {"id": "eno2", "type": "phy", "ethernet_mac_address": "10:20:30:40:50:5a", "mtu": 9000},
    {"id": "bond0", "type": "bond", "ethernet_mac_address": "10:20:30:40:50:59", "mtu": 9000,
     "bond_links": ["eno1", "eno2"], "bond_mode": "802.3ad", "bond_miimon": 100},
    {"id": "vlan100", "type": "vlan", "mtu": 1500, "vlan_link": "bond0", "vlan_id": 100, "vlan_mac_address": "10:20:30:40:50:59"}
  ],
  "networks": [
    {"id": "network0", "type": "ipv4", "link": "vlan100", "ip_address": "10.100.0.40", "netmask": "255.255.255.0",
     "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.100.0.1"}]},
    {"id": "network1", "type": "ipv6", "link": "vlan100", "ip_address": "2001:db8:100::40", "netmask": "ffff:ffff:ffff:ffff::",
     "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8:100::1", "metric": 200}]}
  ],
  "services": [{"type": "dns", "address": "10.100.0.53", "search": ["r2.example.com"]}]
}
` + "          \n  "

func TestParseAccepts(t *testing.T) {
	d, err := Parse([]byte(bondVLAN))
	if err != nil {
		t.Fatal(err)
	}
	want := &Data{
		Links: []Link{
			{ID: "eno1", Type: LinkPhy, MAC: "10:20:30:40:50:59", MTU: 9000},
			{ID: "eno2", Type: LinkPhy, MAC: "10:20:30:40:50:5a", MTU: 9000},
			{ID: "bond0", Type: LinkBond, MAC: "10:20:30:40:50:59", MTU: 9000, BondLinks: []string{"eno1", "eno2"}, BondMode: "802.3ad", BondMiimon: 100},
			{ID: "vlan100", Type: LinkVLAN, MTU: 1500, VLANLink: "bond0", VLANID: 100, VLANMAC: "10:20:30:40:50:59"},
		},
		Networks: []Network{
			{ID: "network0", Type: NetworkIPv4, Link: "vlan100", IPAddress: "10.100.0.40", Netmask: "255.255.255.0",
				Routes: []Route{{Network: "0.0.0.0", Netmask: "0.0.0.0", Gateway: "10.100.0.1"}}},
			{ID: "network1", Type: NetworkIPv6, Link: "vlan100", IPAddress: "2001:db8:100::40", Netmask: "ffff:ffff:ffff:ffff::",
				Routes: []Route{{Network: "::", Netmask: "::", Gateway: "2001:db8:100::1", Metric: 200}}},
		},
		Services: []Service{{Type: ServiceDNS, Address: "10.100.0.53", Search: []string{"r2.example.com"}}},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	p, err := d.Networks[1].Prefix()
	if err != nil || p != netip.MustParsePrefix("2001:db8:100::40/64") {
		t.Errorf("Prefix = %v, %v; want 2001:db8:100::40/64", p, err)
	}
	dst, err := d.Networks[0].Routes[0].Destination()
	if err != nil || dst != netip.MustParsePrefix("0.0.0.0/0") {
		t.Errorf("Destination = %v, %v; want 0.0.0.0/0", dst, err)
	}
	if got := d.Links[3].HardwareAddr().String(); got != "10:20:30:40:50:59" {
		t.Errorf("vlan HardwareAddr = %s", got)
	}
}

func TestParseRejects(t *testing.T) {
	const phy = `{"id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"}`
	const phy2 = `{"id": "eno2", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:02"}`
	doc := func(links, networks, services string) string {
		return `{"links": [` + links + `], "networks": [` + networks + `], "services": [` + services + `]}`
	}
	net4 := func(link, ip, mask, routes string) string {
		return `{"id": "n0", "type": "ipv4", "link": "` + link + `", "ip_address": "` + ip + `", "netmask": "` + mask + `", "routes": [` + routes + `]}`
	}
	tests := []struct {
		name, in, want string
	}{
		{"not json", `{`, "network data: unexpected EOF"},
		{"trailing garbage", doc(phy, "", "") + " x", "trailing data"},
		{"unknown field", `{"links": [], "networks": [], "services": [], "extra": 1}`, "unknown field"},
		{"unknown link type", doc(`{"id": "ib0", "type": "infiniband", "ethernet_mac_address": "52:54:00:00:00:01"}`, "", ""), `link ib0: unknown type "infiniband"`},
		{"empty link id", doc(`{"id": "", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"}`, "", ""), "link 0: empty id"},
		{"duplicate link", doc(phy+","+phy, "", ""), "link eno1: duplicate id"},
		{"phy without mac", doc(`{"id": "eno1", "type": "phy"}`, "", ""), "link eno1: phy without ethernet_mac_address"},
		{"bad mac", doc(`{"id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:00:01"}`, "", ""), "link eno1: mac: address 52:54:00:00:01: invalid MAC address"},
		{"long mac", doc(`{"id": "eno1", "type": "phy", "ethernet_mac_address": "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}`, "", ""), "not an ethernet"},
		{"same mac twice", doc(phy+`,{"id": "eno2", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"}`, "", ""), "link eno2: mac 52:54:00:00:00:01 is also link eno1"},
		{"mtu too small", doc(`{"id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01", "mtu": 40}`, "", ""), "link eno1: mtu 40"},
		{"bond mode", doc(phy+`,{"id": "bond0", "type": "bond", "bond_links": ["eno1"], "bond_mode": "fast"}`, "", ""), `link bond0: unknown bond_mode "fast"`},
		{"bond member unknown", doc(`{"id": "bond0", "type": "bond", "bond_links": ["eno1"], "bond_mode": "active-backup"}`, "", ""), `link bond0: bond member "eno1" is not a phy`},
		{"bond no members", doc(`{"id": "bond0", "type": "bond", "bond_mode": "active-backup"}`, "", ""), "link bond0: bond without bond_links"},
		{"member of two bonds", doc(phy+","+phy2+`,{"id": "bond0", "type": "bond", "bond_links": ["eno1"], "bond_mode": "active-backup"},{"id": "bond1", "type": "bond", "bond_links": ["eno1", "eno2"], "bond_mode": "active-backup"}`, "", ""), "link bond1: bond member eno1 is already in bond bond0"},
		{"phy with vlan fields", doc(`{"id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01", "vlan_id": 3}`, "", ""), "link eno1: phy with bond or vlan fields"},
		{"vlan id", doc(phy+`,{"id": "v", "type": "vlan", "vlan_link": "eno1", "vlan_id": 4095}`, "", ""), "link v: vlan_id 4095 out of range"},
		{"vlan parent unknown", doc(`{"id": "v", "type": "vlan", "vlan_link": "eno9", "vlan_id": 5}`, "", ""), `link v: vlan_link "eno9" is not a phy or bond`},
		{"vlan on bond member", doc(phy+`,{"id": "bond0", "type": "bond", "bond_links": ["eno1"], "bond_mode": "active-backup"},{"id": "v", "type": "vlan", "vlan_link": "eno1", "vlan_id": 5}`, "", ""), "link v: vlan_link eno1 is a member of bond bond0"},
		{"vlan twice", doc(phy+`,{"id": "v", "type": "vlan", "vlan_link": "eno1", "vlan_id": 5},{"id": "w", "type": "vlan", "vlan_link": "eno1", "vlan_id": 5}`, "", ""), "link w: vlan 5 on eno1 is also link v"},
		{"network on unknown link", doc(phy, net4("eno9", "10.0.0.1", "255.0.0.0", ""), ""), `network n0: unknown link "eno9"`},
		{"network on bond member", doc(phy+`,{"id": "bond0", "type": "bond", "bond_links": ["eno1"], "bond_mode": "active-backup"}`, net4("eno1", "10.0.0.1", "255.0.0.0", ""), ""), "network n0: link eno1 is a member of bond bond0"},
		{"dhcp network", doc(phy, `{"id": "n0", "type": "ipv4_dhcp", "link": "eno1"}`, ""), `network n0: unknown type "ipv4_dhcp"`},
		{"bad address", doc(phy, net4("eno1", "10.0.0.300", "255.0.0.0", ""), ""), "network n0: address: "},
		{"family mismatch", doc(phy, net4("eno1", "2001:db8::1", "ffff::", ""), ""), "network n0: address 2001:db8::1 is not ipv4"},
		{"mask family", doc(phy, net4("eno1", "10.0.0.1", "ffff::", ""), ""), "network n0: netmask ffff:: does not fit address 10.0.0.1"},
		{"mask holes", doc(phy, net4("eno1", "10.0.0.1", "255.0.255.0", ""), ""), "network n0: netmask 255.0.255.0 is not contiguous"},
		{"unspecified address", doc(phy, net4("eno1", "0.0.0.0", "255.0.0.0", ""), ""), "network n0: address 0.0.0.0 cannot be assigned"},
		{"route host bits", doc(phy, net4("eno1", "10.0.0.1", "255.0.0.0", `{"network": "10.1.2.3", "netmask": "255.255.0.0", "gateway": "10.0.0.254"}`), ""), "network n0: route 0: 10.1.2.3/16 has host bits set"},
		{"route gateway family", doc(phy, net4("eno1", "10.0.0.1", "255.0.0.0", `{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "2001:db8::1"}`), ""), "network n0: route 0: 0.0.0.0/0 via 2001:db8::1 is not ipv4"},
		{"route gateway unspecified", doc(phy, net4("eno1", "10.0.0.1", "255.0.0.0", `{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "0.0.0.0"}`), ""), "network n0: route 0: gateway 0.0.0.0 cannot be a next hop"},
		{"duplicate network", doc(phy, net4("eno1", "10.0.0.1", "255.0.0.0", "")+","+net4("eno1", "10.0.0.2", "255.0.0.0", ""), ""), "network n0: duplicate id"},
		{"service type", doc(phy, "", `{"type": "ntp", "address": "10.0.0.1"}`), `service 0: unknown type "ntp"`},
		{"service address", doc(phy, "", `{"type": "dns", "address": "ns1"}`), "service 0: address: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, %v; want an error containing %q", d, err, tt.want)
			}
		})
	}
}

// FuzzParse feeds arbitrary bytes: Parse must not panic, and what it
// accepts must give every network a prefix and every route a gateway.
func FuzzParse(f *testing.F) {
	f.Add([]byte(bondVLAN))
	f.Add([]byte(`{"links": [], "networks": [], "services": []}`))
	f.Add([]byte(`{"links": [{"id": "a", "type": "phy", "ethernet_mac_address": "02:00:00:00:00:01"}], "networks": [{"id": "n", "type": "ipv6", "link": "a", "ip_address": "fe80::1", "netmask": "ffff:ffff:ffff:ffff::", "routes": []}], "services": []}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		for _, n := range d.Networks {
			if _, err := n.Prefix(); err != nil {
				t.Fatalf("accepted network %s without a prefix: %v", n.ID, err)
			}
			for _, r := range n.Routes {
				if _, err := r.Via(); err != nil {
					t.Fatalf("accepted route without a gateway: %v", err)
				}
			}
		}
		for _, l := range d.Links {
			if l.Type == LinkPhy && l.HardwareAddr() == nil {
				t.Fatalf("accepted phy %s without a mac", l.ID)
			}
		}
	})
}
