package render

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"metalsync.dev/metalsync/schema"
)

// renderedRoute is one route as a cloud-init renderer wrote it.
type renderedRoute struct {
	Iface  string
	To     string // a prefix, default routes as 0.0.0.0/0 and ::/0
	Via    string
	Metric int
}

func (r renderedRoute) String() string {
	return fmt.Sprintf("%s: %s via %s metric %d", r.Iface, r.To, r.Via, r.Metric)
}

func sortRoutes(rs []renderedRoute) []renderedRoute {
	slices.SortFunc(rs, func(a, b renderedRoute) int { return strings.Compare(a.String(), b.String()) })
	return rs
}

// checkRenderedNetwork asserts that each of cloud-init's renderers (its
// output in rendered, by path under the driver's output directory) wrote
// every route of the inventory, on the interface whose address reaches the
// gateway, with its prefix and metric, and nothing else; and that netplan
// turns router advertisements off on every link with a static IPv6
// address. The expected routes come from the inventory, not from the
// media, so a renderer that loses or changes a route fails whatever the
// goldens say.
func checkRenderedNetwork(t *testing.T, f Format, topo topology, rendered map[string]string) {
	t.Helper()
	n := topo.node.Network
	if !hasNetwork(n) {
		return
	}
	ifname := renderedNames(t, f, topo)
	var want []renderedRoute
	v6 := map[string]bool{} // rendered interface names with an IPv6 address
	for _, l := range n.Links {
		for _, a := range l.Addresses {
			if netip.MustParsePrefix(a).Addr().Is6() {
				v6[ifname[l.Name]] = true
			}
		}
	}
	for _, r := range n.Routes {
		via := netip.MustParseAddr(r.Via)
		link := ""
	find:
		for _, l := range n.Links {
			for _, a := range l.Addresses {
				if p := netip.MustParsePrefix(a); p.Addr().Is4() == via.Is4() && p.Contains(via) {
					link = l.Name
					break find
				}
			}
		}
		if link == "" {
			t.Fatalf("topology %s: no link reaches gateway %s", topo.name, via)
		}
		want = append(want, renderedRoute{Iface: ifname[link], To: netip.MustParsePrefix(r.To).String(), Via: via.String(), Metric: r.Metric})
	}
	sortRoutes(want)

	got := map[string][]renderedRoute{
		"netplan":  netplanRoutes(t, rendered["netplan/etc/netplan/50-cloud-init.yaml"], v6),
		"networkd": networkdRoutes(t, rendered),
		"eni":      eniRoutes(t, rendered["eni/etc/network/interfaces"], v6),
	}
	for _, name := range []string{"eni", "netplan", "networkd"} {
		if diff := cmp.Diff(want, sortRoutes(got[name])); diff != "" {
			t.Errorf("%s renderer: routes differ from the inventory's (-want +got):\n%s", name, diff)
		}
	}
}

// renderedNames maps link names to the interface names cloud-init gives
// them: NoCloud keeps the inventory's; from a config drive NICs are named
// by MAC, bonds bond0, bond1… in link order and vlans <lower>.<vid>.
func renderedNames(t *testing.T, f Format, topo topology) map[string]string {
	t.Helper()
	names := map[string]string{}
	links := topo.node.Network.Links
	if f == NoCloud {
		for _, l := range links {
			names[l.Name] = l.Name
		}
		return names
	}
	bonds := 0
	for _, typ := range []string{schema.LinkPhy, schema.LinkBond, schema.LinkVLAN} {
		for _, l := range links {
			switch {
			case l.Type != typ:
			case typ == schema.LinkPhy:
				names[l.Name] = topo.knownMACs[strings.ToLower(l.MAC)]
			case typ == schema.LinkBond:
				names[l.Name] = fmt.Sprintf("bond%d", bonds)
				bonds++
			default:
				names[l.Name] = fmt.Sprintf("%s.%d", names[l.Parent], l.ID)
			}
		}
	}
	return names
}

func netplanRoutes(t *testing.T, doc string, v6 map[string]bool) []renderedRoute {
	t.Helper()
	type iface struct {
		AcceptRA *bool `json:"accept-ra"`
		Routes   []struct {
			To     string `json:"to"`
			Via    string `json:"via"`
			Metric int    `json:"metric"`
		} `json:"routes"`
	}
	var np struct {
		Network struct {
			Ethernets map[string]iface `json:"ethernets"`
			Bonds     map[string]iface `json:"bonds"`
			VLANs     map[string]iface `json:"vlans"`
		} `json:"network"`
	}
	if err := yaml.Unmarshal([]byte(doc), &np); err != nil {
		t.Fatalf("netplan output: %v\n%s", err, doc)
	}
	var out []renderedRoute
	for _, sec := range []map[string]iface{np.Network.Ethernets, np.Network.Bonds, np.Network.VLANs} {
		for name, i := range sec {
			if v6[name] && (i.AcceptRA == nil || *i.AcceptRA) {
				t.Errorf("netplan renderer: %s has a static IPv6 address but accepts router advertisements", name)
			}
			for _, r := range i.Routes {
				out = append(out, renderedRoute{Iface: name, To: canonPrefix(t, r.To), Via: r.Via, Metric: r.Metric})
			}
		}
	}
	return out
}

// networkdRoutes reads the [Route] sections of every .network file.
// cloud-init 22.4's networkd renderer writes IPv6AcceptRA only for DHCPv6
// links, whatever the input says, so it is not checked here.
func networkdRoutes(t *testing.T, rendered map[string]string) []renderedRoute {
	t.Helper()
	var out []renderedRoute
	for p, data := range rendered {
		if !strings.HasPrefix(p, "networkd/") || path.Ext(p) != ".network" {
			continue
		}
		name := ""
		var routes []renderedRoute
		section := ""
		for _, line := range strings.Split(data, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			if strings.HasPrefix(line, "[") {
				section = line
				if section == "[Route]" {
					routes = append(routes, renderedRoute{})
				}
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q", p, line)
			}
			switch {
			case section == "[Match]" && k == "Name":
				name = v
			case section == "[Route]":
				r := &routes[len(routes)-1]
				switch k {
				case "Destination":
					r.To = canonPrefix(t, v)
				case "Gateway":
					r.Via = v
				case "Metric":
					r.Metric = atoi(t, v)
				default:
					t.Errorf("%s: unexpected route key %s", p, k)
				}
			}
		}
		for _, r := range routes {
			r.Iface = name
			out = append(out, r)
		}
	}
	return out
}

// eniRoutes reads the post-up route commands of /etc/network/interfaces.
// ifupdown runs them when the stanza they are in comes up, so each must
// be in a stanza of its family whose address reaches the gateway. It also
// checks accept_ra 0 where cloud-init can write it: on an interface whose
// first stanza is IPv6 (on later stanzas it drops interface options).
func eniRoutes(t *testing.T, doc string, v6 map[string]bool) []renderedRoute {
	t.Helper()
	var out []renderedRoute
	type stanza struct {
		name, family string
		addr         netip.Prefix
		first        bool
		acceptRA0    bool
	}
	var cur *stanza
	seen := map[string]bool{}
	done := func() {
		if cur != nil && cur.first && cur.family == "inet6" && v6[cur.name] && !cur.acceptRA0 {
			t.Errorf("eni renderer: %s has a static IPv6 address but no accept_ra 0", cur.name)
		}
	}
	for _, line := range strings.Split(doc, "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0 || strings.HasPrefix(fields[0], "#"):
		case fields[0] == "iface":
			done()
			cur = &stanza{name: fields[1], family: fields[2], first: !seen[fields[1]]}
			seen[fields[1]] = true
		case cur == nil:
		case fields[0] == "address":
			cur.addr = mustPrefix(t, fields[1])
		case fields[0] == "accept_ra":
			cur.acceptRA0 = fields[1] == "0"
		case fields[0] == "post-up" && len(fields) > 2 && fields[1] == "route" && fields[2] == "add":
			r, family := parseRouteAdd(t, line, fields[3:])
			r.Iface = cur.name
			if family != cur.family {
				t.Errorf("eni renderer: %s route in an %s stanza of %s: %s", family, cur.family, cur.name, line)
			}
			if via := netip.MustParseAddr(r.Via); !cur.addr.Contains(via) {
				t.Errorf("eni renderer: route in the stanza of %s %s, which does not reach its gateway: %s", cur.name, cur.addr, line)
			}
			out = append(out, r)
		}
	}
	done()
	return out
}

// parseRouteAdd reads the arguments of net-tools' route add as cloud-init
// writes them.
func parseRouteAdd(t *testing.T, line string, args []string) (renderedRoute, string) {
	t.Helper()
	var r renderedRoute
	family := "inet"
	if len(args) >= 2 && args[0] == "-A" && args[1] == "inet6" {
		family, args = "inet6", args[2:]
	}
	for len(args) > 0 {
		switch a := args[0]; {
		case a == "||":
			args = nil
			continue
		case a == "default" && family == "inet":
			r.To = "0.0.0.0/0"
		case a == "default":
			r.To = "::/0"
		case (a == "-net" || a == "-host") && len(args) > 1:
			r.To, args = canonPrefix(t, args[1]), args[1:]
		case a == "gw" && len(args) > 1:
			r.Via, args = args[1], args[1:]
		case a == "metric" && len(args) > 1:
			r.Metric, args = atoi(t, args[1]), args[1:]
		case family == "inet6" && strings.Contains(a, "/"):
			r.To = canonPrefix(t, a)
		default:
			t.Fatalf("eni renderer: cannot read %q in %s", a, line)
		}
		args = args[1:]
	}
	if r.To == "" || r.Via == "" {
		t.Fatalf("eni renderer: route without destination or gateway: %s", line)
	}
	return r, family
}

func canonPrefix(t *testing.T, s string) string {
	t.Helper()
	return mustPrefix(t, s).String()
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatalf("rendered prefix %q: %v", s, err)
	}
	return p
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("rendered number %q: %v", s, err)
	}
	return n
}
