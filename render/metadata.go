package render

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"strings"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/schema"
)

// Node is everything render needs to know about one machine. It is a
// plain value so that the same Node always gives the same bytes.
type Node struct {
	// Name is the inventory name; it is also the hostname.
	Name string
	// InstanceID is the instance UUID cloud-init keys its first boot on.
	// Empty means InstanceID(Name).
	InstanceID string
	// PublicKeys are SSH public keys for the default user.
	PublicKeys []string
	// Network is the static network; nil or dhcp: true writes no network
	// file, and the machine falls back to DHCP.
	Network *schema.Network
	// UserData is written verbatim (user_data / user-data) when not nil.
	UserData []byte
	// Agent, when set, tells the deploy agent where to call back.
	Agent *Agent
}

// Agent is the deploy agent's callback settings. The token is written to
// the media (which is served only behind an unguessable URL) and nowhere
// else: Agent never prints it.
type Agent struct {
	URL   string
	Token string
	// CA is the PEM certificate the agent listener's chain ends in.
	CA string
}

// String redacts the token.
func (a Agent) String() string { return fmt.Sprintf("{URL:%s Token:[redacted]}", a.URL) }

// GoString redacts the token in %#v.
func (a Agent) GoString() string { return "render.Agent" + a.String() }

// InstanceID derives a stable instance UUID (version 5 layout) from a node
// name, so that re-rendering a node's media does not look like a new
// instance to cloud-init.
func InstanceID(name string) string {
	h := sha1.Sum([]byte("metalsync.dev/node/" + name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func (n Node) instanceID() string {
	if n.InstanceID != "" {
		return n.InstanceID
	}
	return InstanceID(n.Name)
}

func (n Node) check() error {
	if err := checkDomain(n.Name); err != nil || strings.Contains(n.Name, "_") {
		return fmt.Errorf("node name %q is not a valid hostname", n.Name)
	}
	for i, k := range n.PublicKeys {
		if k == "" || strings.ContainsAny(k, "\r\n") {
			return fmt.Errorf("public key %d: must be one non-empty line", i+1)
		}
	}
	if strings.ContainsAny(n.InstanceID, "\r\n\"\\") {
		return errors.New("instance id: invalid characters")
	}
	if n.Agent != nil {
		if n.Agent.URL == "" || strings.ContainsAny(n.Agent.URL+n.Agent.Token, "\r\n") {
			return errors.New("agent: url must be set and neither url nor token may span lines")
		}
	}
	return nil
}

// osMetaData is meta_data.json as Nova writes it (the fields cloud-init
// and the deploy agent read). meta carries metalsync's agent settings.
type osMetaData struct {
	UUID       string            `json:"uuid"`
	Name       string            `json:"name"`
	Hostname   string            `json:"hostname"`
	PublicKeys map[string]string `json:"public_keys,omitempty"`
	Meta       map[string]string `json:"meta,omitempty"`
}

// Keys of the agent settings in meta data.
const (
	MetaAgentURL   = agentapi.MetaURL
	MetaAgentToken = agentapi.MetaToken
	MetaAgentCA    = agentapi.MetaCA
)

// MetaData returns the config drive openstack/latest/meta_data.json.
func MetaData(n Node) ([]byte, error) {
	if err := n.check(); err != nil {
		return nil, err
	}
	md := osMetaData{UUID: n.instanceID(), Name: n.Name, Hostname: n.Name}
	if len(n.PublicKeys) > 0 {
		md.PublicKeys = map[string]string{}
		for i, k := range n.PublicKeys {
			// JSON object keys are sorted: zero-pad to keep file order.
			md.PublicKeys[fmt.Sprintf("key-%03d", i)] = k
		}
	}
	if n.Agent != nil {
		md.Meta = map[string]string{MetaAgentURL: n.Agent.URL, MetaAgentToken: n.Agent.Token}
		if n.Agent.CA != "" {
			md.Meta[MetaAgentCA] = n.Agent.CA
		}
	}
	return marshalJSON(md)
}

// NoCloudMetaData returns the NoCloud meta-data (YAML).
func NoCloudMetaData(n Node) ([]byte, error) {
	if err := n.check(); err != nil {
		return nil, err
	}
	var y yamlWriter
	y.line(0, "instance-id: "+q(n.instanceID()))
	y.line(0, "local-hostname: "+q(n.Name))
	y.list(0, "public-keys", n.PublicKeys)
	if n.Agent != nil {
		y.line(0, MetaAgentURL+": "+q(n.Agent.URL))
		y.line(0, MetaAgentToken+": "+q(n.Agent.Token))
	}
	return []byte(y.String()), nil
}

// NodeFromSchema returns the render input for an inventory node. A node
// whose network does not say dhcp takes the site's default (siteDHCP):
// then no network file is written. Keys, user data and agent settings are
// not in the inventory; the caller adds them.
func NodeFromSchema(node *schema.Node, siteDHCP bool) Node {
	rn := Node{Name: node.Name(), Network: node.Spec.Network}
	if n := node.Spec.Network; n != nil && n.DHCP == nil && siteDHCP {
		cp, dhcp := *n, true
		cp.DHCP = &dhcp
		rn.Network = &cp
	}
	return rn
}
