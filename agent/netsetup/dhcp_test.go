package netsetup

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"metalsync.dev/metalsync/render/networkdata"
)

// dhcpServer moves ifname into a namespace of its own, the segment's
// far side (in one namespace, the server's address would be local to the
// node and its replies martians), gives it 192.0.2.1/24 and answers
// DHCPv4 there with broadcast replies, as a server on the node's segment
// does: an OFFER and then an ACK of 192.0.2.10/24, router 192.0.2.1, name
// server 192.0.2.53. Names in silent move there too, and nothing answers
// on them.
func dhcpServer(t *testing.T, ifname string, silent ...string) {
	t.Helper()
	node, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	far, err := netns.New() // and this thread is in it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { far.Close() })
	if err := netns.Set(node); err != nil {
		t.Fatal(err)
	}
	for _, name := range append([]string{ifname}, silent...) {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetNsFd(l, int(far)); err != nil {
			t.Fatal(err)
		}
	}
	if err := netns.Set(far); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(node); err != nil {
			t.Fatal(err)
		}
	}()
	for _, name := range append([]string{ifname}, silent...) {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(192, 0, 2, 1), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "dhcp-server")
	defer f.Close()
	for _, o := range []int{unix.SO_REUSEADDR, unix.SO_BROADCAST} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.BindToDevice(fd, ifname); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 67}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			req := buf[:n]
			if n < 244 {
				continue
			}
			var msgType byte
			for o := req[240:]; len(o) >= 2 && o[0] != 255; o = o[2+int(o[1]):] {
				if len(o) < 2+int(o[1]) {
					break
				}
				if o[0] == 53 && o[1] == 1 {
					msgType = o[2]
				}
			}
			reply := make([]byte, 240, 300)
			reply[0], reply[1], reply[2] = 2, 1, 6
			copy(reply[4:8], req[4:8])     // xid
			copy(reply[10:12], req[10:12]) // flags
			copy(reply[16:20], []byte{192, 0, 2, 10})
			copy(reply[28:34], req[28:34]) // chaddr
			binary.BigEndian.PutUint32(reply[236:], 0x63825363)
			switch msgType {
			case 1:
				reply = append(reply, 53, 1, 2)
			case 3:
				reply = append(reply, 53, 1, 5)
			default:
				continue
			}
			reply = append(reply, 54, 4, 192, 0, 2, 1, 1, 4, 255, 255, 255, 0, 3, 4, 192, 0, 2, 1, 6, 4, 192, 0, 2, 53,
				51, 4, 0, 0, 14, 16, 255)
			conn.WriteTo(reply, &net.UDPAddr{IP: net.IPv4bcast, Port: 68})
		}
	}()
}

// TestDHCP: a node with two NICs, a DHCP server on one: the lease is
// configured on that NIC (address, default route, name server) and the
// other NIC is left without an address.
func TestDHCP(t *testing.T) {
	inNewNetns(t)
	veth(t, "eth0", "52:54:00:00:00:01", "srv0")
	veth(t, "eth1", "52:54:00:00:00:02", "silent1")
	dhcpServer(t, "srv0", "silent1")
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // bounds a hung test; asserts nothing about speed
	defer cancel()
	if err := DHCP(ctx, Options{ResolvConf: resolv, Poll: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, name := range []string{"eth0", "eth1"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := netlink.AddrList(l, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		got[name] = []string{}
		for _, a := range addrs {
			got[name] = append(got[name], a.IPNet.String())
		}
	}
	if diff := cmp.Diff(map[string][]string{"eth0": {"192.0.2.10/24"}, "eth1": {}}, got); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	routes, err := netlink.RouteGet(net.IPv4(198, 51, 100, 7))
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 || !routes[0].Gw.Equal(net.IPv4(192, 0, 2, 1)) {
		t.Errorf("route to 198.51.100.7: %+v, want via 192.0.2.1", routes)
	}
	b, err := os.ReadFile(resolv)
	if err != nil {
		t.Fatal(err)
	}
	if want := "nameserver 192.0.2.53\n"; !strings.Contains(string(b), want) {
		t.Errorf("resolv.conf %q, want %q in it", b, want)
	}
}

// TestDHCPNoServer: with no server, DHCP ends with its context and names
// the NICs it asked on.
func TestDHCPNoServer(t *testing.T) {
	inNewNetns(t)
	veth(t, "eth0", "52:54:00:00:00:01", "silent0")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := DHCP(ctx, Options{ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("DHCP = %v, want context.Canceled", err)
	}
}

func TestOnDHCP(t *testing.T) {
	tests := []struct {
		name string
		d    *networkdata.Data
		want bool
	}{
		{"none", nil, false},
		{"empty", &networkdata.Data{}, true},
		{"static", &networkdata.Data{Links: []networkdata.Link{{ID: "a", Type: networkdata.LinkPhy}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OnDHCP(tt.d); got != tt.want {
				t.Errorf("OnDHCP = %v, want %v", got, tt.want)
			}
		})
	}
}
