package schema

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"
)

// The site's control over BMC credentials: which set a node may name and
// where its BMC may be. Validation (rules.go) and the credential resolver
// both ask these functions, so a revision that validates and the daemon
// acting on it cannot disagree.

// ReservedEnvPrefix starts the environment variables of the daemon's own
// settings and secrets (METALSYNC_AGENT_KEY, METALSYNC_AGE_IDENTITY, ...):
// no credential set may name one.
const ReservedEnvPrefix = "METALSYNC_"

// Errors of the site's BMC policy, for errors.Is.
var (
	// ErrLegacyCredentials marks an inline credentialsRef (env, file,
	// ageFile) from before credential sets.
	ErrLegacyCredentials = errors.New("inline credential sources are not allowed")
	// ErrCredentialSet marks a node naming no set, an unknown set or a set
	// its owner may not use.
	ErrCredentialSet = errors.New("credential set not allowed")
	// ErrBMCNetwork marks a BMC outside the site's networks for its owner.
	ErrBMCNetwork = errors.New("BMC outside the site's networks")
	// ErrPlainHTTP marks a BMC reached over plain HTTP where the site does
	// not allow it.
	ErrPlainHTTP = errors.New("plain HTTP not allowed")
)

// IsLegacy reports whether the reference uses an inline source.
func (r CredentialsRef) IsLegacy() bool { return r.Env != nil || r.File != "" || r.AgeFile != "" }

// CredentialSetFor returns the credential set a node of owner names in
// ref, or why it may not use it.
func (s *SiteSpec) CredentialSetFor(owner string, ref CredentialsRef) (CredentialSet, error) {
	if ref.IsLegacy() {
		return CredentialSet{}, fmt.Errorf("credentialsRef: %w: name a credential set of %s", ErrLegacyCredentials, SiteFile)
	}
	if ref.Set == "" {
		return CredentialSet{}, fmt.Errorf("credentialsRef names no set: %w", ErrCredentialSet)
	}
	var sets map[string]CredentialSet
	if s.Credentials != nil {
		sets = s.Credentials.Sets
	}
	set, ok := sets[ref.Set]
	if !ok {
		return CredentialSet{}, fmt.Errorf("credential set %q is not declared in %s: %w", ref.Set, SiteFile, ErrCredentialSet)
	}
	if len(set.Owners) > 0 && !slices.Contains(set.Owners, owner) {
		return CredentialSet{}, fmt.Errorf("credential set %q is not for owner %s: %w", ref.Set, owner, ErrCredentialSet)
	}
	return set, nil
}

// CredentialSetNames returns the names of the sets a node of owner may
// use, sorted.
func (s *SiteSpec) CredentialSetNames(owner string) []string {
	if s.Credentials == nil {
		return nil
	}
	var names []string
	for name, set := range s.Credentials.Sets {
		if len(set.Owners) == 0 || slices.Contains(set.Owners, owner) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// CheckBMCNetwork checks that a BMC of owner at addr is in a network the
// site allows for that owner, and that plain HTTP goes only where the site
// allows it. fake:// BMCs live in the daemon's memory and send nothing
// over a network: they need no network.
func (s *SiteSpec) CheckBMCNetwork(owner string, addr BMCAddress) error {
	if addr.Driver == "fake" {
		return nil
	}
	host := strings.ToLower(addr.Host())
	ip, ipErr := netip.ParseAddr(host)
	ip = ip.Unmap()
	var matched []BMCNetwork
	for _, nw := range s.BMCNetworks {
		if len(nw.Owners) > 0 && !slices.Contains(nw.Owners, owner) {
			continue
		}
		if nw.matches(host, ip, ipErr == nil) {
			matched = append(matched, nw)
		}
	}
	if len(matched) == 0 {
		return fmt.Errorf("BMC host %s is in no network %s allows for owner %s: %w", host, SiteFile, owner, ErrBMCNetwork)
	}
	if addr.Driver == "redfish" && addr.Endpoint.Scheme == "http" &&
		!slices.ContainsFunc(matched, func(nw BMCNetwork) bool { return nw.AllowPlainHTTP }) {
		return fmt.Errorf("credentials for BMC host %s would cross the network unencrypted: %w", host, ErrPlainHTTP)
	}
	return nil
}

// AuthorizeBMC returns the credential set n's BMC may receive, or why it
// may receive none: the one check that stands between the inventory and
// the daemon's credentials.
func (s *SiteSpec) AuthorizeBMC(n *Node) (CredentialSet, error) {
	set, err := s.CredentialSetFor(n.Spec.Owner, n.Spec.BMC.CredentialsRef)
	if err != nil {
		return CredentialSet{}, err
	}
	addr, err := ParseBMCAddress(n.Spec.BMC.Address)
	if err != nil {
		return CredentialSet{}, fmt.Errorf("bmc.address: %w", err)
	}
	if err := s.CheckBMCNetwork(n.Spec.Owner, addr); err != nil {
		return CredentialSet{}, err
	}
	return set, nil
}

// matches reports whether a BMC host is in the network: an IP literal in
// its CIDR, a name equal to its host or below its *.domain. A name never
// matches a CIDR: what it resolves to is not known when validating.
func (nw BMCNetwork) matches(host string, ip netip.Addr, isIP bool) bool {
	if isIP {
		p, err := netip.ParsePrefix(nw.CIDR)
		return err == nil && p.Masked().Contains(ip)
	}
	pat := strings.ToLower(nw.Host)
	if pat == "" {
		return false
	}
	if domain, ok := strings.CutPrefix(pat, "*."); ok {
		return strings.HasSuffix(host, "."+domain)
	}
	return host == pat
}

// legacyHint says exactly what to write instead of an inline credential
// source: the site set (an existing one when its source is the same) and
// the node's reference.
func legacyHint(site *SiteSpec, node string, ref CredentialsRef) string {
	if c := site.Credentials; c != nil {
		for _, name := range slices.Sorted(maps.Keys(c.Sets)) {
			if sameSource(c.Directory, c.Sets[name], ref) {
				return fmt.Sprintf("%s already declares this source as set %s: write credentialsRef: {set: %s}", SiteFile, name, name)
			}
		}
	}
	name := node + "-bmc"
	var src string
	switch {
	case ref.Env != nil:
		src = fmt.Sprintf("{env: {username: %s, password: %s}}", ref.Env.Username, ref.Env.Password)
	case ref.File != "":
		src = fmt.Sprintf("{file: %s} (with spec.credentials.directory: %s)", path.Base(ref.File), path.Dir(ref.File))
	default:
		src = fmt.Sprintf("{ageFile: %s}", ref.AgeFile)
	}
	return fmt.Sprintf("credential sources are declared only in %s, which admins change: add spec.credentials.sets.%s: %s there, and write credentialsRef: {set: %s} here", SiteFile, name, src, name)
}

// sameSource reports whether a site set reads the same credentials as
// an inline reference; file sets are relative to the site's directory.
func sameSource(dir string, set CredentialSet, ref CredentialsRef) bool {
	switch {
	case ref.Env != nil:
		return set.Env != nil && *set.Env == *ref.Env
	case ref.File != "":
		return set.File != "" && dir != "" && path.Join(dir, set.File) == path.Clean(ref.File)
	default:
		return set.AgeFile != "" && path.Clean(set.AgeFile) == path.Clean(ref.AgeFile)
	}
}
