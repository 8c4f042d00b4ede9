package qemumachine_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"metalsync.dev/metalsync/sim/qemumachine"
	"metalsync.dev/metalsync/sim/qemumachine/qemutest"
)

// TestMachineVM drives one BIOS machine through the BMC-like operations:
// boot from disk, a guest that powers itself off, CD insert and boot
// order, force off, graceful off ignored, reset back to disk, eject.
func TestMachineVM(t *testing.T) {
	dir := t.TempDir()
	disk := qemutest.DiskImage(t, filepath.Join(dir, "os.raw"), qemutest.DiskMarker, qemumachine.PowerOff)
	iso := qemutest.BootISO(t, dir, qemutest.CDMarker)
	m := qemutest.Start(t, qemumachine.Config{
		Dir:      dir,
		Disks:    []qemumachine.Disk{{Path: disk}, {Size: 8 << 20, Serial: "SCRATCH1"}},
		MAC:      "52:54:00:12:34:56",
		Forwards: []qemumachine.Forward{{Guest: netip.MustParseAddrPort("10.0.2.100:18090"), HostPort: 18090}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*qemutest.BootTimeout)
	defer cancel()

	wantPower := func(want bool) {
		t.Helper()
		on, err := m.PowerState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if on != want {
			t.Fatalf("PowerState = %v, want %v", on, want)
		}
	}
	boot := func(marker string, from int) int {
		t.Helper()
		bctx, cancel := context.WithTimeout(ctx, qemutest.BootTimeout)
		defer cancel()
		start := time.Now()
		i, err := m.WaitConsole(bctx, marker, from)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s after %v", marker, time.Since(start).Round(time.Millisecond))
		return i + 1
	}

	wantPower(false) // started off
	ev := len(m.Events())
	if err := m.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	line := boot(qemutest.DiskMarker, 0)
	if _, err := m.WaitEvent(ctx, "SHUTDOWN", ev); err != nil {
		t.Fatal(err)
	}
	wantPower(false) // the guest powered itself off

	if err := m.InsertMedia(ctx, iso); err != nil {
		t.Fatal(err)
	}
	if err := m.SetBootOrder(ctx, qemumachine.BootCD); err != nil {
		t.Fatal(err)
	}
	if err := m.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	line = boot(qemutest.CDMarker, line)
	wantPower(true) // the CD guest halts, powered on

	ev = len(m.Events())
	if err := m.PowerOff(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitEvent(ctx, "POWERDOWN", ev); err != nil {
		t.Fatal(err)
	}
	if err := m.PowerOff(ctx, true); err != nil {
		t.Fatal(err)
	}
	wantPower(false)

	if err := m.SetBootOrder(ctx, qemumachine.BootDisk); err != nil {
		t.Fatal(err)
	}
	if err := m.Reset(ctx); err != nil { // switches an off machine on
		t.Fatal(err)
	}
	boot(qemutest.DiskMarker, line)

	for range 2 { // the second one ejects an empty drive
		if err := m.EjectMedia(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
