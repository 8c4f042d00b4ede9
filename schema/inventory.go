package schema

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
)

// Inventory is a whole repository at one commit: desired state (site,
// nodes, owners, templates) and the observed status the daemon wrote.
type Inventory struct {
	// Site is never nil after Load, and its unset settings hold their
	// defaults (SiteSpec.Defaults): a repository without metalsync.yaml
	// gets the defaults.
	Site      *Site
	Nodes     []*Node           // sorted by name
	Owners    []*Owner          // sorted by name
	Templates []*DeployTemplate // sorted by name
	// Status holds status files by node name, including nodes that are no
	// longer in the inventory (the planner forgets those explicitly).
	Status map[string]*NodeStatus
}

// Node returns the node called name, or nil.
func (inv *Inventory) Node(name string) *Node {
	for _, n := range inv.Nodes {
		if n.Metadata.Name == name {
			return n
		}
	}
	return nil
}

// Template returns the deploy template called name, or nil.
func (inv *Inventory) Template(name string) *DeployTemplate {
	for _, t := range inv.Templates {
		if t.Metadata.Name == name {
			return t
		}
	}
	return nil
}

// Owner returns the owner called name, or nil.
func (inv *Inventory) Owner(name string) *Owner {
	for _, o := range inv.Owners {
		if o.Metadata.Name == name {
			return o
		}
	}
	return nil
}

// BMCAddress is a parsed node BMC address.
type BMCAddress struct {
	// Driver is the driver name: redfish, ipmi or fake.
	Driver string
	// Endpoint is the URL the driver dials: https://h/redfish/v1/Systems/1,
	// ipmi://h:623, fake://name.
	Endpoint *url.URL
}

// Host returns the host part (without brackets) used to detect two nodes
// sharing one BMC.
func (a BMCAddress) Host() string { return a.Endpoint.Hostname() }

// ParseBMCAddress parses a BMC URL whose scheme picks the driver:
// redfish+https://host/redfish/v1/Systems/1, redfish+http://…,
// ipmi://host[:port], fake://name. IPv6 literals go in brackets.
func ParseBMCAddress(s string) (BMCAddress, error) {
	u, err := url.Parse(s)
	if err != nil {
		return BMCAddress{}, fmt.Errorf("not a URL: %w", err)
	}
	if u.User != nil {
		return BMCAddress{}, fmt.Errorf("credentials in the URL are not allowed; use credentialsRef")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return BMCAddress{}, fmt.Errorf("query and fragment are not allowed")
	}
	if u.Host == "" {
		return BMCAddress{}, fmt.Errorf("missing host (write e.g. redfish+https://10.0.0.5/redfish/v1/Systems/1)")
	}
	host := u.Hostname()
	if strings.Contains(host, ":") && !strings.HasPrefix(u.Host, "[") {
		return BMCAddress{}, fmt.Errorf("IPv6 literal must be in brackets")
	}
	if strings.Contains(host, "%") {
		return BMCAddress{}, fmt.Errorf("IPv6 zones are not supported in BMC addresses")
	}
	if net.ParseIP(host) == nil && !validHostname(host) {
		return BMCAddress{}, fmt.Errorf("invalid host %q", host)
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 || fmt.Sprint(n) != p {
			return BMCAddress{}, fmt.Errorf("invalid port %q", p)
		}
	}
	ep := *u
	switch u.Scheme {
	case "redfish+https", "redfish+http", "redfish":
		ep.Scheme = strings.TrimPrefix(u.Scheme, "redfish+")
		if u.Scheme == "redfish" {
			ep.Scheme = "https"
		}
		if ep.Path != "" && !strings.HasPrefix(ep.Path, "/redfish/v1/Systems/") {
			return BMCAddress{}, fmt.Errorf("redfish path must be /redfish/v1/Systems/<id> or empty, not %q", ep.Path)
		}
		return BMCAddress{Driver: "redfish", Endpoint: &ep}, nil
	case "ipmi":
		if ep.Path != "" && ep.Path != "/" {
			return BMCAddress{}, fmt.Errorf("ipmi address takes no path")
		}
		ep.Path = ""
		return BMCAddress{Driver: "ipmi", Endpoint: &ep}, nil
	case "fake":
		return BMCAddress{Driver: "fake", Endpoint: &ep}, nil
	case "":
		return BMCAddress{}, fmt.Errorf("missing scheme: start with redfish+https://, redfish+http://, ipmi:// or fake://")
	default:
		return BMCAddress{}, fmt.Errorf("unknown scheme %q: use redfish+https, redfish+http, ipmi or fake", u.Scheme)
	}
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// StatusSubDir is the sub-directory of the status directory that a node's
// status belongs in: its file's directory below nodes/ ("rack1" for
// nodes/rack1/r1-n01.yaml, "" for a node directly in nodes/ or unknown).
// Mirroring the layout keeps every Git tree small on large fleets.
func (inv *Inventory) StatusSubDir(node string) string {
	n := inv.Node(node)
	if n == nil {
		return ""
	}
	return subDir(n.Source.File, NodesDir)
}

// StatusPath is where node's status file was read from, relative to the
// status directory ("" when there is none).
func (inv *Inventory) StatusPath(node string) string {
	st, ok := inv.Status[node]
	if !ok {
		return ""
	}
	dir := path.Clean(inv.Site.Spec.Status.Directory)
	return strings.TrimPrefix(st.Source.File, dir+"/")
}

func subDir(file, top string) string {
	d := path.Dir(file)
	if d == top || d == "." {
		return ""
	}
	return strings.TrimPrefix(d, top+"/")
}
