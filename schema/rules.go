package schema

import (
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
)

// checkRules checks what a single file's schema cannot: names against file
// names, references between files, uniqueness across nodes, and the
// consistency of each node's network.
func checkRules(fsys fs.FS, inv *Inventory, invalid map[string][]string) Diagnostics {
	c := &ruleChecker{fsys: fsys, inv: inv, l: newLocator(fsys),
		owners: map[string]string{}, templates: map[string]string{}, nodes: map[string]string{},
		macs: map[string]string{}, ips: map[netip.Addr]string{}, bmcs: map[string]string{}}
	for _, o := range inv.Owners {
		c.checkName(o.Source.File, o.Metadata.Name)
		c.unique("owner", c.owners, o.Metadata.Name, o.Source.File)
	}
	for _, t := range inv.Templates {
		c.checkTemplate(t)
	}
	for _, s := range inv.Status {
		c.checkName(s.Source.File, s.Metadata.Name)
	}
	c.checkSite()
	// Files with errors were reported already; their names still count as
	// existing, so one broken owner does not fail every node it owns.
	for _, name := range invalid[KindOwner] {
		c.owners[name] = ""
	}
	for _, name := range invalid[KindDeployTemplate] {
		c.templates[name] = ""
	}
	// Without a valid site file, nodes cannot be checked against its
	// credential sets and networks: its errors are reported already.
	c.siteInvalid = len(invalid[KindSite]) > 0
	if !c.siteInvalid {
		c.checkSiteCredentials()
	}
	for _, n := range inv.Nodes {
		c.checkNode(n)
	}
	return c.ds
}

// ruleChecker holds what the cross-file checks have seen so far.
type ruleChecker struct {
	fsys fs.FS
	inv  *Inventory
	l    *locator
	ds   Diagnostics

	owners, templates, nodes map[string]string // name -> file
	macs                     map[string]string // mac -> node
	ips                      map[netip.Addr]string
	bmcs                     map[string]string // driver and endpoint -> node
	siteInvalid              bool              // metalsync.yaml has errors
}

func (c *ruleChecker) add(file, code, msg, hint string, path ...string) {
	c.ds = append(c.ds, c.l.diag(file, code, msg, hint, path...))
}

func (c *ruleChecker) checkName(file, name string) {
	base := strings.TrimSuffix(strings.TrimSuffix(path.Base(file), ".yaml"), ".yml")
	if base != name {
		c.add(file, CodeName, fmt.Sprintf("metadata.name %q does not match the file name %q", name, path.Base(file)),
			fmt.Sprintf("rename the file to %s.yaml or set metadata.name: %s", name, base), "metadata", "name")
	}
}

func (c *ruleChecker) unique(kind string, seen map[string]string, name, file string) {
	if prev, ok := seen[name]; ok {
		c.add(file, CodeDuplicate, fmt.Sprintf("%s %q is already defined in %s", kind, name, prev),
			"names are unique per kind; rename or remove one of them", "metadata", "name")
		return
	}
	seen[name] = file
}

// checkTemplate checks a template's name and that its steps are distinct
// and complete.
func (c *ruleChecker) checkTemplate(t *DeployTemplate) {
	f := t.Source.File
	c.checkName(f, t.Metadata.Name)
	c.unique("deploy template", c.templates, t.Metadata.Name, f)
	steps := map[string]int{}
	for i, s := range t.Spec.Steps {
		at := []string{"spec", "steps", strconv.Itoa(i)}
		if j, ok := steps[s.ID()]; ok {
			c.add(f, CodeTemplate, fmt.Sprintf("step %s appears twice (also steps.%d)", s.ID(), j),
				"each (interface, step) pair appears at most once per template; merge their args", append(at, "step")...)
			continue
		}
		steps[s.ID()] = i
		c.checkStepArgs(f, s, at)
	}
}

// checkStepArgs checks what the schema of a step's arguments cannot say:
// that the lists of things to do are not empty.
func (c *ruleChecker) checkStepArgs(f string, s Step, at []string) {
	switch a := s.Args.(type) {
	case *RAIDArgs:
		if len(a.LogicalDisks) == 0 {
			c.add(f, CodeTemplate, fmt.Sprintf("step %s lists no volumes", s.ID()),
				"list them in args.volumes, args.logical_disks or args.raid_config.logical_disks", append(at, "args")...)
		}
	case *BIOSArgs:
		if len(a.Settings) == 0 {
			c.add(f, CodeTemplate, fmt.Sprintf("step %s has no settings", s.ID()),
				patternHints["settings"], append(at, "args", "settings")...)
		}
	}
}

func (c *ruleChecker) checkSite() {
	st := c.inv.Site.Spec.Status
	if st == nil {
		return
	}
	if st.Directory != "" && st.Branch != "" {
		c.add(SiteFile, CodeSite, "status has both directory and branch", "choose one: status in a directory of this branch, or on a separate branch", "spec", "status")
	}
	if st.Directory != "" {
		d := path.Clean(st.Directory)
		if d == NodesDir || d == OwnersDir || d == TemplatesDir || d == "." || strings.HasPrefix(d, "..") || path.IsAbs(d) {
			c.add(SiteFile, CodeSite, fmt.Sprintf("status directory %q would mix status with specs", st.Directory), "use a directory of its own, like status", "spec", "status", "directory")
		}
	}
}

func (c *ruleChecker) checkNode(n *Node) {
	c.checkName(n.Source.File, n.Metadata.Name)
	c.unique("node", c.nodes, n.Metadata.Name, n.Source.File)
	c.checkReferences(n)
	c.checkBMC(n)
	c.checkCredentials(n)
	c.checkProvision(n)
	if n.Spec.Network != nil {
		c.ds = append(c.ds, checkNetwork(c.l, n.Source.File, n.Spec.Network)...)
		c.checkNetworkUnique(n)
	}
}

// checkReferences checks that the owners and templates a node names exist.
func (c *ruleChecker) checkReferences(n *Node) {
	f := n.Source.File
	if _, ok := c.owners[n.Spec.Owner]; !ok {
		c.add(f, CodeReference, fmt.Sprintf("owner %q does not exist", n.Spec.Owner), ownerHint(c.inv), "spec", "owner")
	}
	if n.Spec.Lessee != "" {
		if _, ok := c.owners[n.Spec.Lessee]; !ok {
			c.add(f, CodeReference, fmt.Sprintf("lessee %q does not exist", n.Spec.Lessee), ownerHint(c.inv), "spec", "lessee")
		}
	}
	for i, t := range n.Spec.Provision.DeployTemplates {
		if _, ok := c.templates[t]; !ok {
			c.add(f, CodeReference, fmt.Sprintf("deploy template %q does not exist", t), templateHint(c.inv, t), "spec", "provision", "deployTemplates", strconv.Itoa(i))
		}
	}
}

// checkBMC checks the BMC address and that no two nodes share one.
func (c *ruleChecker) checkBMC(n *Node) {
	f := n.Source.File
	addr, err := ParseBMCAddress(n.Spec.BMC.Address)
	if err != nil {
		c.add(f, CodeBMCAddress, "invalid BMC address: "+err.Error(),
			"write redfish+https://HOST/redfish/v1/Systems/ID, ipmi://HOST:623 or fake://NAME; IPv6 literals in brackets", "spec", "bmc", "address")
		return
	}
	key := addr.Driver + " " + addr.Endpoint.String()
	if other, ok := c.bmcs[key]; ok {
		c.add(f, CodeDuplicate, fmt.Sprintf("BMC address is also used by node %s", other), "two nodes cannot share one BMC system", "spec", "bmc", "address")
	} else {
		c.bmcs[key] = n.Metadata.Name
	}
	if c.sitePolicyApplies(n) {
		c.checkBMCNetwork(n, addr)
	}
	if addr.Driver == "ipmi" && n.Spec.BMC.TLS != nil {
		c.add(f, CodeBMCAddress, "tls settings have no meaning for IPMI", "remove spec.bmc.tls", "spec", "bmc", "tls")
	}
}

// checkProvision checks the provisioning fields against each other.
func (c *ruleChecker) checkProvision(n *Node) {
	f := n.Source.File
	p := n.Spec.Provision
	if p.State == "active" && p.Image == nil && !p.Adopt {
		c.add(f, CodeSchema, "an active node needs an image", "add provision.image {url, checksum}, or set adopt: true to take over a running machine", "spec", "provision")
	}
	if p.Adopt && p.State != "active" {
		c.add(f, CodeSchema, "adopt: true only makes sense with state: active", "set state: active, or remove adopt", "spec", "provision", "adopt")
	}
	if n.Spec.DisablePowerOff && n.Spec.Power == "off" {
		c.add(f, CodeSchema, "power: off contradicts disablePowerOff: true", "remove one of them", "spec", "power")
	}
}

// checkNetworkUnique checks that no other node has the node's MACs or
// addresses.
func (c *ruleChecker) checkNetworkUnique(n *Node) {
	f, name := n.Source.File, n.Metadata.Name
	for i, link := range n.Spec.Network.Links {
		if link.MAC != "" && link.Type == LinkPhy {
			mac := strings.ToLower(link.MAC)
			if other, ok := c.macs[mac]; ok && other != name {
				c.add(f, CodeDuplicate, fmt.Sprintf("MAC %s is also on node %s", link.MAC, other), "every NIC has its own MAC; check for a copy-paste", "spec", "network", "links", strconv.Itoa(i), "mac")
			} else {
				c.macs[mac] = name
			}
		}
		for j, a := range link.Addresses {
			pfx, err := netip.ParsePrefix(a)
			if err != nil {
				continue // reported by checkNetwork
			}
			ip := pfx.Addr()
			if other, ok := c.ips[ip]; ok && other != name {
				c.add(f, CodeDuplicate, fmt.Sprintf("IP address %s is also used by node %s", ip, other), "every address is assigned once", "spec", "network", "links", strconv.Itoa(i), "addresses", strconv.Itoa(j))
			} else {
				c.ips[ip] = name
			}
		}
	}
}

// checkNetwork checks one node's links, addresses and routes.
func checkNetwork(l *locator, f string, nw *Network) Diagnostics {
	c := &netChecker{l: l, file: f, links: map[string]Link{}, memberOf: map[string]string{}, vlans: map[string]bool{}}
	for i, link := range nw.Links {
		if _, ok := c.links[link.Name]; ok {
			c.add(fmt.Sprintf("link %q is defined twice", link.Name), "link names are unique per node", "links", strconv.Itoa(i), "name")
		}
		c.links[link.Name] = link
	}
	for i, link := range nw.Links {
		at := func(p ...string) []string { return append([]string{"links", strconv.Itoa(i)}, p...) }
		switch link.Type {
		case LinkPhy:
			c.checkPhy(link, at)
		case LinkBond:
			c.checkBond(link, at)
		case LinkVLAN:
			c.checkVLAN(link, at)
		}
		for j, a := range link.Addresses {
			c.checkAddress(a, at("addresses", strconv.Itoa(j)))
		}
	}
	for i, r := range nw.Routes {
		c.checkRoute(r, func(p ...string) []string { return append([]string{"routes", strconv.Itoa(i)}, p...) })
	}
	if nw.DNS != nil {
		c.checkDNS(nw.DNS)
	}
	return c.ds
}

// netChecker holds what the checks of one node's network have seen.
type netChecker struct {
	l        *locator
	file     string
	ds       Diagnostics
	links    map[string]Link
	memberOf map[string]string // phy link -> bond
	vlans    map[string]bool   // parent/id
	prefixes []netip.Prefix    // the node's addresses
}

// fieldPath builds the path of a link's or route's field below spec.network.
type fieldPath func(p ...string) []string

func (c *netChecker) add(msg, hint string, path ...string) {
	c.ds = append(c.ds, c.l.diag(c.file, CodeNetwork, msg, hint, append([]string{"spec", "network"}, path...)...))
}

func (c *netChecker) checkPhy(link Link, at fieldPath) {
	if link.MAC == "" {
		c.add(fmt.Sprintf("phy link %s needs a mac", link.Name), "the installer matches NICs by MAC; write mac: \"52:54:00:12:34:56\"", at("name")...)
	}
	for _, fld := range []struct {
		set  bool
		name string
	}{{link.Mode != "", "mode"}, {len(link.Members) > 0, "members"}, {link.ID != 0, "id"}, {link.Parent != "", "parent"}} {
		if fld.set {
			c.add(fmt.Sprintf("%s is not a field of a phy link", fld.name), "mode and members belong to bonds, id and parent to vlans", at(fld.name)...)
		}
	}
}

func (c *netChecker) checkBond(link Link, at fieldPath) {
	if link.Mode == "" {
		c.add(fmt.Sprintf("bond %s needs a mode", link.Name), "mode: 802.3ad, active-backup, balance-rr, balance-xor, broadcast, balance-tlb or balance-alb", at("name")...)
	}
	if len(link.Members) == 0 {
		c.add(fmt.Sprintf("bond %s has no members", link.Name), "list the phy links it bonds in members", at("name")...)
	}
	if link.ID != 0 || link.Parent != "" {
		c.add("id and parent are fields of vlan links", "remove them from the bond", at("name")...)
	}
	for j, m := range link.Members {
		ml, ok := c.links[m]
		at := at("members", strconv.Itoa(j))
		switch {
		case !ok:
			c.add(fmt.Sprintf("bond member %q is not a link of this node", m), "members name phy links defined in this node's links", at...)
		case ml.Type != LinkPhy:
			c.add(fmt.Sprintf("bond member %q is a %s link, not phy", m, ml.Type), "bonds are made of phy links", at...)
		case c.memberOf[m] != "":
			c.add(fmt.Sprintf("link %q is already a member of bond %s", m, c.memberOf[m]), "a NIC belongs to one bond at most", at...)
		default:
			c.memberOf[m] = link.Name
			if len(ml.Addresses) > 0 {
				c.add(fmt.Sprintf("bond member %q has addresses", m), "put the addresses on the bond (or a vlan on it), not on its members", at...)
			}
		}
	}
}

func (c *netChecker) checkVLAN(link Link, at fieldPath) {
	if link.ID < 1 || link.ID > 4094 {
		c.add(fmt.Sprintf("vlan id %d is out of range", link.ID), "VLAN ids are 1 to 4094", at("id")...)
	}
	if link.Mode != "" || len(link.Members) > 0 {
		c.add("mode and members are fields of bond links", "remove them from the vlan", at("name")...)
	}
	pl, ok := c.links[link.Parent]
	switch {
	case link.Parent == "":
		c.add(fmt.Sprintf("vlan %s needs a parent", link.Name), "parent names the phy or bond link the VLAN runs on", at("name")...)
	case !ok:
		c.add(fmt.Sprintf("vlan parent %q is not a link of this node", link.Parent), "parent names a phy or bond link of this node", at("parent")...)
	case pl.Type == LinkVLAN:
		c.add(fmt.Sprintf("vlan parent %q is itself a vlan", link.Parent), "stacked VLANs (QinQ) are not supported; use a phy or bond parent", at("parent")...)
	default:
		key := link.Parent + "/" + strconv.Itoa(link.ID)
		if c.vlans[key] {
			c.add(fmt.Sprintf("vlan %d on %s is defined twice", link.ID, link.Parent), "one link per (parent, id)", at("id")...)
		}
		c.vlans[key] = true
	}
}

// checkAddress checks one address of a link and remembers its prefix for
// the routes.
func (c *netChecker) checkAddress(a string, at []string) {
	pfx, err := netip.ParsePrefix(a)
	if err != nil {
		c.add(fmt.Sprintf("%q is not an address in CIDR form", a), `write "192.0.2.10/24" or "2001:db8::10/64"`, at...)
		return
	}
	ip := pfx.Addr()
	if ip.Zone() != "" || ip.Is4In6() {
		c.add(fmt.Sprintf("%q: zones and IPv4-mapped IPv6 addresses are not supported", a), "", at...)
		return
	}
	if ip.Is4() && pfx.Bits() < 31 {
		if ip == pfx.Masked().Addr() {
			c.add(fmt.Sprintf("%s is the network address of %s, not an address inside it", ip, pfx.Masked()), "use a host address inside the prefix, like .10", at...)
		} else if ip == lastAddr(pfx) {
			c.add(fmt.Sprintf("%s is the broadcast address of %s", ip, pfx.Masked()), "use a host address inside the prefix", at...)
		}
	}
	if ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() {
		c.add(fmt.Sprintf("%s cannot be assigned to a host", ip), "", at...)
	}
	c.prefixes = append(c.prefixes, pfx)
}

// checkRoute checks a route's destination, and that its gateway is
// reachable from one of the node's addresses.
func (c *netChecker) checkRoute(r Route, at fieldPath) {
	to, err := netip.ParsePrefix(r.To)
	if err != nil {
		c.add(fmt.Sprintf("route destination %q is not in CIDR form", r.To), `write "0.0.0.0/0", "::/0" or "198.51.100.0/24"`, at("to")...)
		return
	}
	if to.Masked() != to {
		c.add(fmt.Sprintf("route destination %s has host bits set", r.To), fmt.Sprintf("write %s", to.Masked()), at("to")...)
	}
	via, err := netip.ParseAddr(r.Via)
	if err != nil {
		c.add(fmt.Sprintf("gateway %q is not an IP address", r.Via), "", at("via")...)
		return
	}
	if via.Is4() != to.Addr().Is4() {
		fam := map[bool]string{true: "IPv4", false: "IPv6"}
		c.add(fmt.Sprintf("%s route %s has an %s gateway %s", fam[to.Addr().Is4()], r.To, fam[via.Is4()], r.Via), "a route's gateway is of the same family as its destination", at("via")...)
		return
	}
	if slices.ContainsFunc(c.prefixes, func(p netip.Prefix) bool { return p.Addr() == via }) {
		c.add(fmt.Sprintf("gateway %s is one of the node's own addresses", r.Via), "the gateway is the router's address in the subnet, usually .1 or ::1", at("via")...)
		return
	}
	reachable := via.Is6() && via.IsLinkLocalUnicast() || slices.ContainsFunc(c.prefixes, func(p netip.Prefix) bool { return p.Contains(via) })
	if !reachable {
		c.add(fmt.Sprintf("gateway %s is not on any of the node's links", r.Via), "add an address in the gateway's subnet to a link, or fix the gateway", at("via")...)
	}
}

func (c *netChecker) checkDNS(dns *DNS) {
	for i, s := range dns.Servers {
		if _, err := netip.ParseAddr(s); err != nil {
			c.add(fmt.Sprintf("DNS server %q is not an IP address", s), "", "dns", "servers", strconv.Itoa(i))
		}
	}
	for i, s := range dns.Search {
		if !validHostname(s) {
			c.add(fmt.Sprintf("search domain %q is not a domain name", s), "", "dns", "search", strconv.Itoa(i))
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << hostBits) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func ownerHint(inv *Inventory) string {
	var names []string
	for _, o := range inv.Owners {
		names = append(names, o.Metadata.Name)
	}
	if len(names) == 0 {
		return "add a file owners/NAME.yaml (kind: Owner)"
	}
	return "known owners: " + strings.Join(names, ", ")
}

func templateHint(inv *Inventory, name string) string {
	var names []string
	for _, t := range inv.Templates {
		names = append(names, t.Metadata.Name)
	}
	if m := closest(name, names); m != "" {
		return fmt.Sprintf("did you mean %q?", m)
	}
	if len(names) == 0 {
		return "add a file templates/NAME.yaml (kind: DeployTemplate)"
	}
	return "known templates: " + strings.Join(names, ", ")
}
