package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
)

// The rules of the site's credential sets and BMC networks (bmcpolicy.go
// holds the policy itself).

// checkCredentials checks that a node names a credential set of the site
// its owner may use; an inline source gets the exact text to write instead.
func (c *ruleChecker) checkCredentials(n *Node) {
	f := n.Source.File
	site := &c.inv.Site.Spec
	cr := n.Spec.BMC.CredentialsRef
	at := []string{"spec", "bmc", "credentialsRef"}
	if cr.IsLegacy() {
		field := "ageFile"
		switch {
		case cr.Env != nil:
			field = "env"
		case cr.File != "":
			field = "file"
		}
		c.add(f, CodeCredentials, "a node may not say where credentials come from; it names a credential set of "+SiteFile,
			legacyHint(site, n.Metadata.Name, cr), append(at, field)...)
		return
	}
	if !c.sitePolicyApplies(n) {
		return
	}
	_, err := site.CredentialSetFor(n.Spec.Owner, cr)
	if err == nil {
		return
	}
	names := site.CredentialSetNames(n.Spec.Owner)
	hint := "declare a set under spec.credentials.sets in " + SiteFile + " (admins only)"
	if len(names) > 0 {
		hint = fmt.Sprintf("sets for owner %s: %s", n.Spec.Owner, strings.Join(names, ", "))
	}
	if cr.Set == "" {
		c.add(f, CodeCredentials, "credentialsRef names no credential set", "write credentialsRef: {set: NAME}; "+hint, at...)
		return
	}
	if m := closest(cr.Set, names); m != "" {
		hint = fmt.Sprintf("did you mean %q? %s", m, hint)
	}
	c.add(f, CodeCredentials, strings.TrimSuffix(err.Error(), ": "+ErrCredentialSet.Error()), hint, append(at, "set")...)
}

// sitePolicyApplies reports whether a node can be checked against the
// site's credential sets and networks: not when the site file or the
// node's owner has errors of its own, reported already.
func (c *ruleChecker) sitePolicyApplies(n *Node) bool {
	_, ownerKnown := c.owners[n.Spec.Owner]
	return !c.siteInvalid && ownerKnown
}

// checkBMCNetwork checks that the node's BMC is where the site allows its
// owner's BMCs, over HTTPS unless the site allows plain HTTP there.
func (c *ruleChecker) checkBMCNetwork(n *Node, addr BMCAddress) {
	err := c.inv.Site.Spec.CheckBMCNetwork(n.Spec.Owner, addr)
	switch {
	case err == nil:
	case errors.Is(err, ErrPlainHTTP):
		c.add(n.Source.File, CodeBMCNetwork, fmt.Sprintf("redfish+http:// would send the BMC credentials unencrypted to %s", addr.Host()),
			"use redfish+https://, or have an admin set allowPlainHTTP: true on its network in "+SiteFile, "spec", "bmc", "address")
	default:
		c.add(n.Source.File, CodeBMCNetwork, fmt.Sprintf("BMC host %s is outside the BMC networks %s allows for owner %s", addr.Host(), SiteFile, n.Spec.Owner),
			networksHint(&c.inv.Site.Spec, n.Spec.Owner), "spec", "bmc", "address")
	}
}

func networksHint(site *SiteSpec, owner string) string {
	var nets []string
	for _, nw := range site.BMCNetworks {
		if len(nw.Owners) == 0 || slices.Contains(nw.Owners, owner) {
			nets = append(nets, cmpOr(nw.CIDR, nw.Host))
		}
	}
	if len(nets) == 0 {
		return fmt.Sprintf("%s declares no BMC network for owner %s: an admin adds one under spec.bmcNetworks (cidr: or host:)", SiteFile, owner)
	}
	return fmt.Sprintf("networks for owner %s: %s; a host name matches host patterns only, an IP address CIDRs only", owner, strings.Join(nets, ", "))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkSiteCredentials checks the site's credential sets and BMC networks.
func (c *ruleChecker) checkSiteCredentials() {
	site := c.inv.Site.Spec
	if cs := site.Credentials; cs != nil {
		for _, name := range slices.Sorted(maps.Keys(cs.Sets)) {
			c.checkCredentialSet(cs, name)
		}
	}
	for i, nw := range site.BMCNetworks {
		at := []string{"spec", "bmcNetworks", strconv.Itoa(i)}
		if (nw.CIDR == "") == (nw.Host == "") {
			c.add(SiteFile, CodeSite, "a BMC network has exactly one of cidr and host", "write one network per entry: {cidr: 10.10.0.0/24} or {host: \"*.bmc.example.net\"}", at...)
		}
		if nw.CIDR != "" {
			p, err := netip.ParsePrefix(nw.CIDR)
			switch {
			case err != nil:
				c.add(SiteFile, CodeSite, fmt.Sprintf("%q is not a CIDR", nw.CIDR), `write "10.10.0.0/24" or "2001:db8:20::/64"`, append(at, "cidr")...)
			case p.Masked() != p:
				c.add(SiteFile, CodeSite, fmt.Sprintf("BMC network %s has host bits set", nw.CIDR), "write "+p.Masked().String(), append(at, "cidr")...)
			}
		}
		c.checkOwnerList(nw.Owners, append(at, "owners"))
	}
}

func (c *ruleChecker) checkCredentialSet(cs *CredentialSettings, name string) {
	set := cs.Sets[name]
	at := []string{"spec", "credentials", "sets", name}
	n := 0
	for _, b := range []bool{set.Env != nil, set.File != "", set.AgeFile != ""} {
		if b {
			n++
		}
	}
	if n != 1 {
		c.add(SiteFile, CodeSite, fmt.Sprintf("credential set %s needs exactly one of env, file, ageFile (found %d)", name, n),
			"{env: {username: VAR, password: VAR}}, {file: NAME.yaml} in credentials.directory, or {ageFile: secrets/NAME.age}", at...)
	}
	if e := set.Env; e != nil {
		for _, v := range []string{e.Username, e.Password} {
			if strings.HasPrefix(v, ReservedEnvPrefix) {
				c.add(SiteFile, CodeSite, fmt.Sprintf("credential set %s names %s: %s* variables hold the daemon's own settings and secrets", name, v, ReservedEnvPrefix),
					"give the BMC credentials variables of their own", append(at, "env")...)
			}
		}
	}
	if set.File != "" {
		if cs.Directory == "" {
			c.add(SiteFile, CodeSite, fmt.Sprintf("credential set %s is a file, but credentials.directory is not set", name),
				"set spec.credentials.directory to the directory on the daemon's host holding credential files", append(at, "file")...)
		}
		if !localPath(set.File) {
			c.add(SiteFile, CodeSite, fmt.Sprintf("credential set %s: file must be a path inside credentials.directory", name),
				"write it relative to credentials.directory, like rack2.yaml", append(at, "file")...)
		}
	}
	if set.AgeFile != "" {
		if !localPath(set.AgeFile) {
			c.add(SiteFile, CodeSite, fmt.Sprintf("credential set %s: ageFile must be a path inside the repository", name),
				"write it relative to the repository root, like secrets/rack1.age", append(at, "ageFile")...)
		} else if _, err := fs.Stat(c.fsys, path.Clean(set.AgeFile)); err != nil {
			c.add(SiteFile, CodeSite, fmt.Sprintf("ageFile %s does not exist in the repository", set.AgeFile),
				"encrypt the credentials with age and commit the file", append(at, "ageFile")...)
		}
	}
	c.checkOwnerList(set.Owners, append(at, "owners"))
}

func (c *ruleChecker) checkOwnerList(owners []string, at []string) {
	for i, o := range owners {
		if _, ok := c.owners[o]; !ok {
			c.add(SiteFile, CodeReference, fmt.Sprintf("owner %q does not exist", o), ownerHint(c.inv), append(slices.Clip(at), strconv.Itoa(i))...)
		}
	}
}

// localPath reports whether p is a relative slash path that stays below
// its base.
func localPath(p string) bool {
	c := path.Clean(p)
	return !path.IsAbs(p) && c != "." && c != ".." && !strings.HasPrefix(c, "../") && !strings.Contains(p, "\\")
}
