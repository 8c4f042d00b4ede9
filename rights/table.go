// Package rights decides who may change what in the inventory, modelled on
// Ironic's owner/lessee policy: one ordered table of rules (Table), applied
// to every changed field between two revisions (Check).
package rights

import (
	"strings"
)

// Role is what a person is to one resource. Roles are ordered: each may do
// what the ones below it may.
type Role int

// Roles, lowest first.
const (
	RoleNone   Role = iota // not a member of the resource's owner or lessee
	RoleLessee             // member of the node's lessee
	RoleOwner              // member of the node's owner
	RoleAdmin              // member of an owner with admin: true
)

func (r Role) String() string {
	switch r {
	case RoleLessee:
		return "lessee"
	case RoleOwner:
		return "owner"
	case RoleAdmin:
		return "admin"
	default:
		return "none"
	}
}

// MarshalText writes the role's name, for JSON.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Op is what happened to a resource.
type Op string

// Ops.
const (
	OpCreate Op = "create"
	OpModify Op = "modify"
	OpDelete Op = "delete"
)

// LesseeLabelsAnnotation, on a node, lists the label keys its lessee may
// change (comma-separated; a trailing * matches a prefix). The node's owner
// sets it; the lessee may not.
const LesseeLabelsAnnotation = "metalsync.dev/lessee-labels"

// Rule is one row of the table: changes of Kind (with Op, under Field)
// need at least Min.
type Rule struct {
	Name string
	Kind string // schema.KindNode, ...
	Op   Op     // "" matches every op
	// Field is a prefix of the changed field's path; nil matches every field.
	Field []string
	Min   Role
	// Granted restricts the rule to label keys the node grants its lessee
	// (LesseeLabelsAnnotation).
	Granted bool
	Text    string
}

// Table returns the rules, in the order they are tried: the first that
// matches a change decides it. Admins pass every rule.
func Table() []Rule {
	const node = "Node"
	f := func(p string) []string { return strings.Split(p, ".") }
	return []Rule{
		{Name: "site-admin", Kind: "Site", Min: RoleAdmin, Text: "the site file (metalsync.yaml): admins only"},
		{Name: "owners-admin", Kind: "Owner", Min: RoleAdmin, Text: "owners and their members: admins only"},
		{Name: "templates-admin", Kind: "DeployTemplate", Min: RoleAdmin, Text: "deploy templates: admins only"},
		{Name: "node-create", Kind: node, Op: OpCreate, Min: RoleOwner, Text: "adding a node: its owner or an admin"},
		{Name: "node-delete", Kind: node, Op: OpDelete, Min: RoleOwner, Text: "deleting a node: its owner or an admin"},
		{Name: "node-owner", Kind: node, Field: f("spec.owner"), Min: RoleAdmin, Text: "a node's owner: admins only"},
		{Name: "node-bmc", Kind: node, Field: f("spec.bmc"), Min: RoleOwner, Text: "a node's BMC: its owner or an admin, not its lessee"},
		{Name: "node-lessee", Kind: node, Field: f("spec.lessee"), Min: RoleOwner, Text: "a node's lessee: its owner or an admin"},
		{Name: "node-retired", Kind: node, Field: f("spec.retired"), Min: RoleOwner, Text: "retirement: its owner or an admin"},
		{Name: "node-protected", Kind: node, Field: f("spec.protected"), Min: RoleOwner, Text: "protection: its owner or an admin"},
		{Name: "node-quarantine", Kind: node, Field: f("spec.quarantine"), Min: RoleOwner, Text: "quarantine: its owner or an admin"},
		{Name: "node-lessee-labels", Kind: node, Field: []string{"metadata", "annotations", LesseeLabelsAnnotation}, Min: RoleOwner, Text: "which labels the lessee may change: its owner or an admin"},
		{Name: "node-power", Kind: node, Field: f("spec.power"), Min: RoleLessee, Text: "power: its lessee, owner or an admin"},
		{Name: "node-provision-state", Kind: node, Field: f("spec.provision.state"), Min: RoleLessee, Text: "provision state: its lessee, owner or an admin"},
		{Name: "node-image", Kind: node, Field: f("spec.provision.image"), Min: RoleLessee, Text: "the image: its lessee, owner or an admin"},
		{Name: "node-deploy-templates", Kind: node, Field: f("spec.provision.deployTemplates"), Min: RoleLessee, Text: "deploy templates used: its lessee, owner or an admin"},
		{Name: "node-label-granted", Kind: node, Field: f("spec.labels"), Granted: true, Min: RoleLessee, Text: "labels granted to the lessee (" + LesseeLabelsAnnotation + "): its lessee, owner or an admin"},
		{Name: "node-other", Kind: node, Min: RoleOwner, Text: "anything else of a node: its owner or an admin"},
	}
}

// match reports whether r decides c; granted reports whether the node
// grants its lessee label key.
func (r Rule) match(c Change, granted func(key string) bool) bool {
	if r.Kind != c.Kind || (r.Op != "" && r.Op != c.Op) {
		return false
	}
	if len(r.Field) > len(c.Field) {
		return false
	}
	for i, s := range r.Field {
		if c.Field[i] != s {
			return false
		}
	}
	if r.Granted {
		return len(c.Field) > len(r.Field) && granted(c.Field[len(r.Field)])
	}
	return true
}

// grantedKeys returns the matcher of the label keys an annotation value
// grants.
func grantedKeys(v string) func(string) bool {
	var exact []string
	var prefixes []string
	for _, k := range strings.Split(v, ",") {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
		case strings.HasSuffix(k, "*"):
			prefixes = append(prefixes, strings.TrimSuffix(k, "*"))
		default:
			exact = append(exact, k)
		}
	}
	return func(key string) bool {
		for _, e := range exact {
			if key == e {
				return true
			}
		}
		for _, p := range prefixes {
			if strings.HasPrefix(key, p) {
				return true
			}
		}
		return false
	}
}
