package netsetup

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"metalsync.dev/metalsync/agent/dhcp4"
	"metalsync.dev/metalsync/render/networkdata"
)

// OnDHCP reports whether d is the network of a node on DHCP: the media of
// such a node carries network_data.json without links (the daemon renders
// no static network for it), and the agent must ask for one itself.
func OnDHCP(d *networkdata.Data) bool {
	return d != nil && len(d.Links) == 0 && len(d.Networks) == 0
}

// DHCP sets up the network of a node on DHCP: it brings every Ethernet
// NIC up, asks for a DHCPv4 lease on all of them at once, and configures
// the first lease it gets (address, default route, name servers) on its
// NIC. NICs that appear meanwhile (drivers load asynchronously) are asked
// too. The lease is not renewed: the agent lives for one deployment. It
// returns once a lease is configured, or with ctx's error.
func DHCP(ctx context.Context, opts Options) error {
	opts.defaults()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel: deferred calls run last first
	defer cancel()
	type leased struct {
		link  netlink.Link
		lease dhcp4.Lease
	}
	leases := make(chan leased, 1)
	asked := map[int]string{} // link index -> name
	t := time.NewTicker(opts.Poll)
	defer t.Stop()
	for {
		all, err := netlink.LinkList()
		if err != nil {
			return fmt.Errorf("network: dhcp: list links: %w", err)
		}
		for _, l := range all {
			a := l.Attrs()
			if _, ok := asked[a.Index]; ok || !ethernetNIC(l) {
				continue
			}
			asked[a.Index] = a.Name
			if err := noAutoconf(opts.ProcSys, a.Name); err != nil {
				return fmt.Errorf("network: dhcp: %s: %w", a.Name, err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("network: dhcp: %s: up: %w", a.Name, err)
			}
			// The socket is opened here, in the caller's network
			// namespace: the goroutine may run on another thread.
			conn, err := dhcpConn(a.Name)
			if err != nil {
				opts.Log.Warn("no dhcp on the NIC", "ifname", a.Name, "err", err)
				continue
			}
			opts.Log.Info("asking for a dhcp lease", "ifname", a.Name, "mac", a.HardwareAddr.String())
			wg.Go(func() {
				defer conn.Close()
				lease, err := askLease(ctx, conn, a.Name, a.HardwareAddr, opts)
				if err != nil {
					return // ctx ended
				}
				select {
				case leases <- leased{l, lease}:
				default: // another NIC got one first
				}
			})
		}
		select {
		case got := <-leases:
			cancel()
			wg.Wait()
			return configureLease(got.link, got.lease, opts)
		case <-ctx.Done():
			names := slices.Sorted(maps.Values(asked))
			if len(names) == 0 {
				return fmt.Errorf("network: dhcp: no ethernet NIC: %w", ctx.Err())
			}
			return fmt.Errorf("network: dhcp: no lease on %s: %w", strings.Join(names, ", "), ctx.Err())
		case <-t.C:
		}
	}
}

// ethernetNIC reports whether l is a NIC to ask DHCP on: an Ethernet
// device, or a veth (a container's NIC, and the tests'), not enslaved to
// a bond or bridge.
func ethernetNIC(l netlink.Link) bool {
	a := l.Attrs()
	return a.EncapType == "ether" && len(a.HardwareAddr) == 6 && a.MasterIndex == 0 && a.Flags&net.FlagLoopback == 0 &&
		(l.Type() == "device" || l.Type() == "veth")
}

// askLease asks on one NIC until it gets a lease or ctx ends; a refusal
// (NAK) is tried again a little later.
func askLease(ctx context.Context, conn net.PacketConn, ifname string, mac net.HardwareAddr, opts Options) (dhcp4.Lease, error) {
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcp4.ServerPort}
	for {
		lease, err := dhcp4.Exchange(ctx, conn, bcast, mac)
		if err == nil {
			return lease, nil
		}
		if ctx.Err() != nil {
			return dhcp4.Lease{}, ctx.Err()
		}
		opts.Log.Warn("dhcp", "ifname", ifname, "err", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return dhcp4.Lease{}, ctx.Err()
		case <-t.C:
		}
	}
}

// dhcpConn opens the client port on one NIC. Bound to the NIC, sockets
// of several NICs share the port; broadcasts reach it though the NIC has
// no address yet.
func dhcpConn(ifname string) (net.PacketConn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("dhcp socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "dhcp-"+ifname)
	defer f.Close() // FilePacketConn holds its own copy
	for _, o := range []int{unix.SO_REUSEADDR, unix.SO_BROADCAST} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 1); err != nil {
			return nil, fmt.Errorf("dhcp socket: %w", err)
		}
	}
	if err := unix.BindToDevice(fd, ifname); err != nil {
		return nil, fmt.Errorf("dhcp socket: bind to %s: %w", ifname, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: dhcp4.ClientPort}); err != nil {
		return nil, fmt.Errorf("dhcp socket: bind port %d: %w", dhcp4.ClientPort, err)
	}
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("dhcp socket: %w", err)
	}
	return c, nil
}

// configureLease puts the lease's address on link, its first router as
// the default route and its name servers in resolv.conf.
func configureLease(link netlink.Link, l dhcp4.Lease, opts Options) error {
	name := link.Attrs().Name
	a := &netlink.Addr{IPNet: &net.IPNet{IP: l.Addr.Addr().AsSlice(), Mask: net.CIDRMask(l.Addr.Bits(), 32)}}
	if err := netlink.AddrReplace(link, a); err != nil {
		return fmt.Errorf("network: dhcp: %s: address %s: %w", name, l.Addr, err)
	}
	var router string
	if len(l.Routers) > 0 {
		gw := l.Routers[0]
		rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
			Gw: gw.AsSlice(), Family: unix.AF_INET}
		if err := netlink.RouteReplace(rt); err != nil {
			return fmt.Errorf("network: dhcp: %s: default route via %s: %w", name, gw, err)
		}
		router = gw.String()
	}
	var dns []networkdata.Service
	for _, s := range l.DNS {
		dns = append(dns, networkdata.Service{Type: networkdata.ServiceDNS, Address: s.String()})
	}
	if err := writeResolvConf(opts.ResolvConf, dns); err != nil {
		return err
	}
	opts.Log.Info("dhcp lease", "ifname", name, "address", l.Addr.String(), "router", router, "server", l.Server.String(), "lease", l.Time)
	return nil
}

// Setup applies d: the static network it describes, or DHCP when it
// describes none (OnDHCP).
func Setup(ctx context.Context, d *networkdata.Data, opts Options) error {
	if OnDHCP(d) {
		return DHCP(ctx, opts)
	}
	return Apply(ctx, d, opts)
}
