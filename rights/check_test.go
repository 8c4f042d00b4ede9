package rights

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/schema"
)

func owner(name string, admin bool, emails ...string) *schema.Owner {
	o := &schema.Owner{Kind: schema.KindOwner, Metadata: schema.Meta{Name: name}, Spec: schema.OwnerSpec{Admin: admin}}
	for _, e := range emails {
		o.Spec.Members = append(o.Spec.Members, schema.Member{Email: e})
	}
	return o
}

func baseInventory() *schema.Inventory {
	return &schema.Inventory{
		Site: &schema.Site{Kind: schema.KindSite, Metadata: schema.Meta{Name: "dc1"}, Source: schema.Source{File: "metalsync.yaml"}},
		Owners: []*schema.Owner{
			owner("platform", true, "admin@example.net"),
			owner("tenant", false, "owner@example.net"),
			owner("renter", false, "lessee@example.net"),
		},
		Templates: []*schema.DeployTemplate{{Kind: schema.KindDeployTemplate, Metadata: schema.Meta{Name: "raid1"}}},
		Nodes: []*schema.Node{{
			Kind: schema.KindNode,
			Metadata: schema.Meta{Name: "n1", Annotations: map[string]string{
				LesseeLabelsAnnotation: "env, team/*",
			}},
			Spec: schema.NodeSpec{
				BMC:       schema.BMC{Address: "redfish+https://10.0.0.1/redfish/v1/Systems/1"},
				Owner:     "tenant",
				Lessee:    "renter",
				Labels:    map[string]string{"env": "dev", "rack": "r1"},
				Power:     "on",
				Provision: schema.Provision{State: "available", Image: &schema.Image{URL: "https://i/a.raw", Checksum: "sha256:aa", Format: "raw"}},
			},
		}},
	}
}

// clone deep-copies an inventory through its resources' JSON.
func clone(t *testing.T, inv *schema.Inventory) *schema.Inventory {
	t.Helper()
	out := &schema.Inventory{}
	site := *inv.Site
	out.Site = &site
	for _, o := range inv.Owners {
		c := *o
		c.Spec.Members = append([]schema.Member(nil), o.Spec.Members...)
		out.Owners = append(out.Owners, &c)
	}
	for _, tp := range inv.Templates {
		c := *tp
		out.Templates = append(out.Templates, &c)
	}
	for _, n := range inv.Nodes {
		c := *n
		c.Metadata.Annotations = map[string]string{}
		for k, v := range n.Metadata.Annotations {
			c.Metadata.Annotations[k] = v
		}
		c.Spec.Labels = map[string]string{}
		for k, v := range n.Spec.Labels {
			c.Spec.Labels[k] = v
		}
		out.Nodes = append(out.Nodes, &c)
	}
	return out
}

// TestCheckRoleByField checks every role against every kind of change:
// a change is allowed exactly when the role reaches the rule's minimum.
func TestCheckRoleByField(t *testing.T) {
	node := func(f func(n *schema.Node)) func(*schema.Inventory) {
		return func(inv *schema.Inventory) { f(inv.Nodes[0]) }
	}
	tests := []struct {
		name   string
		change func(*schema.Inventory)
		path   string
		rule   string
		min    Role
	}{
		{"power", node(func(n *schema.Node) { n.Spec.Power = "off" }), "spec.power", "node-power", RoleLessee},
		{"provision state", node(func(n *schema.Node) { n.Spec.Provision.State = "active" }), "spec.provision.state", "node-provision-state", RoleLessee},
		{"image", node(func(n *schema.Node) {
			n.Spec.Provision.Image = &schema.Image{URL: "https://i/x.raw", Checksum: "sha256:aa", Format: "raw"}
		}), "spec.provision.image.url", "node-image", RoleLessee},
		{"deploy templates", node(func(n *schema.Node) { n.Spec.Provision.DeployTemplates = []string{"raid1"} }), "spec.provision.deployTemplates", "node-deploy-templates", RoleLessee},
		{"granted label", node(func(n *schema.Node) { n.Spec.Labels["env"] = "prod" }), "spec.labels.env", "node-label-granted", RoleLessee},
		{"granted label prefix", node(func(n *schema.Node) { n.Spec.Labels["team/a"] = "x" }), `spec.labels["team/a"]`, "node-label-granted", RoleLessee},
		{"label not granted", node(func(n *schema.Node) { n.Spec.Labels["rack"] = "r2" }), "spec.labels.rack", "node-other", RoleOwner},
		{"bmc address", node(func(n *schema.Node) { n.Spec.BMC.Address = "ipmi://10.0.0.9" }), "spec.bmc.address", "node-bmc", RoleOwner},
		{"bmc credentials", node(func(n *schema.Node) { n.Spec.BMC.CredentialsRef.File = "x" }), "spec.bmc.credentialsRef.file", "node-bmc", RoleOwner},
		{"lessee", node(func(n *schema.Node) { n.Spec.Lessee = "" }), "spec.lessee", "node-lessee", RoleOwner},
		{"retired", node(func(n *schema.Node) { n.Spec.Retired = &schema.Reason{Reason: "old"} }), "spec.retired.reason", "node-retired", RoleOwner},
		{"protected", node(func(n *schema.Node) { n.Spec.Protected = &schema.Reason{Reason: "db"} }), "spec.protected.reason", "node-protected", RoleOwner},
		{"quarantine", node(func(n *schema.Node) { n.Spec.Quarantine = &schema.Reason{Reason: "x"} }), "spec.quarantine.reason", "node-quarantine", RoleOwner},
		{"lessee grant", node(func(n *schema.Node) { n.Metadata.Annotations[LesseeLabelsAnnotation] = "*" }), `metadata.annotations["metalsync.dev/lessee-labels"]`, "node-lessee-labels", RoleOwner},
		{"boot mode", node(func(n *schema.Node) { n.Spec.BootMode = "bios" }), "spec.bootMode", "node-other", RoleOwner},
		{"owner", node(func(n *schema.Node) { n.Spec.Owner = "renter" }), "spec.owner", "node-owner", RoleAdmin},
		{"delete node", func(inv *schema.Inventory) { inv.Nodes = nil }, "", "node-delete", RoleOwner},
		{"add node", func(inv *schema.Inventory) {
			inv.Nodes = append(inv.Nodes, &schema.Node{Kind: schema.KindNode, Metadata: schema.Meta{Name: "n2"}, Spec: schema.NodeSpec{Owner: "tenant", Lessee: "renter"}})
		}, "", "node-create", RoleOwner},
		{"owner members", func(inv *schema.Inventory) {
			inv.Owners[1].Spec.Members = append(inv.Owners[1].Spec.Members, schema.Member{Email: "x@example.net"})
		}, "spec.members", "owners-admin", RoleAdmin},
		{"template", func(inv *schema.Inventory) { inv.Templates[0].Spec.Description = "x" }, "spec.description", "templates-admin", RoleAdmin},
		{"site", func(inv *schema.Inventory) { inv.Site.Spec.PowerSync = "report" }, "spec.powerSync", "site-admin", RoleAdmin},
	}
	roles := map[Role]string{
		RoleAdmin:  "admin@example.net",
		RoleOwner:  "owner@example.net",
		RoleLessee: "lessee@example.net",
		RoleNone:   "stranger@example.net",
	}
	for _, tt := range tests {
		for role, email := range roles {
			t.Run(tt.name+"/"+role.String(), func(t *testing.T) {
				old := baseInventory()
				new := clone(t, old)
				tt.change(new)
				got := Check(old, new, Actor{Email: email})
				if len(got) != 1 {
					t.Fatalf("got %d decisions, want 1: %+v", len(got), got)
				}
				d := got[0]
				wantRole := role
				if !strings.HasPrefix(tt.rule, "node-") && role != RoleAdmin {
					wantRole = RoleNone // only nodes have owners and lessees
				}
				want := struct {
					Path, Rule    string
					Role, Allowed any
				}{tt.path, tt.rule, wantRole, role >= tt.min}
				gotV := struct {
					Path, Rule    string
					Role, Allowed any
				}{d.Path, d.Rule, d.Role, d.Allowed}
				if diff := cmp.Diff(want, gotV); diff != "" {
					t.Errorf("decision (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestCheckUntrusted(t *testing.T) {
	old := baseInventory()
	new := clone(t, old)
	new.Nodes[0].Spec.Power = "off"
	got := Check(old, new, Actor{Email: "admin@example.net", Untrusted: "unsigned commit"})
	if len(got) != 1 || got[0].Allowed || got[0].Rule != RuleUntrusted {
		t.Fatalf("got %+v, want one refusal by %q", got, RuleUntrusted)
	}
}

// TestCheckRolesFromOldRevision: adding yourself to an owner does not
// give you its rights in the same change.
func TestCheckRolesFromOldRevision(t *testing.T) {
	old := baseInventory()
	new := clone(t, old)
	new.Owners[1].Spec.Members = append(new.Owners[1].Spec.Members, schema.Member{Email: "eve@example.net"})
	new.Nodes[0].Spec.BMC.Address = "ipmi://203.0.113.9"
	for _, d := range Check(old, new, Actor{Email: "eve@example.net"}) {
		if d.Allowed {
			t.Errorf("%s %s %s allowed, want refused", d.Kind, d.Name, d.Path)
		}
	}
}

func TestFieldPath(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"spec", "bmc", "address"}, "spec.bmc.address"},
		{[]string{"spec", "labels", "a.b/c"}, `spec.labels["a.b/c"]`},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := FieldPath(tt.in); got != tt.want {
			t.Errorf("FieldPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
