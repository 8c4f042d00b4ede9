package rights

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"metalsync.dev/metalsync/schema"
)

// Change is one changed field of one resource. Create and delete changes
// name the whole resource (Field is nil).
type Change struct {
	Kind  string   `json:"kind"`
	Name  string   `json:"name"`
	File  string   `json:"file,omitempty"`
	Op    Op       `json:"op"`
	Field []string `json:"-"`
}

// Path is the changed field as people write it: spec.bmc.address,
// spec.labels["topology.kubernetes.io/zone"]; "" for a whole resource.
func (c Change) Path() string { return FieldPath(c.Field) }

// FieldPath joins field names, quoting those that are not plain words.
func FieldPath(f []string) string {
	var b strings.Builder
	for i, s := range f {
		if plain(s) {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
			continue
		}
		b.WriteString("[" + strconv.Quote(s) + "]")
	}
	return b.String()
}

func plain(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// Actor is who made a change: the e-mail a commit names, and when that
// e-mail cannot be trusted (a required signature is missing or does not
// verify), why.
type Actor struct {
	Email     string `json:"email"`
	Untrusted string `json:"untrusted,omitempty"`
}

// Decision is the verdict on one change.
type Decision struct {
	Change
	Path    string `json:"path,omitempty"`
	Role    Role   `json:"role"`
	Allowed bool   `json:"allowed"`
	Rule    string `json:"rule"`
	Why     string `json:"why"`
}

// DiagnosticCode is the code of a refused change reported as a diagnostic
// (the daemon's refused-revision report).
const DiagnosticCode = "rights"

// RuleUntrusted decides every change of an actor whose e-mail could not be
// trusted.
const RuleUntrusted = "signature"

// Check decides every change from old to new made by who. Who's roles are
// read from old: a change cannot grant the rights it needs. A nil old is an
// empty repository.
func Check(old, new *schema.Inventory, who Actor) []Decision {
	changes := Diff(old, new)
	table := Table()
	out := make([]Decision, 0, len(changes))
	admin := isAdmin(old, who.Email)
	for _, c := range changes {
		d := Decision{Change: c, Path: c.Path()}
		if who.Untrusted != "" {
			d.Rule, d.Why = RuleUntrusted, who.Untrusted
			out = append(out, d)
			continue
		}
		n := nodeFor(old, new, c)
		d.Role = roleOf(old, n, who.Email, admin)
		granted := func(string) bool { return false }
		if n != nil {
			granted = grantedKeys(n.Metadata.Annotations[LesseeLabelsAnnotation])
		}
		for _, r := range table {
			if r.match(c, granted) {
				d.Rule, d.Why, d.Allowed = r.Name, r.Text, d.Role >= r.Min
				break
			}
		}
		if d.Rule == "" {
			d.Rule, d.Why = "default-deny", "no rule allows changing "+c.Kind+" resources"
		}
		out = append(out, d)
	}
	return out
}

// nodeFor is the node whose owner and lessee decide c: the old one, or the
// new one for a node being added.
func nodeFor(old, new *schema.Inventory, c Change) *schema.Node {
	if c.Kind != schema.KindNode {
		return nil
	}
	if old != nil {
		if n := old.Node(c.Name); n != nil {
			return n
		}
	}
	if new != nil {
		return new.Node(c.Name)
	}
	return nil
}

func isAdmin(inv *schema.Inventory, email string) bool {
	if inv == nil || email == "" {
		return false
	}
	for _, o := range inv.Owners {
		if o.Spec.Admin && isMember(o, email) {
			return true
		}
	}
	return false
}

func isMember(o *schema.Owner, email string) bool {
	if o == nil {
		return false
	}
	for _, m := range o.Spec.Members {
		if strings.EqualFold(m.Email, email) {
			return true
		}
	}
	return false
}

func roleOf(old *schema.Inventory, n *schema.Node, email string, admin bool) Role {
	switch {
	case admin:
		return RoleAdmin
	case n == nil || email == "":
		return RoleNone
	}
	// Owners are read from the old revision; a new node's owner must
	// already exist there.
	owner := func(name string) *schema.Owner {
		if old == nil || name == "" {
			return nil
		}
		return old.Owner(name)
	}
	switch {
	case isMember(owner(n.Spec.Owner), email):
		return RoleOwner
	case isMember(owner(n.Spec.Lessee), email):
		return RoleLessee
	}
	return RoleNone
}

// Members returns every member entry with email across the owners of inv.
func Members(inv *schema.Inventory, email string) []schema.Member {
	if inv == nil {
		return nil
	}
	var out []schema.Member
	for _, o := range inv.Owners {
		for _, m := range o.Spec.Members {
			if strings.EqualFold(m.Email, email) {
				out = append(out, m)
			}
		}
	}
	return out
}

// resource is one inventory file's resource, keyed by kind and name.
type resource struct {
	kind, name, file string
	value            any
}

func resources(inv *schema.Inventory) map[[2]string]resource {
	m := map[[2]string]resource{}
	if inv == nil {
		return m
	}
	if inv.Site != nil && inv.Site.Source.File != "" {
		m[[2]string{schema.KindSite, ""}] = resource{schema.KindSite, inv.Site.Metadata.Name, inv.Site.Source.File, inv.Site}
	}
	for _, n := range inv.Nodes {
		m[[2]string{schema.KindNode, n.Name()}] = resource{schema.KindNode, n.Name(), n.Source.File, n}
	}
	for _, o := range inv.Owners {
		m[[2]string{schema.KindOwner, o.Metadata.Name}] = resource{schema.KindOwner, o.Metadata.Name, o.Source.File, o}
	}
	for _, t := range inv.Templates {
		m[[2]string{schema.KindDeployTemplate, t.Metadata.Name}] = resource{schema.KindDeployTemplate, t.Metadata.Name, t.Source.File, t}
	}
	return m
}

// Diff lists every changed field of every resource from old to new, sorted
// by kind, name and field. Status files are not resources: only the daemon
// writes them.
func Diff(old, new *schema.Inventory) []Change {
	a, b := resources(old), resources(new)
	var out []Change
	for k, ra := range a {
		rb, ok := b[k]
		if !ok {
			out = append(out, Change{Kind: ra.kind, Name: ra.name, File: ra.file, Op: OpDelete})
			continue
		}
		if ra.value == rb.value {
			continue // a schema.Loader shares the value of an unchanged file
		}
		for _, f := range fieldDiff(tree(ra.value), tree(rb.value), nil) {
			out = append(out, Change{Kind: rb.kind, Name: rb.name, File: rb.file, Op: OpModify, Field: f})
		}
	}
	for k, rb := range b {
		if _, ok := a[k]; !ok {
			out = append(out, Change{Kind: rb.kind, Name: rb.name, File: rb.file, Op: OpCreate})
		}
	}
	slices.SortFunc(out, func(x, y Change) int {
		if c := strings.Compare(x.Kind, y.Kind); c != 0 {
			return c
		}
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		return slices.Compare(x.Field, y.Field)
	})
	return out
}

// tree is v as generic JSON, the form its fields are compared in.
func tree(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		// The schema types always marshal; a failure is a programming
		// error that must not pass as "no change".
		return fmt.Sprintf("unmarshalable: %v", err)
	}
	var t any
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Sprintf("unmarshalable: %v", err)
	}
	return t
}

// fieldDiff returns the paths of the leaves that differ between a and b.
// Objects are compared field by field; lists and scalars as a whole.
func fieldDiff(a, b any, at []string) [][]string {
	ma, oka := a.(map[string]any)
	mb, okb := b.(map[string]any)
	if (oka || a == nil) && (okb || b == nil) && (oka || okb) {
		keys := map[string]bool{}
		for k := range ma {
			keys[k] = true
		}
		for k := range mb {
			keys[k] = true
		}
		var out [][]string
		for k := range keys {
			out = append(out, fieldDiff(ma[k], mb[k], append(slices.Clip(at), k))...)
		}
		return out
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	return [][]string{slices.Clone(at)}
}
