package render

import (
	"metalsync.dev/metalsync/schema"
)

// topology is one network shape every test walks: documents, ISOs, the
// real cloud-init readers and the fuzz seed corpus.
type topology struct {
	name string
	node Node
	// knownMACs is the machine's NICs (MAC -> kernel name) that cloud-init
	// would find on the running system; config drives name NICs by it.
	knownMACs map[string]string
}

func ptr[T any](v T) *T { return &v }

func topologies() []topology {
	return []topology{
		{
			name: "single-nic-ipv4",
			node: Node{
				Name:       "r1-n01",
				PublicKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG2RbP9mB6jNaQ7tVp0Vn2yBqHkR4t3Y8uS5fW1xZ0aB ops@example.com"},
				Network: &schema.Network{
					Links:  []schema.Link{{Name: "eno1", Type: "phy", MAC: "52:54:00:01:00:01", MTU: 1500, Addresses: []string{"192.0.2.10/24"}}},
					Routes: []schema.Route{{To: "0.0.0.0/0", Via: "192.0.2.1"}},
				},
			},
			knownMACs: map[string]string{"52:54:00:01:00:01": "ens3"},
		},
		{
			name: "ipv6-only",
			node: Node{
				Name: "r1-n02",
				Network: &schema.Network{
					Links:  []schema.Link{{Name: "eno1", Type: "phy", MAC: "52:54:00:02:00:01", Addresses: []string{"2001:db8:2::10/64"}}},
					Routes: []schema.Route{{To: "::/0", Via: "2001:db8:2::1"}},
					DNS:    &schema.DNS{Servers: []string{"2001:db8:2::53"}},
				},
			},
			knownMACs: map[string]string{"52:54:00:02:00:01": "ens3"},
		},
		{
			name: "dual-stack",
			node: Node{
				Name:     "r1-n03",
				UserData: []byte("#cloud-config\npackages: [chrony]\n"),
				Network: &schema.Network{
					Links: []schema.Link{{Name: "eno1", Type: "phy", MAC: "52:54:00:03:00:01", Addresses: []string{"198.51.100.20/25", "2001:db8:3::20/64"}}},
					Routes: []schema.Route{
						{To: "0.0.0.0/0", Via: "198.51.100.1"},
						{To: "::/0", Via: "2001:db8:3::1"},
					},
				},
			},
			knownMACs: map[string]string{"52:54:00:03:00:01": "ens3"},
		},
		{
			name: "bond-vlan",
			node: Node{
				Name:  "r2-n04",
				Agent: &Agent{URL: "https://[2001:db8::100]:8443/agent/v1", Token: "tok-0123456789abcdef"},
				Network: &schema.Network{
					Links: []schema.Link{
						{Name: "eno1", Type: "phy", MAC: "10:20:30:40:50:59", MTU: 9000},
						{Name: "eno2", Type: "phy", MAC: "10:20:30:40:50:5a", MTU: 9000},
						{Name: "bond0", Type: "bond", Mode: "802.3ad", Members: []string{"eno1", "eno2"}, MTU: 9000},
						{Name: "vlan100", Type: "vlan", ID: 100, Parent: "bond0", MTU: 1500, Addresses: []string{"10.100.0.40/24", "2001:db8:100::40/64"}},
					},
					Routes: []schema.Route{
						{To: "0.0.0.0/0", Via: "10.100.0.1"},
						{To: "::/0", Via: "2001:db8:100::1"},
					},
					DNS: &schema.DNS{Servers: []string{"10.100.0.53"}, Search: []string{"r2.example.com"}},
				},
			},
			knownMACs: map[string]string{"10:20:30:40:50:59": "enp1s0f0", "10:20:30:40:50:5a": "enp1s0f1"},
		},
		{
			name: "several-routes",
			node: Node{
				Name: "r1-n05",
				Network: &schema.Network{
					Links: []schema.Link{
						{Name: "eno1", Type: "phy", MAC: "52:54:00:05:00:01", Addresses: []string{"192.0.2.50/24"}},
						{Name: "eno2", Type: "phy", MAC: "52:54:00:05:00:02", Addresses: []string{"172.16.5.50/16", "2001:db8:5::50/64"}},
					},
					Routes: []schema.Route{
						{To: "0.0.0.0/0", Via: "192.0.2.1", Metric: 100},
						{To: "10.20.0.0/16", Via: "172.16.0.1", Metric: 200},
						{To: "192.168.0.0/16", Via: "172.16.0.254"},
						{To: "2001:db8:ff::/48", Via: "2001:db8:5::1", Metric: 50},
					},
				},
			},
			knownMACs: map[string]string{"52:54:00:05:00:01": "ens3", "52:54:00:05:00:02": "ens4"},
		},
		{
			name: "dns",
			node: Node{
				Name: "r1-n06",
				Network: &schema.Network{
					Links:  []schema.Link{{Name: "eno1", Type: "phy", MAC: "52:54:00:06:00:01", Addresses: []string{"192.0.2.60/24", "2001:db8:6::60/64"}}},
					Routes: []schema.Route{{To: "0.0.0.0/0", Via: "192.0.2.1"}},
					DNS: &schema.DNS{
						Servers: []string{"192.0.2.53", "2001:db8:6::53"},
						Search:  []string{"example.com", "lab.example.com"},
					},
				},
			},
			knownMACs: map[string]string{"52:54:00:06:00:01": "ens3"},
		},
		{
			// Two subnets on one NIC, a route through each: the second
			// address's route must stay on the second address.
			name: "two-ipv4-addresses",
			node: Node{
				Name: "r1-n08",
				Network: &schema.Network{
					Links: []schema.Link{{Name: "eno1", Type: "phy", MAC: "52:54:00:08:00:01", Addresses: []string{"192.0.2.80/24", "198.51.100.80/24"}}},
					Routes: []schema.Route{
						{To: "0.0.0.0/0", Via: "192.0.2.1"},
						{To: "203.0.113.0/24", Via: "198.51.100.1"},
					},
				},
			},
			knownMACs: map[string]string{"52:54:00:08:00:01": "ens3"},
		},
		{
			name: "ipv4-route-metric",
			node: Node{
				Name: "r1-n09",
				Network: &schema.Network{
					Links: []schema.Link{{Name: "eno1", Type: "phy", MAC: "52:54:00:09:00:01", Addresses: []string{"10.9.0.90/24"}}},
					Routes: []schema.Route{
						{To: "0.0.0.0/0", Via: "10.9.0.1", Metric: 100},
						{To: "192.168.50.0/24", Via: "10.9.0.254", Metric: 300},
					},
				},
			},
			knownMACs: map[string]string{"52:54:00:09:00:01": "ens3"},
		},
		{
			// The IPv6 default route on an interface whose first address
			// is IPv4, with a metric.
			name: "ipv6-default-route",
			node: Node{
				Name: "r1-n10",
				Network: &schema.Network{
					Links: []schema.Link{
						{Name: "eno1", Type: "phy", MAC: "52:54:00:10:00:01", Addresses: []string{"192.0.2.100/24"}},
						{Name: "eno2", Type: "phy", MAC: "52:54:00:10:00:02", Addresses: []string{"172.16.10.100/24", "2001:db8:10::100/64"}},
					},
					Routes: []schema.Route{
						{To: "0.0.0.0/0", Via: "192.0.2.1"},
						{To: "::/0", Via: "2001:db8:10::1", Metric: 200},
					},
				},
			},
			knownMACs: map[string]string{"52:54:00:10:00:01": "ens3", "52:54:00:10:00:02": "ens4"},
		},
		{
			name: "dhcp",
			node: Node{
				Name:    "r1-n07",
				Network: &schema.Network{DHCP: ptr(true)},
			},
			knownMACs: map[string]string{},
		},
	}
}
