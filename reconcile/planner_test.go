package reconcile

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

const (
	rf   = "redfish+https://10.0.0.5/redfish/v1/Systems/1"
	ipmi = "ipmi://10.0.1.5:623"
)

func reason(r string) *schema.Reason { return &schema.Reason{Reason: r} }

func TestPlanGolden(t *testing.T) {
	templates := []*schema.DeployTemplate{
		template("bios-perf",
			schema.Step{Interface: "bios", Step: "apply_configuration", Priority: 110, Args: &schema.BIOSArgs{Settings: schema.BIOSSettings{"SriovEnable": "Enabled"}}},
		),
		template("raid1",
			schema.Step{Interface: "raid", Step: "create_configuration", Priority: 110, Args: &schema.RAIDArgs{LogicalDisks: []schema.LogicalDisk{{Name: "os", RAIDLevel: "1", Size: 200}}}},
			// Same priority as bios above: Ironic's tie-break runs bios first.
		),
		template("tuning",
			// Ties with write_image at 80: deploy interface, so core first
			// (position), then this one.
			schema.Step{Interface: "deploy", Step: "erase_devices", Priority: 80},
			// Management outranks deploy at equal priority 60.
			schema.Step{Interface: "management", Step: "set_boot_device", Priority: 60, Args: &schema.BootDeviceArgs{Device: "pxe"}},
			// Overrides the core step's priority.
			schema.Step{Interface: "deploy", Step: "write_image", Priority: 90},
			schema.Step{Interface: "power", Step: "reboot", Priority: 110},
		),
		template("bad-window",
			schema.Step{Interface: "deploy", Step: "erase_devices", Priority: 30},
		),
		template("ironic-forms",
			// Ironic's argument shapes: settings as a list, raid_config with
			// logical disks; controller: software makes the step in-band.
			schema.Step{Interface: "bios", Step: "apply_configuration", Priority: 120, Args: &schema.BIOSArgs{Settings: schema.BIOSSettings{"ProcHyperthreading": "Disabled"}}},
			schema.Step{Interface: "raid", Step: "create_configuration", Priority: 101, Args: &schema.RAIDArgs{LogicalDisks: []schema.LogicalDisk{{Name: "data", RAIDLevel: "6"}}}},
			schema.Step{Interface: "raid", Step: "apply_configuration", Priority: 95, Args: &schema.RAIDArgs{LogicalDisks: []schema.LogicalDisk{{RAIDLevel: "1", Controller: "software"}}}},
		),
		template("dup", schema.Step{Interface: "bios", Step: "apply_configuration", Priority: 5, Args: &schema.BIOSArgs{Settings: schema.BIOSSettings{"x": "y"}}}),
	}
	report := &schema.SiteSpec{PowerSync: "report"}
	deployingOp := func(step int) schema.NodeStatusBody {
		st := settled("deploying", "on")
		st.Target = "active"
		st.Operation = &schema.Operation{Kind: "deploy", Step: step, Steps: []string{
			"insert-media", "set-boot cd", "power on", "agent deploy.write_image", "set-boot disk", "power off", "eject-media", "power on"}}
		return st
	}
	tests := []struct {
		name string
		inv  *schema.Inventory
		obs  Observed
		caps Capabilities
	}{
		{"new-to-active", inventory(nil, templates, node("n1", rf, "active", nil)), nil, withAgent},
		{"new-no-agent", inventory(nil, nil, node("n1", rf, "active", nil), node("n2", rf, "manageable", nil)), nil, noAgent},
		{"ipmi", inventory(nil, nil, node("n1", ipmi, "manageable", nil), node("n2", ipmi, "available", nil)), nil, withAgent},
		{"inspect-token", inventory(nil, nil,
			node("n1", rf, "manageable", func(s *schema.NodeSpec) { s.Inspect = "2026-11-25" }),
			node("n2", rf, "manageable", func(s *schema.NodeSpec) { s.Inspect = "same" }),
			node("n3", rf, "available", func(s *schema.NodeSpec) { s.Inspect = "again" }),
			node("n4", rf, "active", func(s *schema.NodeSpec) { s.Inspect = "again" }),
		), Observed{
			"n4": settled("active", "on"),
			"n1": settled("manageable", "off"),
			"n2": func() schema.NodeStatusBody { s := settled("manageable", "off"); s.Inspect.Token = "same"; return s }(),
			"n3": settled("available", "off"),
		}, withAgent},
		{"mac-mismatch", inventory(nil, nil,
			// The spec's MAC is not among the inspected NICs: booting the
			// agent with this network would leave the node unreachable.
			node("wrong-mac", rf, "available", func(s *schema.NodeSpec) { s.Network = phyNet("52:54:00:00:00:99") }),
			node("right-mac", rf, "available", func(s *schema.NodeSpec) { s.Network = phyNet("52:54:00:00:00:01") }),
			node("dhcp", rf, "available", func(s *schema.NodeSpec) {
				s.Network = phyNet("52:54:00:00:00:99")
				s.Network.DHCP = new(true)
			}),
			// The BMC did not report NICs: the guard is off, and says so.
			node("nics-unknown", rf, "available", func(s *schema.NodeSpec) { s.Network = phyNet("52:54:00:00:00:99") }),
		), Observed{
			"nics-unknown": func() schema.NodeStatusBody {
				s := settled("manageable", "off")
				s.Inspect.Warnings = []string{"network: not read: GET /redfish/v1/Systems/1/EthernetInterfaces: 404 not found"}
				s.Inspect.Inventory = map[string]any{"nicsUnknown": true}
				return s
			}(),
			"wrong-mac": withNICs(settled("manageable", "off")),
			"right-mac": withNICs(settled("manageable", "off")),
			"dhcp":      withNICs(settled("manageable", "off")),
		}, withAgent},
		{"template-priorities", inventory(nil, templates,
			node("n1", rf, "active", func(s *schema.NodeSpec) { s.Provision.DeployTemplates = []string{"raid1", "bios-perf", "tuning"} }),
			node("n2", rf, "active", func(s *schema.NodeSpec) { s.Provision.DeployTemplates = []string{"bad-window"} }),
			node("n3", rf, "active", func(s *schema.NodeSpec) { s.Provision.DeployTemplates = []string{"bios-perf", "dup"} }),
			node("n4", rf, "active", func(s *schema.NodeSpec) { s.Provision.DeployTemplates = []string{"missing"} }),
			node("n5", ipmi, "active", func(s *schema.NodeSpec) { s.Provision.DeployTemplates = []string{"bios-perf"} }),
			node("n6", rf, "active", func(s *schema.NodeSpec) { s.Provision.DeployTemplates = []string{"ironic-forms"} }),
		), Observed{"n6": settled("available", "off"), "n1": settled("available", "off"), "n2": settled("available", "off"), "n3": settled("available", "off"), "n4": settled("available", "off"), "n5": settled("available", "off")}, withAgent},
		{"undeploy", inventory(nil, nil, node("n1", rf, "available", nil), node("n2", rf, "manageable", nil)),
			Observed{"n1": settled("active", "on"), "n2": settled("active", "on")}, withAgent},
		{"adopt", inventory(nil, nil,
			node("n1", rf, "active", func(s *schema.NodeSpec) { s.Provision.Adopt = true }),
			node("n2", ipmi, "active", func(s *schema.NodeSpec) { s.Provision.Adopt = true; s.Provision.Image = nil }),
		), Observed{"n2": {ProvisionState: "manageable", Power: "on"}}, noAgent},
		{"image-change", inventory(nil, nil,
			node("n1", rf, "active", func(s *schema.NodeSpec) { s.Provision.Image = newImage }),
			node("n2", rf, "active", func(s *schema.NodeSpec) { s.Provision.Image = newImage; s.Protected = reason("database primary") }),
			node("n3", rf, "available", func(s *schema.NodeSpec) { s.Protected = reason("database primary") }),
		), Observed{"n1": settled("active", "on"), "n2": settled("active", "on"), "n3": settled("active", "on")}, withAgent},
		{"drift-enforce", inventory(nil, nil,
			node("n1", rf, "active", func(s *schema.NodeSpec) { s.Power = "on" }),
			node("n2", rf, "manageable", func(s *schema.NodeSpec) { s.Power = "off" }),
			node("n3", rf, "manageable", func(s *schema.NodeSpec) { s.Power = "off"; s.DisablePowerOff = true }),
			node("n4", rf, "manageable", func(s *schema.NodeSpec) { s.Power = "off" }),
		), Observed{"n1": settled("active", "off"), "n2": settled("manageable", "on"), "n3": settled("manageable", "on"), "n4": settled("manageable", "unknown")}, withAgent},
		{"drift-report", inventory(report, nil,
			node("n1", rf, "active", func(s *schema.NodeSpec) { s.Power = "on" }),
			node("n2", rf, "manageable", func(s *schema.NodeSpec) { s.Power = "off" }),
		), Observed{"n1": settled("active", "off"), "n2": settled("manageable", "on")}, withAgent},
		{"retirement", inventory(nil, nil,
			node("active-kept", rf, "active", func(s *schema.NodeSpec) { s.Retired = reason("EOL 2027"); s.Provision.Image = newImage }),
			node("active-released", rf, "available", func(s *schema.NodeSpec) { s.Retired = reason("EOL 2027") }),
			node("available", rf, "active", func(s *schema.NodeSpec) { s.Retired = reason("EOL 2027") }),
			node("manageable-on", rf, "available", func(s *schema.NodeSpec) { s.Retired = reason("EOL 2027") }),
			// Retirement parks it off even though its spec still says on.
			node("parked-spec-on", rf, "manageable", func(s *schema.NodeSpec) { s.Retired = reason("EOL 2027"); s.Power = "on" }),
		), Observed{
			"active-kept": settled("active", "on"), "active-released": settled("active", "on"),
			"available": settled("available", "off"), "manageable-on": settled("manageable", "on"),
			"parked-spec-on": settled("manageable", "on"),
		}, withAgent},
		{"quarantine", inventory(nil, nil,
			node("mid-deploy", rf, "active", func(s *schema.NodeSpec) { s.Quarantine = reason("DIMM errors, ticket OPS-12") }),
			node("faulted", rf, "active", nil),
			node("new", rf, "active", func(s *schema.NodeSpec) { s.Quarantine = reason("cabling") }),
		), Observed{
			"mid-deploy": deployingOp(3),
			"faulted": func() schema.NodeStatusBody {
				s := deployingOp(1)
				s.Fault = &schema.Fault{Reason: "power failure: BMC unreachable", Failures: 3}
				return s
			}(),
		}, withAgent},
		{"removed", inventory(nil, nil, node("kept", rf, "manageable", nil)),
			Observed{"kept": settled("manageable", "off"), "gone": settled("active", "on"), "gone-off": settled("manageable", "off")}, withAgent},
		{"resume", inventory(nil, nil,
			node("at-write", rf, "active", nil),
			node("after-write", rf, "active", nil),
			node("edited", rf, "active", func(s *schema.NodeSpec) { s.DisablePowerOff = true }),
			node("no-record", rf, "active", nil),
			node("cleaning", rf, "available", nil),
		), Observed{
			"at-write":    deployingOp(3),
			"after-write": deployingOp(4),
			"edited":      deployingOp(4),
			"no-record":   settled("deploying", "on"),
			"cleaning": func() schema.NodeStatusBody {
				s := settled("cleaning", "on")
				s.Operation = &schema.Operation{Kind: "undeploy", Step: 4, Steps: []string{
					"power off", "insert-media", "set-boot cd", "power on", "agent deploy.erase_devices_metadata", "power off", "eject-media"}}
				return s
			}(),
		}, withAgent},
		{"failed-states", inventory(nil, nil,
			node("deploy-failed", rf, "active", nil),
			node("clean-failed", rf, "available", nil),
			node("inspect-failed", rf, "manageable", func(s *schema.NodeSpec) { s.Inspect = "t2" }),
			node("error", rf, "available", nil),
			node("bad-state", rf, "available", nil),
			node("bad-address", "ftp://x", "available", nil),
		), Observed{
			"deploy-failed":  settled("deploy failed", "on"),
			"clean-failed":   settled("clean failed", "on"),
			"inspect-failed": settled("inspect failed", "off"),
			"error":          settled("error", "on"),
			"bad-state":      settled("exploded", "on"),
		}, withAgent},
		// An inspection that keeps failing does not hold power back: the
		// drift is enforced before the inspection is tried again; with
		// powerSync: report, or no drift, only the inspection is retried.
		{"inspect-failed-power", inventory(nil, nil,
			node("never-inspected", rf, "manageable", func(s *schema.NodeSpec) { s.Power = "on" }),
			node("token", rf, "manageable", func(s *schema.NodeSpec) { s.Power = "off"; s.Inspect = "t2" }),
			node("no-drift", rf, "manageable", func(s *schema.NodeSpec) { s.Power = "off"; s.Inspect = "t2" }),
			node("disable-power-off", rf, "manageable", func(s *schema.NodeSpec) { s.Power = "off"; s.Inspect = "t2"; s.DisablePowerOff = true }),
		), Observed{
			"never-inspected":   {ProvisionState: "inspect failed", Power: "off", LastError: "inspect: GET /redfish/v1/Systems/1: 404 not found"},
			"token":             settled("inspect failed", "on"),
			"no-drift":          settled("inspect failed", "off"),
			"disable-power-off": settled("inspect failed", "on"),
		}, withAgent},
		{"inspect-failed-report", inventory(report, nil,
			node("never-inspected", rf, "manageable", func(s *schema.NodeSpec) { s.Power = "on" }),
		), Observed{
			"never-inspected": {ProvisionState: "inspect failed", Power: "off"},
		}, withAgent},
		{"no-changes", inventory(nil, nil,
			node("n1", rf, "active", func(s *schema.NodeSpec) { s.Power = "on" }),
			node("n2", rf, "manageable", nil),
		), Observed{"n1": settled("active", "on"), "n2": settled("manageable", "off")}, withAgent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Plan(tt.inv, tt.obs, tt.caps, testNow)
			golden(t, tt.name, render(p))
			// The plan survives its JSON form unchanged.
			b, err := plan.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			back, err := plan.Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(p, back); diff != "" {
				t.Errorf("JSON round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlanPure checks that planning twice gives the same plan and does not
// change its inputs.
func TestPlanPure(t *testing.T) {
	inv := inventory(nil, nil, node("b", rf, "active", nil), node("a", rf, "available", nil))
	obs := Observed{"a": settled("manageable", "off"), "z": settled("active", "on")}
	before := obs.Digest()
	p1 := Plan(inv, obs, withAgent, testNow)
	p2 := Plan(inv, obs, withAgent, testNow)
	if diff := cmp.Diff(p1, p2); diff != "" {
		t.Errorf("two plans differ (-first +second):\n%s", diff)
	}
	if obs.Digest() != before {
		t.Error("Plan changed the observation")
	}
	var names []string
	for _, n := range p1.Nodes {
		names = append(names, n.Node)
	}
	if diff := cmp.Diff([]string{"a", "b", "z"}, names); diff != "" {
		t.Errorf("node order (-want +got):\n%s", diff)
	}
}

func TestPlanHasChanges(t *testing.T) {
	tests := []struct {
		name string
		inv  *schema.Inventory
		obs  Observed
		want bool
	}{
		{"settled", inventory(nil, nil, node("a", rf, "manageable", nil)), Observed{"a": settled("manageable", "off")}, false},
		{"new", inventory(nil, nil, node("a", rf, "manageable", nil)), nil, true},
		{"only errors", inventory(nil, nil, node("a", rf, "available", nil)), Observed{"a": settled("manageable", "off")}, false},
		{"quarantined", inventory(nil, nil, node("a", rf, "active", func(s *schema.NodeSpec) { s.Quarantine = reason("x") })), nil, false},
		{"forgotten", inventory(nil, nil), Observed{"a": settled("manageable", "off")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Plan(tt.inv, tt.obs, noAgent, testNow).HasChanges(); got != tt.want {
				t.Errorf("HasChanges() = %v, want %v", got, tt.want)
			}
		})
	}
}

func phyNet(mac string) *schema.Network {
	return &schema.Network{Links: []schema.Link{{Name: "eno1", Type: schema.LinkPhy, MAC: mac, Addresses: []string{"192.0.2.10/24"}}}}
}

// withNICs records an inspected inventory with two NICs, as JSON decodes it.
func withNICs(st schema.NodeStatusBody) schema.NodeStatusBody {
	st.Inspect.Inventory = map[string]any{"nics": []any{
		map[string]any{"id": "NIC.1", "mac": "52:54:00:00:00:01"},
		map[string]any{"id": "NIC.2", "mac": "52:54:00:00:00:02"},
	}}
	return st
}
