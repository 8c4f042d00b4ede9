package schema

import (
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// checkRules checks what a single file's schema cannot: names against file
// names, references between files, uniqueness across nodes, and the
// consistency of each node's network.
func checkRules(fsys fs.FS, inv *Inventory, invalid map[string][]string) Diagnostics {
	l := newLocator(fsys)
	var ds Diagnostics
	add := func(d Diagnostic) { ds = append(ds, d) }

	checkName := func(file, name string) {
		base := strings.TrimSuffix(strings.TrimSuffix(path.Base(file), ".yaml"), ".yml")
		if base != name {
			add(l.diag(file, CodeName, fmt.Sprintf("metadata.name %q does not match the file name %q", name, path.Base(file)),
				fmt.Sprintf("rename the file to %s.yaml or set metadata.name: %s", name, base), "metadata", "name"))
		}
	}
	type seen struct{ file string }
	unique := func(kind string, m map[string]seen, name, file string) {
		if prev, ok := m[name]; ok {
			add(l.diag(file, CodeDuplicate, fmt.Sprintf("%s %q is already defined in %s", kind, name, prev.file),
				"names are unique per kind; rename or remove one of them", "metadata", "name"))
			return
		}
		m[name] = seen{file}
	}

	owners := map[string]seen{}
	for _, o := range inv.Owners {
		checkName(o.Source.File, o.Metadata.Name)
		unique("owner", owners, o.Metadata.Name, o.Source.File)
	}
	templates := map[string]seen{}
	for _, t := range inv.Templates {
		checkName(t.Source.File, t.Metadata.Name)
		unique("deploy template", templates, t.Metadata.Name, t.Source.File)
		steps := map[string]int{}
		for i, s := range t.Spec.Steps {
			key := s.Interface + "." + s.Step
			if j, ok := steps[key]; ok {
				add(l.diag(t.Source.File, CodeTemplate, fmt.Sprintf("step %s appears twice (also steps.%d)", key, j),
					"each (interface, step) pair appears at most once per template; merge their args", "spec", "steps", strconv.Itoa(i), "step"))
				continue
			}
			steps[key] = i
		}
	}
	for _, s := range inv.Status {
		checkName(s.Source.File, s.Metadata.Name)
	}
	if st := inv.Site.Spec.Status; st != nil && st.Directory != "" && st.Branch != "" {
		add(l.diag(SiteFile, CodeSite, "status has both directory and branch", "choose one: status in a directory of this branch, or on a separate branch", "spec", "status"))
	}
	if st := inv.Site.Spec.Status; st != nil && st.Directory != "" {
		d := path.Clean(st.Directory)
		if d == NodesDir || d == OwnersDir || d == TemplatesDir || d == "." || strings.HasPrefix(d, "..") || path.IsAbs(d) {
			add(l.diag(SiteFile, CodeSite, fmt.Sprintf("status directory %q would mix status with specs", st.Directory), "use a directory of its own, like status", "spec", "status", "directory"))
		}
	}

	// Files with errors were reported already; their names still count as
	// existing, so one broken owner does not fail every node it owns.
	for _, name := range invalid[KindOwner] {
		owners[name] = seen{}
	}
	for _, name := range invalid[KindDeployTemplate] {
		templates[name] = seen{}
	}
	nodes := map[string]seen{}
	macs := map[string]string{} // mac -> node
	ips := map[netip.Addr]string{}
	bmcs := map[string]string{}
	for _, n := range inv.Nodes {
		f := n.Source.File
		name := n.Metadata.Name
		checkName(f, name)
		unique("node", nodes, name, f)

		if _, ok := owners[n.Spec.Owner]; !ok {
			add(l.diag(f, CodeReference, fmt.Sprintf("owner %q does not exist", n.Spec.Owner), ownerHint(inv), "spec", "owner"))
		}
		if n.Spec.Lessee != "" {
			if _, ok := owners[n.Spec.Lessee]; !ok {
				add(l.diag(f, CodeReference, fmt.Sprintf("lessee %q does not exist", n.Spec.Lessee), ownerHint(inv), "spec", "lessee"))
			}
		}
		for i, t := range n.Spec.Provision.DeployTemplates {
			if _, ok := templates[t]; !ok {
				add(l.diag(f, CodeReference, fmt.Sprintf("deploy template %q does not exist", t), templateHint(inv, t), "spec", "provision", "deployTemplates", strconv.Itoa(i)))
			}
		}

		// BMC.
		addr, err := ParseBMCAddress(n.Spec.BMC.Address)
		if err != nil {
			add(l.diag(f, CodeBMCAddress, "invalid BMC address: "+err.Error(),
				"write redfish+https://HOST/redfish/v1/Systems/ID, ipmi://HOST:623 or fake://NAME; IPv6 literals in brackets", "spec", "bmc", "address"))
		} else {
			key := addr.Driver + " " + addr.Endpoint.String()
			if other, ok := bmcs[key]; ok {
				add(l.diag(f, CodeDuplicate, fmt.Sprintf("BMC address is also used by node %s", other), "two nodes cannot share one BMC system", "spec", "bmc", "address"))
			} else {
				bmcs[key] = name
			}
			if addr.Driver == "ipmi" && n.Spec.BMC.TLS != nil {
				add(l.diag(f, CodeBMCAddress, "tls settings have no meaning for IPMI", "remove spec.bmc.tls", "spec", "bmc", "tls"))
			}
		}
		cr := n.Spec.BMC.CredentialsRef
		set := 0
		for _, b := range []bool{cr.Env != nil, cr.File != "", cr.AgeFile != ""} {
			if b {
				set++
			}
		}
		if set != 1 {
			add(l.diag(f, CodeSchema, fmt.Sprintf("credentialsRef needs exactly one of env, file, ageFile (found %d)", set),
				"credentialsRef: {env: {username: VAR, password: VAR}}, {file: /etc/metalsync/bmc.yaml} or {ageFile: secrets/NAME.age}", "spec", "bmc", "credentialsRef"))
		}
		if cr.AgeFile != "" {
			p := path.Clean(cr.AgeFile)
			if path.IsAbs(p) || strings.HasPrefix(p, "..") {
				add(l.diag(f, CodeReference, "ageFile must be a path inside the repository", "write it relative to the repository root, like secrets/rack1.age", "spec", "bmc", "credentialsRef", "ageFile"))
			} else if _, err := fs.Stat(fsys, p); err != nil {
				add(l.diag(f, CodeReference, fmt.Sprintf("ageFile %s does not exist in the repository", cr.AgeFile), "encrypt the credentials with age and commit the file", "spec", "bmc", "credentialsRef", "ageFile"))
			}
		}
		if cr.File != "" && !path.IsAbs(cr.File) {
			add(l.diag(f, CodeReference, "credentials file must be an absolute path on the daemon's host", "to keep credentials in the repository, encrypt them and use ageFile", "spec", "bmc", "credentialsRef", "file"))
		}

		// Provisioning.
		p := n.Spec.Provision
		if p.State == "active" && p.Image == nil && !p.Adopt {
			add(l.diag(f, CodeSchema, "an active node needs an image", "add provision.image {url, checksum}, or set adopt: true to take over a running machine", "spec", "provision"))
		}
		if p.Adopt && p.State != "active" {
			add(l.diag(f, CodeSchema, "adopt: true only makes sense with state: active", "set state: active, or remove adopt", "spec", "provision", "adopt"))
		}
		if n.Spec.DisablePowerOff && n.Spec.Power == "off" {
			add(l.diag(f, CodeSchema, "power: off contradicts disablePowerOff: true", "remove one of them", "spec", "power"))
		}

		if n.Spec.Network != nil {
			ds = append(ds, checkNetwork(l, f, n.Spec.Network)...)
			for i, link := range n.Spec.Network.Links {
				if link.MAC != "" && link.Type == LinkPhy {
					mac := strings.ToLower(link.MAC)
					if other, ok := macs[mac]; ok && other != name {
						add(l.diag(f, CodeDuplicate, fmt.Sprintf("MAC %s is also on node %s", link.MAC, other), "every NIC has its own MAC; check for a copy-paste", "spec", "network", "links", strconv.Itoa(i), "mac"))
					} else {
						macs[mac] = name
					}
				}
				for j, a := range link.Addresses {
					pfx, err := netip.ParsePrefix(a)
					if err != nil {
						continue // reported by checkNetwork
					}
					ip := pfx.Addr()
					if other, ok := ips[ip]; ok && other != name {
						add(l.diag(f, CodeDuplicate, fmt.Sprintf("IP address %s is also used by node %s", ip, other), "every address is assigned once", "spec", "network", "links", strconv.Itoa(i), "addresses", strconv.Itoa(j)))
					} else {
						ips[ip] = name
					}
				}
			}
		}
	}
	return ds
}

// checkNetwork checks one node's links, addresses and routes.
func checkNetwork(l *locator, f string, nw *Network) Diagnostics {
	var ds Diagnostics
	add := func(msg, hint string, path ...string) {
		ds = append(ds, l.diag(f, CodeNetwork, msg, hint, append([]string{"spec", "network"}, path...)...))
	}
	links := map[string]Link{}
	for i, link := range nw.Links {
		at := []string{"links", strconv.Itoa(i)}
		if _, ok := links[link.Name]; ok {
			add(fmt.Sprintf("link %q is defined twice", link.Name), "link names are unique per node", append(at, "name")...)
		}
		links[link.Name] = link
	}
	memberOf := map[string]string{}
	vlans := map[string]bool{}
	var prefixes []netip.Prefix
	for i, link := range nw.Links {
		at := func(p ...string) []string { return append([]string{"links", strconv.Itoa(i)}, p...) }
		switch link.Type {
		case LinkPhy:
			if link.MAC == "" {
				add(fmt.Sprintf("phy link %s needs a mac", link.Name), "the installer matches NICs by MAC; write mac: \"52:54:00:12:34:56\"", at("name")...)
			}
			for _, fld := range []struct {
				set  bool
				name string
			}{{link.Mode != "", "mode"}, {len(link.Members) > 0, "members"}, {link.ID != 0, "id"}, {link.Parent != "", "parent"}} {
				if fld.set {
					add(fmt.Sprintf("%s is not a field of a phy link", fld.name), "mode and members belong to bonds, id and parent to vlans", at(fld.name)...)
				}
			}
		case LinkBond:
			if link.Mode == "" {
				add(fmt.Sprintf("bond %s needs a mode", link.Name), "mode: 802.3ad, active-backup, balance-rr, balance-xor, broadcast, balance-tlb or balance-alb", at("name")...)
			}
			if len(link.Members) == 0 {
				add(fmt.Sprintf("bond %s has no members", link.Name), "list the phy links it bonds in members", at("name")...)
			}
			if link.ID != 0 || link.Parent != "" {
				add("id and parent are fields of vlan links", "remove them from the bond", at("name")...)
			}
			for j, m := range link.Members {
				ml, ok := links[m]
				switch {
				case !ok:
					add(fmt.Sprintf("bond member %q is not a link of this node", m), "members name phy links defined in this node's links", at("members", strconv.Itoa(j))...)
				case ml.Type != LinkPhy:
					add(fmt.Sprintf("bond member %q is a %s link, not phy", m, ml.Type), "bonds are made of phy links", at("members", strconv.Itoa(j))...)
				case memberOf[m] != "":
					add(fmt.Sprintf("link %q is already a member of bond %s", m, memberOf[m]), "a NIC belongs to one bond at most", at("members", strconv.Itoa(j))...)
				default:
					memberOf[m] = link.Name
					if len(ml.Addresses) > 0 {
						add(fmt.Sprintf("bond member %q has addresses", m), "put the addresses on the bond (or a vlan on it), not on its members", at("members", strconv.Itoa(j))...)
					}
				}
			}
		case LinkVLAN:
			if link.ID < 1 || link.ID > 4094 {
				add(fmt.Sprintf("vlan id %d is out of range", link.ID), "VLAN ids are 1 to 4094", at("id")...)
			}
			if link.Mode != "" || len(link.Members) > 0 {
				add("mode and members are fields of bond links", "remove them from the vlan", at("name")...)
			}
			pl, ok := links[link.Parent]
			switch {
			case link.Parent == "":
				add(fmt.Sprintf("vlan %s needs a parent", link.Name), "parent names the phy or bond link the VLAN runs on", at("name")...)
			case !ok:
				add(fmt.Sprintf("vlan parent %q is not a link of this node", link.Parent), "parent names a phy or bond link of this node", at("parent")...)
			case pl.Type == LinkVLAN:
				add(fmt.Sprintf("vlan parent %q is itself a vlan", link.Parent), "stacked VLANs (QinQ) are not supported; use a phy or bond parent", at("parent")...)
			default:
				key := link.Parent + "/" + strconv.Itoa(link.ID)
				if vlans[key] {
					add(fmt.Sprintf("vlan %d on %s is defined twice", link.ID, link.Parent), "one link per (parent, id)", at("id")...)
				}
				vlans[key] = true
			}
		}
		for j, a := range link.Addresses {
			pfx, err := netip.ParsePrefix(a)
			if err != nil {
				add(fmt.Sprintf("%q is not an address in CIDR form", a), `write "192.0.2.10/24" or "2001:db8::10/64"`, at("addresses", strconv.Itoa(j))...)
				continue
			}
			ip := pfx.Addr()
			if ip.Zone() != "" || ip.Is4In6() {
				add(fmt.Sprintf("%q: zones and IPv4-mapped IPv6 addresses are not supported", a), "", at("addresses", strconv.Itoa(j))...)
				continue
			}
			bits := pfx.Bits()
			if ip.Is4() && bits < 31 {
				if ip == pfx.Masked().Addr() {
					add(fmt.Sprintf("%s is the network address of %s, not an address inside it", ip, pfx.Masked()), "use a host address inside the prefix, like .10", at("addresses", strconv.Itoa(j))...)
				} else if ip == lastAddr(pfx) {
					add(fmt.Sprintf("%s is the broadcast address of %s", ip, pfx.Masked()), "use a host address inside the prefix", at("addresses", strconv.Itoa(j))...)
				}
			}
			if ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() {
				add(fmt.Sprintf("%s cannot be assigned to a host", ip), "", at("addresses", strconv.Itoa(j))...)
			}
			prefixes = append(prefixes, pfx)
		}
	}
	for i, r := range nw.Routes {
		at := func(p ...string) []string { return append([]string{"routes", strconv.Itoa(i)}, p...) }
		to, err := netip.ParsePrefix(r.To)
		if err != nil {
			add(fmt.Sprintf("route destination %q is not in CIDR form", r.To), `write "0.0.0.0/0", "::/0" or "198.51.100.0/24"`, at("to")...)
			continue
		}
		if to.Masked() != to {
			add(fmt.Sprintf("route destination %s has host bits set", r.To), fmt.Sprintf("write %s", to.Masked()), at("to")...)
		}
		via, err := netip.ParseAddr(r.Via)
		if err != nil {
			add(fmt.Sprintf("gateway %q is not an IP address", r.Via), "", at("via")...)
			continue
		}
		if via.Is4() != to.Addr().Is4() {
			fam := map[bool]string{true: "IPv4", false: "IPv6"}
			add(fmt.Sprintf("%s route %s has an %s gateway %s", fam[to.Addr().Is4()], r.To, fam[via.Is4()], r.Via), "a route's gateway is of the same family as its destination", at("via")...)
			continue
		}
		own := false
		for _, p := range prefixes {
			if p.Addr() == via {
				own = true
			}
		}
		if own {
			add(fmt.Sprintf("gateway %s is one of the node's own addresses", r.Via), "the gateway is the router's address in the subnet, usually .1 or ::1", at("via")...)
			continue
		}
		reachable := via.Is6() && via.IsLinkLocalUnicast()
		for _, p := range prefixes {
			if p.Contains(via) {
				reachable = true
				break
			}
		}
		if !reachable {
			add(fmt.Sprintf("gateway %s is not on any of the node's links", r.Via), "add an address in the gateway's subnet to a link, or fix the gateway", at("via")...)
		}
	}
	if nw.DNS != nil {
		for i, s := range nw.DNS.Servers {
			if _, err := netip.ParseAddr(s); err != nil {
				add(fmt.Sprintf("DNS server %q is not an IP address", s), "", "dns", "servers", strconv.Itoa(i))
			}
		}
		for i, s := range nw.DNS.Search {
			if !validHostname(s) {
				add(fmt.Sprintf("search domain %q is not a domain name", s), "", "dns", "search", strconv.Itoa(i))
			}
		}
	}
	return ds
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
