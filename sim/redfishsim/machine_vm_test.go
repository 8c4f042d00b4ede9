package redfishsim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	"metalsync.dev/metalsync/sim/qemumachine"
	"metalsync.dev/metalsync/sim/qemumachine/qemutest"
)

// vmSystem is one machine-backed system reached through gofish.
type vmSystem struct {
	m      *qemumachine.Machine
	client *gofish.APIClient
	url    string
}

func newVMSystem(t *testing.T, dir string, disk string) *vmSystem {
	t.Helper()
	m := qemutest.Start(t, qemumachine.Config{Dir: dir, Disks: []qemumachine.Disk{{Path: disk}}})
	ts := newTestSim(t, Config{Systems: []SystemConfig{{ID: "vm", Machine: m}}})
	c, err := gofish.ConnectContext(context.Background(), gofish.ClientConfig{
		Endpoint: ts.url, Username: "admin", Password: "password", ReuseConnections: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Logout)
	return &vmSystem{m: m, client: c, url: ts.url}
}

func (v *vmSystem) system(t *testing.T) *schemas.ComputerSystem {
	t.Helper()
	s, err := schemas.GetObject[schemas.ComputerSystem](v.client, "/redfish/v1/Systems/vm")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reset runs a Redfish reset and returns when it was asked for.
func (v *vmSystem) reset(t *testing.T, kind schemas.ResetType) time.Time {
	t.Helper()
	s := v.system(t)
	start := time.Now()
	if _, err := s.Reset(kind); err != nil {
		t.Fatalf("Reset %s: %v", kind, err)
	}
	return start
}

// waitMarker waits for marker on the console from line `from` on and
// returns the index after its line; it logs the time since start.
func (v *vmSystem) waitMarker(t *testing.T, marker string, from int, start time.Time) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), qemutest.BootTimeout)
	defer cancel()
	i, err := v.m.WaitConsole(ctx, marker, from)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %v after the Redfish reset was sent", marker, time.Since(start).Round(time.Millisecond))
	return i + 1
}

func (v *vmSystem) wantPower(t *testing.T, want schemas.PowerState) {
	t.Helper()
	if got := v.system(t).PowerState; got != want {
		t.Fatalf("PowerState = %s, want %s", got, want)
	}
}

// TestMachineVMBootsDisk powers a QEMU machine on through gofish and the
// simulated BMC; its disk's boot sector reaches the console, and again
// after a PowerCycle.
func TestMachineVMBootsDisk(t *testing.T) {
	dir := t.TempDir()
	disk := qemutest.DiskImage(t, filepath.Join(dir, "os.raw"), qemutest.DiskMarker, qemumachine.Halt)
	v := newVMSystem(t, dir, disk)
	v.wantPower(t, schemas.OffPowerState)
	line := v.waitMarker(t, qemutest.DiskMarker, 0, v.reset(t, schemas.OnResetType))
	v.wantPower(t, schemas.OnPowerState)
	v.waitMarker(t, qemutest.DiskMarker, line, v.reset(t, schemas.PowerCycleResetType))
	v.wantPower(t, schemas.OnPowerState)
}

// TestMachineVMBootsCDOnce inserts a bootable ISO through Redfish (the
// BMC downloads it from a loopback server), boots it once, and checks that
// the next restart boots the disk and ForceOff reads back Off.
func TestMachineVMBootsCDOnce(t *testing.T) {
	dir := t.TempDir()
	disk := qemutest.DiskImage(t, filepath.Join(dir, "os.raw"), qemutest.DiskMarker, qemumachine.Halt)
	iso := qemutest.BootISO(t, t.TempDir(), qemutest.CDMarker)
	images := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, iso)
	}))
	defer images.Close()
	v := newVMSystem(t, dir, disk)

	managers, err := v.client.Service.Managers()
	if err != nil {
		t.Fatal(err)
	}
	media, err := managers[0].VirtualMedia()
	if err != nil {
		t.Fatal(err)
	}
	inserted := true
	if _, err := media[0].InsertMedia(&schemas.VirtualMediaInsertMediaParameters{Image: images.URL + "/cd.iso", Inserted: &inserted}); err != nil {
		t.Fatalf("InsertMedia: %v", err)
	}
	if err := v.system(t).SetBoot(&schemas.Boot{BootSourceOverrideTarget: schemas.CdBootSource, BootSourceOverrideEnabled: schemas.OnceBootSourceOverrideEnabled}); err != nil {
		t.Fatalf("SetBoot: %v", err)
	}
	line := v.waitMarker(t, qemutest.CDMarker, 0, v.reset(t, schemas.OnResetType))
	if got := v.system(t).Boot.BootSourceOverrideEnabled; got != schemas.DisabledBootSourceOverrideEnabled {
		t.Errorf("BootSourceOverrideEnabled after the boot = %s, want Disabled", got)
	}

	v.waitMarker(t, qemutest.DiskMarker, line, v.reset(t, schemas.ForceRestartResetType))

	v.reset(t, schemas.ForceOffResetType)
	v.wantPower(t, schemas.OffPowerState)
	if _, err := media[0].EjectMedia(); err != nil {
		t.Fatalf("EjectMedia: %v", err)
	}
}
