// Package inventorygen generates large, realistic inventory repositories
// for benchmarks and scale tests: sharded node directories (one per rack),
// bonds, VLANs, dual-stack addresses, three owners and three templates.
package inventorygen

import (
	"fmt"
	"metalsync.dev/metalsync/schema"
	"os"
	"path/filepath"
	"strings"
)

// Options shape a generated inventory.
type Options struct {
	Nodes   int
	PerRack int // nodes per rack directory; default 40
	// Driver picks the BMC scheme: "redfish" (default), "ipmi" or "fake".
	Driver string
	// Status also writes status/<rack>/<node>.yaml as if every node had reached
	// its desired state, except that a Drift share of nodes (0–1) is
	// observed powered off: they plan a power change.
	Status bool
	Drift  float64
}

const imageURL = "https://images.example.net/ubuntu-24.04-server.raw"
const imageSum = "sha256:84f825635599f81ed33f62c5fc4c73f66044d1468b060d65f83855eb9c8bfe77"

// desiredState is the provision state of the i-th node.
func desiredState(i int) string {
	return []string{"active", "active", "active", "available", "manageable"}[i%5]
}

// NodeName returns the name of the i-th generated node.
func NodeName(i, perRack int) string {
	if perRack <= 0 {
		perRack = 40
	}
	return fmt.Sprintf("r%04d-n%02d", i/perRack, i%perRack)
}

// Files returns the inventory as repository paths and contents.
func Files(o Options) map[string][]byte {
	if o.PerRack <= 0 {
		o.PerRack = 40
	}
	files := map[string][]byte{
		"metalsync.yaml": []byte(site),
	}
	for _, owner := range []string{"platform", "tenant-a", "tenant-b"} {
		files["owners/"+owner+".yaml"] = fmt.Appendf(nil, ownerTmpl, owner, owner)
	}
	for name, body := range templates {
		files["templates/"+name+".yaml"] = []byte(body)
	}
	var b strings.Builder
	for i := range o.Nodes {
		b.Reset()
		writeNode(&b, i, o)
		rack := i / o.PerRack
		files[fmt.Sprintf("nodes/rack%04d/%s.yaml", rack, NodeName(i, o.PerRack))] = []byte(b.String())
		if o.Status {
			// Status mirrors nodes/, as the daemon writes it.
			files[fmt.Sprintf("status/rack%04d/%s.yaml", rack, NodeName(i, o.PerRack))] = status(i, o)
		}
	}
	return files
}

// status is the recorded status of a settled node.
func status(i int, o Options) []byte {
	st := schema.NodeStatusBody{
		ProvisionState: desiredState(i),
		Power:          "on",
		Updated:        "2026-11-01T00:00:00Z",
		Inspect:        &schema.Inspected{At: "2026-11-01T00:00:00Z"},
	}
	if st.ProvisionState == "active" {
		st.Deployed = &schema.Deployed{Image: imageURL, Checksum: imageSum, At: "2026-11-01T00:00:00Z"}
	}
	// Spread the drifting nodes evenly over the fleet.
	if o.Drift > 0 && int(float64(i+1)*o.Drift) != int(float64(i)*o.Drift) {
		st.Power = "off"
	}
	b, err := schema.MarshalStatus(&schema.NodeStatus{Metadata: schema.Meta{Name: NodeName(i, o.PerRack)}, Status: st})
	if err != nil {
		panic(err) // a fixed, valid structure
	}
	return b
}

// Write writes the inventory under dir.
func Write(dir string, o Options) error {
	for p, data := range Files(o) {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("generate inventory: %w", err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			return fmt.Errorf("generate inventory: %w", err)
		}
	}
	return nil
}

func writeNode(b *strings.Builder, i int, o Options) {
	rack, k := i/o.PerRack, i%o.PerRack
	name := NodeName(i, o.PerRack)
	var addr string
	switch o.Driver {
	case "ipmi":
		addr = fmt.Sprintf("ipmi://[fd00:b::%x]:623", i+1)
	case "fake":
		addr = "fake://" + name
	default:
		addr = fmt.Sprintf("redfish+https://10.%d.%d.%d/redfish/v1/Systems/1", 128+(i>>16), (i>>8)&255, i&255)
	}
	owner := []string{"platform", "tenant-a", "tenant-b"}[i%3]
	state := desiredState(i)
	mac := func(nic int) string {
		return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", nic, (i>>16)&255, (i>>8)&255, i&255, 0)
	}
	// One /24 and one /64 per rack: rack r has 10.(r/256).(r%256).0/24.
	v4 := fmt.Sprintf("10.%d.%d", rack>>8, rack&255)
	v6 := fmt.Sprintf("fd00:%x", rack+1)
	fmt.Fprintf(b, `apiVersion: metalsync.dev/v1alpha1
kind: Node
metadata:
  name: %s
spec:
  bmc:
    address: %s
    credentialsRef: {set: bmc}
  owner: %s
  labels:
    rack: rack%04d
  power: "on"
  provision:
    state: %s
`, name, addr, owner, rack, state)
	if state == "active" {
		fmt.Fprintf(b, "    image:\n      url: %s\n      checksum: %s\n    deployTemplates: [raid1-os]\n", imageURL, imageSum)
	}
	fmt.Fprintf(b, `  network:
    links:
      - {name: eno1, type: phy, mac: "%s"}
      - {name: eno2, type: phy, mac: "%s"}
      - {name: bond0, type: bond, mode: 802.3ad, members: [eno1, eno2], mac: "%s"}
      - name: bond0.100
        type: vlan
        id: 100
        parent: bond0
        addresses: ["%s.%d/24", "%s::%x/64"]
    routes:
      - {to: 0.0.0.0/0, via: %s.1}
      - {to: "::/0", via: "%s::1"}
    dns:
      servers: [10.0.0.53]
      search: [dc.example.net]
`, mac(1), mac(2), mac(1), v4, 10+k, v6, 10+k, v4, v6)
}

const site = `apiVersion: metalsync.dev/v1alpha1
kind: Site
metadata:
  name: generated
spec:
  concurrency: {global: 256, perBMC: 1}
  powerSync: enforce
  credentials:
    sets:
      bmc:
        env: {username: BMC_USERNAME, password: BMC_PASSWORD}
  # Every generated BMC address, and loopback for simulators on plain HTTP.
  bmcNetworks:
    - cidr: 10.128.0.0/9
    - cidr: fd00:b::/64
    - cidr: 127.0.0.0/8
      allowPlainHTTP: true
    - cidr: "::1/128"
      allowPlainHTTP: true
`

const ownerTmpl = `apiVersion: metalsync.dev/v1alpha1
kind: Owner
metadata:
  name: %s
spec:
  members: [{email: %s@example.net}]
`

var templates = map[string]string{
	"raid1-os": `apiVersion: metalsync.dev/v1alpha1
kind: DeployTemplate
metadata:
  name: raid1-os
spec:
  steps:
    - {interface: raid, step: apply_configuration, priority: 95, args: {raid_config: {logical_disks: [{size_gb: MAX, raid_level: "1", controller: software}]}}}
`,
	"bios-performance": `apiVersion: metalsync.dev/v1alpha1
kind: DeployTemplate
metadata:
  name: bios-performance
spec:
  steps:
    - {interface: bios, step: apply_configuration, priority: 110, args: {settings: [{name: ProcHyperthreading, value: Disabled}]}}
`,
	"raid6-data": `apiVersion: metalsync.dev/v1alpha1
kind: DeployTemplate
metadata:
  name: raid6-data
spec:
  steps:
    - {interface: raid, step: create_configuration, priority: 100, args: {logical_disks: [{size_gb: MAX, raid_level: "6"}]}}
`,
}
