package drivertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
)

// memBMC is the smallest BMC that satisfies the whole contract; it checks
// that the suite itself passes a correct driver and exercises every branch.
type memBMC struct {
	mu      sync.Mutex
	power   drivers.PowerState
	boot    drivers.BootOptions
	media   drivers.MediaStatus
	bios    map[string]any // applied
	pending map[string]any // applied at the next reboot
	vols    []drivers.Volume
	next    int
}

func newMemBMC() *memBMC {
	return &memBMC{
		power: drivers.PowerOff,
		media: drivers.MediaStatus{Kind: drivers.MediaCD},
		bios:  map[string]any{"BootMode": "Uefi", "NumLock": true, "Cores": 8.0},
	}
}

func (m *memBMC) lock(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	return m.mu.Unlock, nil
}

func (m *memBMC) PowerState(ctx context.Context) (drivers.PowerState, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	return m.power, nil
}

func (m *memBMC) SetPower(ctx context.Context, a drivers.PowerAction) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	switch a {
	case drivers.ActionOn, drivers.ActionOff, drivers.ActionGracefulOff:
	case drivers.ActionReboot, drivers.ActionGracefulReboot:
		for k, v := range m.pending {
			m.bios[k] = v
		}
		m.pending = nil
	default:
		return drivers.Unsupported("mem", "power "+string(a))
	}
	m.power = a.Target()
	return nil
}

func (m *memBMC) Close(context.Context) error { return nil }

func (m *memBMC) SetBoot(ctx context.Context, o drivers.BootOptions) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	switch o.Device {
	case drivers.BootPXE, drivers.BootCD, drivers.BootDisk, drivers.BootBIOS:
	default:
		return drivers.Unsupported("mem", "boot device "+string(o.Device))
	}
	switch o.Mode {
	case drivers.BootModeUnset, drivers.BootModeUEFI:
	case drivers.BootModeLegacy:
		return drivers.Unsupported("mem", "legacy boot")
	default:
		return drivers.Unsupported("mem", "boot mode "+string(o.Mode))
	}
	m.boot = o
	return nil
}

func (m *memBMC) InsertMedia(ctx context.Context, kind drivers.MediaKind, url string) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if kind != drivers.MediaCD {
		return drivers.Unsupported("mem", "media "+string(kind))
	}
	if url == "" {
		return fmt.Errorf("mem: insert media: no image URL")
	}
	m.media = drivers.MediaStatus{Kind: kind, Device: "cd0", Image: url, Inserted: true}
	return nil
}

func (m *memBMC) EjectMedia(ctx context.Context, kind drivers.MediaKind) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if kind != drivers.MediaCD {
		return drivers.Unsupported("mem", "media "+string(kind))
	}
	m.media = drivers.MediaStatus{Kind: kind, Device: "cd0"}
	return nil
}

func (m *memBMC) MediaStatus(ctx context.Context, kind drivers.MediaKind) (drivers.MediaStatus, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return drivers.MediaStatus{}, err
	}
	defer unlock()
	if kind != drivers.MediaCD {
		return drivers.MediaStatus{}, drivers.Unsupported("mem", "media "+string(kind))
	}
	return m.media, nil
}

func (m *memBMC) Inventory(ctx context.Context) (drivers.Inventory, error) {
	if err := ctx.Err(); err != nil {
		return drivers.Inventory{}, err
	}
	return drivers.Inventory{
		System: drivers.SystemInfo{Manufacturer: "Mem", Model: "M1", Serial: "S1"},
		NICs:   []drivers.NIC{{ID: "eth0", MAC: "52:54:00:12:34:56"}},
		Disks:  []drivers.Disk{{ID: "sda", SizeBytes: 1 << 30}},
	}, nil
}

func (m *memBMC) BIOSAttributes(ctx context.Context) (map[string]any, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := make(map[string]any, len(m.bios))
	for k, v := range m.bios {
		out[k] = v
	}
	return out, nil
}

func (m *memBMC) ApplyBIOS(ctx context.Context, attrs map[string]any) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	for k := range attrs {
		if _, ok := m.bios[k]; !ok {
			return fmt.Errorf("mem: apply bios: unknown attribute %q", k)
		}
	}
	m.pending = attrs
	return nil
}

func (m *memBMC) Volumes(ctx context.Context) ([]drivers.Volume, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return append([]drivers.Volume(nil), m.vols...), nil
}

func (m *memBMC) CreateVolume(ctx context.Context, spec drivers.VolumeSpec) (drivers.Volume, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return drivers.Volume{}, err
	}
	defer unlock()
	switch spec.RAIDLevel {
	case "RAID0", "RAID1":
	default:
		return drivers.Volume{}, drivers.Unsupported("mem", "raid level "+spec.RAIDLevel)
	}
	m.next++
	v := drivers.Volume{ID: fmt.Sprintf("v%d", m.next), Name: spec.Name, RAIDLevel: spec.RAIDLevel}
	m.vols = append(m.vols, v)
	return v, nil
}

func (m *memBMC) DeleteVolume(ctx context.Context, id string) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	for i, v := range m.vols {
		if v.ID == id {
			m.vols = append(m.vols[:i], m.vols[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("mem: delete volume %q: not found", id)
}

func (m *memBMC) UpdateFirmware(ctx context.Context, url string, _ []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("mem: update firmware: no image URL")
	}
	return nil
}

func TestRunMemBMC(t *testing.T) {
	m := newMemBMC()
	var checked []drivers.BootOptions
	Run(t, func(*testing.T) drivers.BMC { return m }, Options{
		MediaURL:    "http://127.0.0.1:8080/boot.iso",
		BIOSChange:  map[string]any{"NumLock": false, "Cores": 4},
		RAIDVolume:  &drivers.VolumeSpec{Name: "os", RAIDLevel: "RAID1"},
		FirmwareURL: "http://127.0.0.1:8080/fw.bin",
		Password:    "hunter2",
		BootLacks:   func(o drivers.BootOptions) bool { return o.Mode == drivers.BootModeLegacy },
		CheckBoot: func(t *testing.T, b drivers.BMC, want drivers.BootOptions) {
			got := b.(*memBMC).boot
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("boot (-want +got):\n%s", diff)
			}
			checked = append(checked, got)
		},
	})
	// 4 devices × once/persistent × unset/uefi; legacy is unsupported.
	if len(checked) != 16 {
		t.Errorf("CheckBoot ran %d times, want 16", len(checked))
	}
	if diff := cmp.Diff(map[string]any{"BootMode": "Uefi", "NumLock": true, "Cores": 8.0}, m.bios); diff != "" {
		t.Errorf("BIOS not restored (-want +got):\n%s", diff)
	}
}

// brokenBMC is memBMC with one declared capability the peer cannot serve.
type brokenBMC struct {
	*memBMC
	broken string
}

func (b brokenBMC) MediaStatus(ctx context.Context, kind drivers.MediaKind) (drivers.MediaStatus, error) {
	if b.broken == "media" {
		return drivers.MediaStatus{}, drivers.Unsupported("broken", "media status")
	}
	return b.memBMC.MediaStatus(ctx, kind)
}

func (b brokenBMC) Inventory(ctx context.Context) (drivers.Inventory, error) {
	if b.broken == "inventory" {
		return drivers.Inventory{}, drivers.Unsupported("broken", "inventory")
	}
	return b.memBMC.Inventory(ctx)
}

// TestDeclaredUnsupportedFails runs the suite, in a child process, against
// drivers that implement a capability the peer does not serve: the suite
// must fail them, not skip. So must a BootLacks that does not hold.
func TestDeclaredUnsupportedFails(t *testing.T) {
	const env = "DRIVERTEST_BROKEN"
	if broken := os.Getenv(env); broken != "" {
		opts := Options{BootLacks: func(o drivers.BootOptions) bool { return o.Mode == drivers.BootModeLegacy }}
		if broken == "boot-lacks" {
			// memBMC does UEFI: a BootLacks naming it is wrong.
			opts.BootLacks = func(o drivers.BootOptions) bool { return o.Mode != drivers.BootModeUnset }
		}
		b := brokenBMC{newMemBMC(), broken}
		Run(t, func(*testing.T) drivers.BMC { return b }, opts)
		return
	}
	tests := []struct {
		broken string
		want   []string // in the child's output
	}{
		{"media", []string{"--- FAIL: TestDeclaredUnsupportedFails/media/eject-empty", "MediaStatus cd: broken: media status: unsupported by this BMC (the driver declares this capability"}},
		{"inventory", []string{"--- FAIL: TestDeclaredUnsupportedFails/inventory", "Inventory: broken: inventory: unsupported by this BMC (the driver declares this capability"}},
		{"boot-lacks", []string{"--- FAIL: TestDeclaredUnsupportedFails/boot/pxe-uefi-once", "SetBoot pxe-uefi-once (Options.BootLacks): succeeded, want an error matching drivers.ErrUnsupported"}},
	}
	for _, tc := range tests {
		t.Run(tc.broken, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestDeclaredUnsupportedFails$", "-test.v")
			cmd.Env = append(os.Environ(), env+"="+tc.broken)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite did not fail a driver with broken %s: %v\n%s", tc.broken, err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestInventoryProblems(t *testing.T) {
	ok := drivers.SystemInfo{Manufacturer: "Acme"}
	tests := []struct {
		name string
		inv  drivers.Inventory
		want []string
	}{
		{"good", drivers.Inventory{System: ok, NICs: []drivers.NIC{{ID: "a", MAC: "aa:bb:cc:dd:ee:ff"}, {ID: "b"}}}, nil},
		{"no-identity", drivers.Inventory{}, []string{"system has no manufacturer, model or serial: {Manufacturer: Model: Serial: UUID: BIOSVersion:}"}},
		{"upper-mac", drivers.Inventory{System: ok, NICs: []drivers.NIC{{ID: "a", MAC: "AA:BB:CC:DD:EE:FF"}}},
			[]string{`NIC a: MAC "AA:BB:CC:DD:EE:FF" is not canonical, want "aa:bb:cc:dd:ee:ff"`}},
		{"bad-mac", drivers.Inventory{System: ok, NICs: []drivers.NIC{{ID: "a", MAC: "aa:bb"}}},
			[]string{`NIC a: MAC "aa:bb": address aa:bb: invalid MAC address`}},
		{"eui64", drivers.Inventory{System: ok, NICs: []drivers.NIC{{ID: "a", MAC: "aa:bb:cc:dd:ee:ff:00:11"}}},
			[]string{`NIC a: MAC "aa:bb:cc:dd:ee:ff:00:11" is not EUI-48`}},
		{"zero-mac", drivers.Inventory{System: ok, NICs: []drivers.NIC{{ID: "a", MAC: "00:00:00:00:00:00"}}},
			[]string{"NIC a: MAC is all zeros (leave it empty when unknown)"}},
		{"dup-nic", drivers.Inventory{System: ok, NICs: []drivers.NIC{{ID: "a"}, {ID: "a"}}},
			[]string{`NIC ID "a" is empty or repeated`}},
		{"disk", drivers.Inventory{System: ok, Disks: []drivers.Disk{{SizeBytes: -1}}},
			[]string{`disk ID "" is empty or repeated`, "disk : size -1"}},
		{"firmware", drivers.Inventory{System: ok, Firmware: []drivers.Firmware{{Component: "BMC"}}},
			[]string{"firmware {Component:BMC Version:} lacks a component or version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, InventoryProblems(tt.inv)); diff != "" {
				t.Errorf("InventoryProblems (-want +got):\n%s", diff)
			}
		})
	}
}
