// Package netsetup applies a node's static network (network_data.json)
// with netlink: NICs found by MAC, bonds, VLANs, MTUs, IPv4 and IPv6
// addresses, routes and DNS. A node on DHCP gets network_data.json
// without links, and DHCP asks for a DHCPv4 lease on its NICs instead.
// There is no SLAAC and no DHCPv6: what the daemon rendered, or the one
// DHCPv4 lease, is all the network there is.
package netsetup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"metalsync.dev/metalsync/render/networkdata"
)

// ErrTentative means IPv6 duplicate address detection had not finished
// when the context ended (a link without carrier never finishes it).
var ErrTentative = errors.New("ipv6 address still tentative")

// Options tune Apply. Apply acts in the network namespace of the calling
// thread (netlink and /proc/sys/net both follow it).
type Options struct {
	// ResolvConf is where DNS goes (/etc/resolv.conf when empty); it is
	// written only when the data names a name server.
	ResolvConf string
	// ProcSys is /proc/sys when empty.
	ProcSys string
	// Poll is how often links and DAD are looked at again (200 ms when
	// zero).
	Poll time.Duration
	Log  *slog.Logger
}

func (o *Options) defaults() {
	if o.ResolvConf == "" {
		o.ResolvConf = "/etc/resolv.conf"
	}
	if o.ProcSys == "" {
		o.ProcSys = "/proc/sys"
	}
	if o.Poll == 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Apply configures d. It waits (bounded by ctx) for every phy's NIC to
// appear, since drivers load asynchronously, and for IPv6 DAD to finish.
// It is idempotent: a retry after a failure picks up what exists.
func Apply(ctx context.Context, d *networkdata.Data, opts Options) error {
	opts.defaults()
	if err := d.Validate(); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	phys, err := waitPhys(ctx, d, opts)
	if err != nil {
		return err
	}
	links := map[string]netlink.Link{} // by link id
	for _, l := range d.Links {
		var nl netlink.Link
		switch l.Type {
		case networkdata.LinkPhy:
			nl = phys[l.ID]
		case networkdata.LinkBond:
			nl, err = ensureBond(l, links)
		case networkdata.LinkVLAN:
			nl, err = ensureVLAN(l, links)
		}
		if err != nil {
			return fmt.Errorf("network: link %s: %w", l.ID, err)
		}
		name := nl.Attrs().Name
		if err := noAutoconf(opts.ProcSys, name); err != nil {
			return fmt.Errorf("network: link %s (%s): %w", l.ID, name, err)
		}
		if l.MTU != 0 && nl.Attrs().MTU != l.MTU {
			if err := netlink.LinkSetMTU(nl, l.MTU); err != nil {
				return fmt.Errorf("network: link %s (%s): mtu %d: %w", l.ID, name, l.MTU, err)
			}
		}
		if err := netlink.LinkSetUp(nl); err != nil {
			return fmt.Errorf("network: link %s (%s): up: %w", l.ID, name, err)
		}
		links[l.ID] = nl
		opts.Log.Info("link up", "link", l.ID, "ifname", name, "type", l.Type, "mac", l.HardwareAddr().String())
	}
	for _, n := range d.Networks {
		p, err := n.Prefix()
		if err != nil {
			return fmt.Errorf("network %s: %w", n.ID, err)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if err := netlink.AddrReplace(links[n.Link], a); err != nil {
			return fmt.Errorf("network %s: address %s: %w", n.ID, p, err)
		}
		opts.Log.Info("address set", "network", n.ID, "link", n.Link, "address", p.String())
	}
	for _, n := range d.Networks {
		for i, r := range n.Routes {
			if err := addRoute(links[n.Link], r); err != nil {
				return fmt.Errorf("network %s: route %d: %w", n.ID, i, err)
			}
		}
	}
	if err := writeResolvConf(opts.ResolvConf, d.Services); err != nil {
		return err
	}
	return waitDAD(ctx, d, links, opts)
}

// waitPhys finds every phy by MAC, looking again until all are there.
func waitPhys(ctx context.Context, d *networkdata.Data, opts Options) (map[string]netlink.Link, error) {
	t := time.NewTicker(opts.Poll)
	defer t.Stop()
	for {
		all, err := netlink.LinkList()
		if err != nil {
			return nil, fmt.Errorf("network: list links: %w", err)
		}
		found, missing := matchPhys(d, all)
		if len(missing) == 0 {
			return found, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("network: no NIC with the mac of %s: %w", strings.Join(missing, ", "), ctx.Err())
		case <-t.C:
		}
	}
}

// matchPhys maps each phy id to the NIC with its MAC. A NIC's permanent
// address wins over its current one: a bond gives its members its own.
// Bonds, VLANs and bridges are never phys.
func matchPhys(d *networkdata.Data, all []netlink.Link) (map[string]netlink.Link, []string) {
	byMAC := map[string]netlink.Link{}
	for _, nl := range all {
		switch nl.Type() {
		case "bond", "vlan", "bridge", "macvlan", "ipvlan":
			continue
		}
		a := nl.Attrs()
		mac := a.PermHWAddr
		if len(mac) == 0 {
			mac = a.HardwareAddr
		}
		if len(mac) == 6 {
			if _, dup := byMAC[mac.String()]; !dup || len(a.PermHWAddr) != 0 {
				byMAC[mac.String()] = nl
			}
		}
	}
	found := map[string]netlink.Link{}
	var missing []string
	for _, l := range d.Links {
		if l.Type != networkdata.LinkPhy {
			continue
		}
		if nl, ok := byMAC[l.HardwareAddr().String()]; ok {
			found[l.ID] = nl
		} else {
			missing = append(missing, l.ID+" ("+l.MAC+")")
		}
	}
	return found, missing
}

// ifname is the kernel name for a bond or VLAN: its id when that is a
// valid interface name, else fallback.
func ifname(id, fallback string) string {
	if len(id) == 0 || len(id) > unix.IFNAMSIZ-1 || strings.ContainsAny(id, "/: \t\n") || id == "." || id == ".." {
		return fallback
	}
	return id
}

func ensureBond(l networkdata.Link, links map[string]netlink.Link) (netlink.Link, error) {
	name := ifname(l.ID, "bond"+strconv.Itoa(len(links)))
	mode := netlink.StringToBondMode(l.BondMode)
	nl, err := netlink.LinkByName(name)
	if err == nil {
		b, ok := nl.(*netlink.Bond)
		if !ok {
			return nil, fmt.Errorf("%s exists and is a %s, not a bond", name, nl.Type())
		}
		// Loading the bonding module makes a bond0 of its own (mode
		// balance-rr); the mode of a bond cannot change while it has
		// members, so a bond that differs is made again.
		if b.Mode != mode || l.BondMiimon > 0 && b.Miimon != l.BondMiimon {
			if err := netlink.LinkDel(nl); err != nil {
				return nil, fmt.Errorf("remove %s (mode %s) to remake it: %w", name, b.Mode, err)
			}
			nl = nil
		}
	} else {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return nil, fmt.Errorf("look up %s: %w", name, err)
		}
		nl = nil
	}
	if nl == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		attrs.HardwareAddr = l.HardwareAddr()
		b := netlink.NewLinkBond(attrs)
		b.Mode = mode
		if l.BondMiimon > 0 {
			b.Miimon = l.BondMiimon
		}
		err := netlink.LinkAdd(b)
		if errors.Is(err, unix.EEXIST) {
			// The kernel loaded bonding for this very request, and the
			// module made its own bond0 first.
			if old, lerr := netlink.LinkByName(name); lerr == nil && netlink.LinkDel(old) == nil {
				err = netlink.LinkAdd(b)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("create bond %s: %w", name, err)
		}
		if nl, err = netlink.LinkByName(name); err != nil {
			return nil, fmt.Errorf("look up %s: %w", name, err)
		}
	}
	for _, m := range l.BondLinks {
		member, err := netlink.LinkByIndex(links[m].Attrs().Index)
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", m, err)
		}
		if member.Attrs().MasterIndex == nl.Attrs().Index {
			continue
		}
		// The kernel enslaves only links that are down.
		if err := netlink.LinkSetDown(member); err != nil {
			return nil, fmt.Errorf("member %s: down: %w", m, err)
		}
		if err := netlink.LinkSetMasterByIndex(member, nl.Attrs().Index); err != nil {
			return nil, fmt.Errorf("member %s: enslave: %w", m, err)
		}
		if err := netlink.LinkSetUp(member); err != nil {
			return nil, fmt.Errorf("member %s: up: %w", m, err)
		}
	}
	return nl, nil
}

func ensureVLAN(l networkdata.Link, links map[string]netlink.Link) (netlink.Link, error) {
	parent := links[l.VLANLink]
	name := ifname(l.ID, ifname(parent.Attrs().Name+"."+strconv.Itoa(l.VLANID), "vlan"+strconv.Itoa(l.VLANID)))
	nl, err := netlink.LinkByName(name)
	if err == nil {
		v, ok := nl.(*netlink.Vlan)
		if !ok || v.VlanId != l.VLANID || v.ParentIndex != parent.Attrs().Index {
			return nil, fmt.Errorf("%s exists and is not vlan %d on %s", name, l.VLANID, parent.Attrs().Name)
		}
		return nl, nil
	}
	var nf netlink.LinkNotFoundError
	if !errors.As(err, &nf) {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.ParentIndex = parent.Attrs().Index
	if mac := l.HardwareAddr(); mac != nil {
		attrs.HardwareAddr = mac
	}
	if err := netlink.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: l.VLANID, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}); err != nil {
		return nil, fmt.Errorf("create vlan %s: %w", name, err)
	}
	nl, err = netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	return nl, nil
}

// noAutoconf turns off router advertisements and SLAAC on a link, so the
// only addresses and routes are the rendered ones. A kernel without IPv6
// has no such files, which is fine.
func noAutoconf(procSys, name string) error {
	for _, key := range []string{"accept_ra", "autoconf"} {
		p := filepath.Join(procSys, "net/ipv6/conf", name, key)
		if err := os.WriteFile(p, []byte("0\n"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
	}
	return nil
}

func addRoute(link netlink.Link, r networkdata.Route) error {
	dst, err := r.Destination()
	if err != nil {
		return err
	}
	gw, err := r.Via()
	if err != nil {
		return err
	}
	family := unix.AF_INET
	if dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	rt := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())},
		Gw:        gw.AsSlice(),
		Priority:  r.Metric,
		Family:    family,
	}
	if err := netlink.RouteReplace(rt); err != nil {
		return fmt.Errorf("%s via %s: %w", dst, gw, err)
	}
	return nil
}

// writeResolvConf writes the name servers and search domains, replacing
// the file atomically.
func writeResolvConf(path string, services []networkdata.Service) error {
	var b bytes.Buffer
	var search []string
	for _, s := range services {
		for _, d := range s.Search {
			if !slices.Contains(search, d) {
				search = append(search, d)
			}
		}
	}
	if len(services) == 0 {
		return nil
	}
	b.WriteString("# written by metalsync-agent from network_data.json\n")
	for _, s := range services {
		fmt.Fprintf(&b, "nameserver %s\n", s.Address)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("resolv.conf: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("resolv.conf: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("resolv.conf: %w", err)
	}
	return nil
}

// waitDAD waits until no configured IPv6 address is tentative. A failed
// DAD (a duplicate on the wire) is an error at once.
func waitDAD(ctx context.Context, d *networkdata.Data, links map[string]netlink.Link, opts Options) error {
	t := time.NewTicker(opts.Poll)
	defer t.Stop()
	for {
		var tentative []string
		for _, n := range d.Networks {
			if n.Type != networkdata.NetworkIPv6 {
				continue
			}
			p, _ := n.Prefix()
			addrs, err := netlink.AddrList(links[n.Link], unix.AF_INET6)
			if err != nil {
				return fmt.Errorf("network %s: list addresses: %w", n.ID, err)
			}
			for _, a := range addrs {
				if !a.IP.Equal(p.Addr().AsSlice()) {
					continue
				}
				if a.Flags&unix.IFA_F_DADFAILED != 0 {
					return fmt.Errorf("network %s: address %s is in use by another host (ipv6 dad failed)", n.ID, p.Addr())
				}
				if a.Flags&unix.IFA_F_TENTATIVE != 0 {
					tentative = append(tentative, n.ID+" "+p.Addr().String())
				}
			}
		}
		if len(tentative) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("network: %s: %w (%w)", strings.Join(tentative, ", "), ErrTentative, ctx.Err())
		case <-t.C:
		}
	}
}
