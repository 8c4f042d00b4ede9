package reconcile

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/test/tools"
)

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// testRegistry declares capabilities like the real drivers: redfish can do
// everything, ipmi has no virtual media and reads no inventory.
var testRegistry = drivers.Registry{
	"redfish": {Capabilities: []drivers.Capability{drivers.CapPower, drivers.CapBoot, drivers.CapMedia, drivers.CapInventory, drivers.CapBIOS, drivers.CapRAID, drivers.CapFirmware}},
	"ipmi":    {Capabilities: []drivers.Capability{drivers.CapPower, drivers.CapBoot}},
	"fake":    {Capabilities: []drivers.Capability{drivers.CapPower, drivers.CapBoot, drivers.CapMedia, drivers.CapInventory, drivers.CapBIOS, drivers.CapRAID, drivers.CapFirmware}},
}

var withAgent = Capabilities{Drivers: testRegistry, Agent: func(string) bool { return true }}
var noAgent = Capabilities{Drivers: testRegistry}

var testImage = &schema.Image{URL: "https://images.example/ubuntu-24.04.raw", Checksum: "sha256:" + strings.Repeat("a", 64), Format: "raw"}
var newImage = &schema.Image{URL: "https://images.example/ubuntu-26.04.raw", Checksum: "sha256:" + strings.Repeat("b", 64), Format: "raw"}

// node builds a node; edit tweaks the spec.
func node(name, addr string, state string, edit func(*schema.NodeSpec)) *schema.Node {
	n := &schema.Node{APIVersion: schema.APIVersion, Kind: schema.KindNode, Metadata: schema.Meta{Name: name},
		Spec: schema.NodeSpec{
			BMC:       schema.BMC{Address: addr, CredentialsRef: schema.CredentialsRef{Env: &schema.EnvCredentials{Username: "BMC_USER", Password: "BMC_PASS"}}},
			Owner:     "infra",
			Provision: schema.Provision{State: state},
		}}
	if state == "active" {
		n.Spec.Provision.Image = testImage
	}
	if edit != nil {
		edit(&n.Spec)
	}
	return n
}

func template(name string, steps ...schema.Step) *schema.DeployTemplate {
	return &schema.DeployTemplate{APIVersion: schema.APIVersion, Kind: schema.KindDeployTemplate, Metadata: schema.Meta{Name: name},
		Spec: schema.DeployTemplateSpec{Steps: steps}}
}

func inventory(site *schema.SiteSpec, templates []*schema.DeployTemplate, nodes ...*schema.Node) *schema.Inventory {
	// As schema.Load leaves it: a site always, with its defaults.
	spec := schema.SiteSpec{}
	if site != nil {
		spec = *site
	}
	inv := &schema.Inventory{Nodes: nodes, Templates: templates,
		Site: &schema.Site{APIVersion: schema.APIVersion, Kind: schema.KindSite, Metadata: schema.Meta{Name: "site"}, Spec: spec.Defaults()}}
	return inv
}

// settled is the status of a node that was enrolled and inspected.
func settled(state, power string) schema.NodeStatusBody {
	st := schema.NodeStatusBody{ProvisionState: state, Power: power, Inspect: &schema.Inspected{At: "2026-11-01T00:00:00Z"}}
	if state == "active" {
		st.Deployed = &schema.Deployed{Image: testImage.URL, Checksum: testImage.Checksum}
	}
	return st
}

// render writes a plan compactly for golden files.
func render(p plan.Plan) string {
	var b strings.Builder
	for _, n := range p.Nodes {
		fmt.Fprintf(&b, "%s (%s): %s -> %s, power %s -> %s\n", n.Node, n.Driver, n.From, n.To, n.PowerFrom, n.PowerTo)
		for _, op := range n.Operations {
			fmt.Fprintf(&b, "  %s (%s): %s -> %s", op.Kind, op.Reason, op.From, op.To)
			if op.Resume > 0 {
				fmt.Fprintf(&b, ", resume at step %d", op.Resume+1)
			}
			b.WriteString("\n")
			for i, s := range op.Steps {
				mark := " "
				if i < op.Resume {
					mark = "x"
				}
				fmt.Fprintf(&b, "   %s%2d. %-34s [%s] %s", mark, i+1, s.Name(), s.State, s.Source)
				if s.Destructive {
					b.WriteString(" DESTRUCTIVE")
				}
				if s.Expect.Power != "" {
					fmt.Fprintf(&b, " expect power %s", s.Expect.Power)
				}
				var payload any
				switch {
				case s.Agent != nil && len(s.Agent.Args) > 0:
					payload = s.Agent.Args
				case s.BIOS != nil:
					payload = s.BIOS
				case s.RAID != nil:
					payload = s.RAID
				case s.Firmware != nil:
					payload = s.Firmware
				}
				if payload != nil {
					js, _ := json.Marshal(payload)
					fmt.Fprintf(&b, " %s", js)
				}
				b.WriteString("\n")
			}
		}
		for _, note := range n.Notes {
			fmt.Fprintf(&b, "  note (%s): %s\n", note.Reason, note.Message)
		}
		if n.Probe {
			b.WriteString("  probe: read power to see whether the fault cleared\n")
		}
		if n.Error != "" {
			fmt.Fprintf(&b, "  ERROR: %s\n", n.Error)
		}
	}
	fmt.Fprintf(&b, "%s\n", p.Summarize().Line())
	return b.String()
}

// golden compares got with testdata/name.golden; METALSYNC_UPDATE=1
// rewrites the file.
func golden(t *testing.T, name, got string) {
	t.Helper()
	tools.Golden(t, filepath.Join("testdata", name+".golden"), []byte(got))
}
