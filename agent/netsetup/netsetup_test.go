package netsetup

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"metalsync.dev/metalsync/render/networkdata"
)

// inNewNetns moves the test's goroutine, locked to its thread, into a
// fresh network namespace. The thread is never unlocked, so the runtime
// retires it (and the namespace dies) when the test ends.
func inNewNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("network namespace tests need root in CI")
		}
		t.Skip("needs root for a network namespace")
	}
	runtime.LockOSThread()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
}

// veth makes a pair: name (the node's NIC, with mac) and its peer, up, so
// the NIC gets carrier and IPv6 DAD runs as on a wire.
func veth(t *testing.T, name, mac, peer string) {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.HardwareAddr = name, hw
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: peer}); err != nil {
		t.Fatalf("veth %s: %v", name, err)
	}
	p, err := netlink.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(p); err != nil {
		t.Fatal(err)
	}
}

func parse(t *testing.T, s string) *networkdata.Data {
	t.Helper()
	d, err := networkdata.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readSysctl(t *testing.T, ifname, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv6/conf", ifname, key))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

type route struct {
	Dst, Gw string
	Metric  int
}

func routesOf(t *testing.T, l netlink.Link, family int) []route {
	t.Helper()
	rs, err := netlink.RouteList(l, family)
	if err != nil {
		t.Fatal(err)
	}
	var out []route
	for _, r := range rs {
		if r.Gw == nil {
			continue // connected and link-local routes
		}
		dst := "default"
		if r.Dst != nil && !(r.Dst.IP.IsUnspecified() && strings.HasSuffix(r.Dst.String(), "/0")) {
			dst = r.Dst.String()
		}
		out = append(out, route{dst, r.Gw.String(), r.Priority})
	}
	slices.SortFunc(out, func(a, b route) int { return strings.Compare(a.Dst+a.Gw, b.Dst+b.Gw) })
	return out
}

func addrsOf(t *testing.T, l netlink.Link) (addrs []string, tentative bool) {
	t.Helper()
	as, err := netlink.AddrList(l, unix.AF_UNSPEC)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		addrs = append(addrs, a.IPNet.String())
		tentative = tentative || a.Flags&unix.IFA_F_TENTATIVE != 0
	}
	slices.Sort(addrs)
	return addrs, tentative
}

const singleNIC = `{
  "links": [{"id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:aa:00:01", "mtu": 9000}],
  "networks": [
    {"id": "network0", "type": "ipv4", "link": "eno1", "ip_address": "10.0.2.15", "netmask": "255.255.255.0",
     "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"},
                {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.0.2.3", "metric": 100}]},
    {"id": "network1", "type": "ipv6", "link": "eno1", "ip_address": "2001:db8::15", "netmask": "ffff:ffff:ffff:ffff::",
     "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8::1"}]}
  ],
  "services": [{"type": "dns", "address": "10.0.2.3", "search": ["example.com"]}, {"type": "dns", "address": "2001:db8::53"}]
}`

// TestApplySingleNIC applies addresses of both families, routes and DNS
// to a NIC found by MAC (its kernel name is something else), reads them
// back, and applies again.
func TestApplySingleNIC(t *testing.T) {
	inNewNetns(t)
	veth(t, "ens3", "52:54:00:aa:00:01", "peer0")
	d := parse(t, singleNIC)
	resolv := filepath.Join(t.TempDir(), "etc", "resolv.conf")
	for pass := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := Apply(ctx, d, Options{ResolvConf: resolv, Poll: 10 * time.Millisecond})
		cancel()
		if err != nil {
			t.Fatalf("Apply pass %d: %v", pass, err)
		}
	}
	l, err := netlink.LinkByName("ens3")
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().MTU != 9000 || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("ens3: mtu %d flags %v, want 9000 and up", l.Attrs().MTU, l.Attrs().Flags)
	}
	addrs, tentative := addrsOf(t, l)
	if diff := cmp.Diff([]string{"10.0.2.15/24", "2001:db8::15/64"}, addrs); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	if tentative {
		t.Errorf("Apply returned with a tentative IPv6 address")
	}
	want4 := []route{{"192.168.0.0/16", "10.0.2.3", 100}, {"default", "10.0.2.2", 0}}
	if diff := cmp.Diff(want4, routesOf(t, l, unix.AF_INET)); diff != "" {
		t.Errorf("ipv4 routes (-want +got):\n%s", diff)
	}
	got6 := routesOf(t, l, unix.AF_INET6)
	if len(got6) != 1 || got6[0].Dst != "default" || got6[0].Gw != "2001:db8::1" {
		t.Errorf("ipv6 routes = %+v, want default via 2001:db8::1", got6)
	}
	for _, key := range []string{"accept_ra", "autoconf"} {
		if got := readSysctl(t, "ens3", key); got != "0" {
			t.Errorf("%s = %s, want 0", key, got)
		}
	}
	b, err := os.ReadFile(resolv)
	if err != nil {
		t.Fatal(err)
	}
	want := "# written by metalsync-agent from network_data.json\nnameserver 10.0.2.3\nnameserver 2001:db8::53\nsearch example.com\n"
	if string(b) != want {
		t.Errorf("resolv.conf = %q, want %q", b, want)
	}
}

// TestApplyBondVLAN builds a bond of two NICs with a VLAN on top. The
// kernel must have bonding and 8021q.
func TestApplyBondVLAN(t *testing.T) {
	inNewNetns(t)
	probe := netlink.NewLinkBond(netlink.LinkAttrs{Name: "probe0"})
	if err := netlink.LinkAdd(probe); err != nil {
		// A kernel feature, not a tool the test run can install: CI
		// containers share a host kernel that may lack bonding. The
		// agent's own kernel has it (the VM tests boot it).
		t.Skipf("kernel without bonding (not installable from here): %v", err)
	}
	netlink.LinkDel(probe)
	veth(t, "ens3", "52:54:00:bb:00:01", "peer0")
	veth(t, "ens4", "52:54:00:bb:00:02", "peer1")
	d := parse(t, `{
  "links": [
    {"id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:bb:00:01", "mtu": 9000},
    {"id": "eno2", "type": "phy", "ethernet_mac_address": "52:54:00:bb:00:02", "mtu": 9000},
    {"id": "bond0", "type": "bond", "ethernet_mac_address": "52:54:00:bb:00:01", "mtu": 9000,
     "bond_links": ["eno1", "eno2"], "bond_mode": "active-backup", "bond_miimon": 100},
    {"id": "vlan100", "type": "vlan", "mtu": 1500, "vlan_link": "bond0", "vlan_id": 100, "vlan_mac_address": "52:54:00:bb:00:01"}
  ],
  "networks": [{"id": "network0", "type": "ipv4", "link": "vlan100", "ip_address": "10.100.0.40", "netmask": "255.255.255.0",
     "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.100.0.1"}]}],
  "services": []
}`)
	for pass := range 2 {
		if err := Apply(context.Background(), d, Options{ResolvConf: filepath.Join(t.TempDir(), "r"), Poll: 10 * time.Millisecond}); err != nil {
			t.Fatalf("Apply pass %d: %v", pass, err)
		}
	}
	bond, err := netlink.LinkByName("bond0")
	if err != nil {
		t.Fatal(err)
	}
	b, ok := bond.(*netlink.Bond)
	if !ok || b.Mode != netlink.BOND_MODE_ACTIVE_BACKUP || b.Miimon != 100 || b.MTU != 9000 {
		t.Errorf("bond0 = %T mode %v miimon %d mtu %d", bond, b.Mode, b.Miimon, b.MTU)
	}
	for _, m := range []string{"ens3", "ens4"} {
		l, err := netlink.LinkByName(m)
		if err != nil || l.Attrs().MasterIndex != bond.Attrs().Index {
			t.Errorf("%s is not in bond0: %v", m, err)
		}
	}
	vl, err := netlink.LinkByName("vlan100")
	if err != nil {
		t.Fatal(err)
	}
	v, ok := vl.(*netlink.Vlan)
	if !ok || v.VlanId != 100 || v.ParentIndex != bond.Attrs().Index || v.MTU != 1500 {
		t.Errorf("vlan100 = %+v", vl.Attrs())
	}
	if addrs, _ := addrsOf(t, vl); !slices.Equal(addrs, []string{"10.100.0.40/24"}) {
		t.Errorf("vlan100 addresses = %v", addrs)
	}
	if got := routesOf(t, vl, unix.AF_INET); !slices.Equal(got, []route{{"default", "10.100.0.1", 0}}) {
		t.Errorf("vlan100 routes = %v", got)
	}
}

// TestApplyDuplicateIPv6 puts our address on the far end first: DAD fails
// and Apply says so instead of waiting.
func TestApplyDuplicateIPv6(t *testing.T) {
	inNewNetns(t)
	veth(t, "ens3", "52:54:00:cc:00:01", "peer0")
	peer, _ := netlink.LinkByName("peer0")
	pre := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("2001:db8::15"), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrAdd(peer, pre); err != nil {
		t.Fatal(err)
	}
	d := parse(t, `{"links": [{"id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:cc:00:01"}],
 "networks": [{"id": "network0", "type": "ipv6", "link": "eno1", "ip_address": "2001:db8::15", "netmask": "ffff:ffff:ffff:ffff::", "routes": []}],
 "services": []}`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Apply(ctx, d, Options{ResolvConf: filepath.Join(t.TempDir(), "r"), Poll: 10 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "network network0: address 2001:db8::15 is in use by another host") {
		t.Fatalf("Apply = %v, want a DAD failure", err)
	}
}

func TestApplyMissingNIC(t *testing.T) {
	inNewNetns(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Apply(ctx, parse(t, singleNIC), Options{})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "no NIC with the mac of eno1 (52:54:00:aa:00:01)") {
		t.Errorf("Apply = %v", err)
	}
}

type fakeLink struct {
	netlink.LinkAttrs
	typ string
}

func (f *fakeLink) Attrs() *netlink.LinkAttrs { return &f.LinkAttrs }
func (f *fakeLink) Type() string              { return f.typ }

func TestMatchPhys(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	link := func(name, typ, cur, perm string) netlink.Link {
		l := &fakeLink{typ: typ}
		l.Name, l.HardwareAddr = name, mac(cur)
		if perm != "" {
			l.PermHWAddr = mac(perm)
		}
		return l
	}
	d := parse(t, `{"links": [
  {"id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"},
  {"id": "eno2", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:02"},
  {"id": "eno3", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:03"}], "networks": [], "services": []}`)
	all := []netlink.Link{
		link("bond0", "bond", "52:54:00:00:00:01", ""),
		// enslaved: the bond gave it eno1's address; its own is permanent.
		link("ens4", "device", "52:54:00:00:00:01", "52:54:00:00:00:02"),
		link("ens3", "device", "52:54:00:00:00:01", "52:54:00:00:00:01"),
	}
	found, missing := matchPhys(d, all)
	got := map[string]string{}
	for id, l := range found {
		got[id] = l.Attrs().Name
	}
	if diff := cmp.Diff(map[string]string{"eno1": "ens3", "eno2": "ens4"}, got); diff != "" {
		t.Errorf("found (-want +got):\n%s", diff)
	}
	if !slices.Equal(missing, []string{"eno3 (52:54:00:00:00:03)"}) {
		t.Errorf("missing = %v", missing)
	}
}
