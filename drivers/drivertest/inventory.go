package drivertest

import (
	"fmt"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
)

func (s *suite) testInventory(t *testing.T) {
	b := s.bmc(t)
	ir, ok := b.(drivers.InventoryReader)
	if !ok {
		t.Skip("driver has no InventoryReader")
	}
	inv, err := ir.Inventory(s.ctx(t))
	s.must(t, "Inventory", err)
	t.Logf("inventory: %+v", inv)
	for _, p := range InventoryProblems(inv) {
		t.Error(p)
	}
	// Hardware does not change between two reads: a driver that invents
	// values (random IDs, timestamps) fails here.
	again, err := ir.Inventory(s.ctx(t))
	s.must(t, "Inventory again", err)
	if diff := cmp.Diff(inv, again); diff != "" {
		t.Errorf("two inventory reads differ (-first +second):\n%s", diff)
	}
}

// InventoryProblems lists what is malformed in inv: no identity, empty or
// duplicate IDs, MACs that are not canonical EUI-48 (lowercase, colons),
// negative sizes, firmware without a version.
func InventoryProblems(inv drivers.Inventory) []string {
	var ps []string
	add := func(format string, args ...any) { ps = append(ps, fmt.Sprintf(format, args...)) }
	sys := inv.System
	if sys.Manufacturer == "" && sys.Model == "" && sys.Serial == "" {
		add("system has no manufacturer, model or serial: %+v", sys)
	}
	for i, c := range inv.CPUs {
		if c.Cores < 0 || c.Threads < 0 || (c.Threads > 0 && c.Threads < c.Cores) {
			add("cpu %d: %d cores, %d threads", i, c.Cores, c.Threads)
		}
	}
	if inv.MemoryMiB < 0 {
		add("memory %d MiB", inv.MemoryMiB)
	}
	seen := map[string]bool{}
	for _, d := range inv.Disks {
		if d.ID == "" || seen["disk "+d.ID] {
			add("disk ID %q is empty or repeated", d.ID)
		}
		seen["disk "+d.ID] = true
		if d.SizeBytes < 0 {
			add("disk %s: size %d", d.ID, d.SizeBytes)
		}
	}
	for _, n := range inv.NICs {
		if n.ID == "" || seen["nic "+n.ID] {
			add("NIC ID %q is empty or repeated", n.ID)
		}
		seen["nic "+n.ID] = true
		if n.MAC == "" {
			continue
		}
		hw, err := net.ParseMAC(n.MAC)
		switch {
		case err != nil:
			add("NIC %s: MAC %q: %v", n.ID, n.MAC, err)
		case len(hw) != 6:
			add("NIC %s: MAC %q is not EUI-48", n.ID, n.MAC)
		case hw.String() != n.MAC:
			add("NIC %s: MAC %q is not canonical, want %q", n.ID, n.MAC, hw.String())
		case hw.String() == "00:00:00:00:00:00":
			add("NIC %s: MAC is all zeros (leave it empty when unknown)", n.ID)
		}
		if n.SpeedMbps < 0 {
			add("NIC %s: speed %d", n.ID, n.SpeedMbps)
		}
	}
	for _, f := range inv.Firmware {
		if f.Component == "" || f.Version == "" {
			add("firmware %+v lacks a component or version", f)
		}
	}
	return ps
}
