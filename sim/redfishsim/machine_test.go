package redfishsim

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/sim/qemumachine"
)

// fakeMachine is an in-memory host: power, the boot order the firmware
// will read, the CD and the devices each boot started from. A guest
// ignores the ACPI power button, as the boot-sector test OS does.
type fakeMachine struct {
	dir string

	mu    sync.Mutex
	on    bool                     // guarded by mu
	order qemumachine.BootDevice   // guarded by mu
	cd    string                   // guarded by mu; inserted file
	boots []qemumachine.BootDevice // guarded by mu; what each boot started from
	err   error                    // guarded by mu; every call fails with it
}

func newFakeMachine(t *testing.T) *fakeMachine {
	return &fakeMachine{dir: t.TempDir(), order: qemumachine.BootDisk}
}

func (f *fakeMachine) call(fn func()) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	fn()
	return nil
}

func (f *fakeMachine) boot() { f.on, f.boots = true, append(f.boots, f.order) }

func (f *fakeMachine) PowerOn(context.Context) error {
	return f.call(func() {
		if !f.on {
			f.boot()
		}
	})
}
func (f *fakeMachine) Reset(context.Context) error { return f.call(f.boot) }
func (f *fakeMachine) PowerOff(_ context.Context, force bool) error {
	return f.call(func() {
		if force {
			f.on = false
		}
	})
}
func (f *fakeMachine) PowerState(context.Context) (on bool, err error) {
	err = f.call(func() { on = f.on })
	return on, err
}
func (f *fakeMachine) SetBootOrder(_ context.Context, first qemumachine.BootDevice) error {
	return f.call(func() { f.order = first })
}
func (f *fakeMachine) InsertMedia(_ context.Context, file string) error {
	return f.call(func() { f.cd = file })
}
func (f *fakeMachine) EjectMedia(context.Context) error { return f.call(func() { f.cd = "" }) }
func (f *fakeMachine) Dir() string                      { return f.dir }

// machineState is what a test compares: the host and the BMC's view.
type machineState struct {
	On          bool
	Order       qemumachine.BootDevice
	Boots       []qemumachine.BootDevice
	PowerState  string // as a Redfish GET reads it
	BootEnabled string
}

func (f *fakeMachine) state(t *testing.T, url string) machineState {
	t.Helper()
	r := do(t, http.MethodGet, url, nil, nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	return machineState{
		On: f.on, Order: f.order, Boots: append([]qemumachine.BootDevice(nil), f.boots...),
		PowerState:  field(r.body, "PowerState").(string),
		BootEnabled: field(r.body, "Boot", "BootSourceOverrideEnabled").(string),
	}
}

func TestMachinePower(t *testing.T) {
	const (
		disk = qemumachine.BootDisk
		cd   = qemumachine.BootCD
		pxe  = qemumachine.BootPXE
	)
	type step struct {
		boot  map[string]string // PATCH Boot first, when set
		reset string            // then this ResetType, when set
		guest func(*fakeMachine)
	}
	tests := []struct {
		name  string
		steps []step
		want  machineState
	}{
		{
			name:  "On boots the disk",
			steps: []step{{reset: "On"}},
			want:  machineState{On: true, Order: disk, Boots: []qemumachine.BootDevice{disk}, PowerState: "On", BootEnabled: "Disabled"},
		},
		{
			name: "Once Cd applies to one boot, then the disk",
			steps: []step{
				{boot: map[string]string{"BootSourceOverrideTarget": "Cd", "BootSourceOverrideEnabled": "Once"}, reset: "On"},
				{reset: "ForceRestart"},
			},
			want: machineState{On: true, Order: disk, Boots: []qemumachine.BootDevice{cd, disk}, PowerState: "On", BootEnabled: "Disabled"},
		},
		{
			name: "Continuous Pxe holds for every boot",
			steps: []step{
				{boot: map[string]string{"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Continuous"}, reset: "On"},
				{reset: "PowerCycle"},
			},
			want: machineState{On: true, Order: pxe, Boots: []qemumachine.BootDevice{pxe, pxe}, PowerState: "On", BootEnabled: "Continuous"},
		},
		{
			name:  "ForceOff reads Off",
			steps: []step{{reset: "On"}, {reset: "ForceOff"}},
			want:  machineState{Order: disk, Boots: []qemumachine.BootDevice{disk}, PowerState: "Off", BootEnabled: "Disabled"},
		},
		{
			name:  "GracefulShutdown ignored by the guest stays On",
			steps: []step{{reset: "On"}, {reset: "GracefulShutdown"}},
			want:  machineState{On: true, Order: disk, Boots: []qemumachine.BootDevice{disk}, PowerState: "On", BootEnabled: "Disabled"},
		},
		{
			name:  "a guest that powers itself off reads Off",
			steps: []step{{reset: "On"}, {guest: func(f *fakeMachine) { f.on = false }}},
			want:  machineState{Order: disk, Boots: []qemumachine.BootDevice{disk}, PowerState: "Off", BootEnabled: "Disabled"},
		},
		{
			name:  "On when on does not reboot",
			steps: []step{{reset: "On"}, {reset: "On"}},
			want:  machineState{On: true, Order: disk, Boots: []qemumachine.BootDevice{disk}, PowerState: "On", BootEnabled: "Disabled"},
		},
		{
			name:  "ForceRestart when off powers on",
			steps: []step{{reset: "ForceRestart"}},
			want:  machineState{On: true, Order: disk, Boots: []qemumachine.BootDevice{disk}, PowerState: "On", BootEnabled: "Disabled"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newFakeMachine(t)
			ts := newTestSim(t, Config{Systems: []SystemConfig{{ID: "vm", Machine: m}}})
			url := ts.url + "/redfish/v1/Systems/vm"
			for _, s := range tt.steps {
				if s.boot != nil {
					if r := do(t, http.MethodPatch, url, map[string]any{"Boot": s.boot}, nil); r.status != http.StatusNoContent {
						t.Fatalf("PATCH Boot: %d %v", r.status, r.body)
					}
				}
				if s.reset != "" {
					if r := do(t, http.MethodPost, url+"/Actions/ComputerSystem.Reset", map[string]any{"ResetType": s.reset}, nil); r.status != http.StatusNoContent {
						t.Fatalf("Reset %s: %d %v", s.reset, r.status, r.body)
					}
				}
				if s.guest != nil {
					m.mu.Lock()
					s.guest(m)
					m.mu.Unlock()
				}
			}
			if diff := cmp.Diff(tt.want, m.state(t, url)); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}

type macMachine struct {
	*fakeMachine
	mac string
}

func (m macMachine) MAC() string { return m.mac }

func TestMachineMACIsNIC1(t *testing.T) {
	ts := newTestSim(t, Config{Systems: []SystemConfig{{ID: "vm", Machine: macMachine{newFakeMachine(t), "52:54:00:ab:cd:ef"}}}})
	r := do(t, http.MethodGet, ts.url+"/redfish/v1/Systems/vm/EthernetInterfaces/NIC.1", nil, nil)
	if got := field(r.body, "MACAddress"); got != "52:54:00:AB:CD:EF" {
		t.Errorf("NIC.1 MACAddress = %v, want the machine's", got)
	}
}

func TestMachineFailureAnswers500(t *testing.T) {
	m := newFakeMachine(t)
	m.err = errors.New("qmp connection: EOF")
	ts := newTestSim(t, Config{Systems: []SystemConfig{{ID: "vm", Machine: m}}})
	url := ts.url + "/redfish/v1/Systems/vm"
	for _, r := range []resp{
		do(t, http.MethodGet, url, nil, nil),
		do(t, http.MethodPost, url+"/Actions/ComputerSystem.Reset", map[string]any{"ResetType": "On"}, nil),
	} {
		if r.status != http.StatusInternalServerError || errorID(r) != msgInternal {
			t.Errorf("got %d %v, want 500 %s", r.status, errorID(r), msgInternal)
		}
	}
}

func TestMachineMedia(t *testing.T) {
	img := newImageServer(t)
	m := newFakeMachine(t)
	ts := newTestSim(t, Config{Systems: []SystemConfig{{ID: "vm", Machine: m}}})
	cd := ts.url + "/redfish/v1/Managers/vm/VirtualMedia/CD1"

	if r := do(t, http.MethodPost, cd+"/Actions/VirtualMedia.InsertMedia", map[string]any{"Image": img.URL + "/ok.iso"}, nil); r.status != http.StatusNoContent {
		t.Fatalf("InsertMedia: %d %v", r.status, r.body)
	}
	m.mu.Lock()
	file := m.cd
	m.mu.Unlock()
	if filepath.Dir(file) != m.dir {
		t.Fatalf("machine CD = %q, want a file in %s", file, m.dir)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100000 {
		t.Errorf("downloaded %d bytes, want the whole image (100000)", len(got))
	}
	if r := do(t, http.MethodPost, cd+"/Actions/VirtualMedia.EjectMedia", map[string]any{}, nil); r.status != http.StatusNoContent {
		t.Fatalf("EjectMedia: %d %v", r.status, r.body)
	}
	m.mu.Lock()
	left := m.cd
	m.mu.Unlock()
	if left != "" {
		t.Errorf("machine CD after eject = %q, want empty", left)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("downloaded image after eject: %v, want it removed", err)
	}

	// A failed fetch leaves the machine's drive empty.
	if r := do(t, http.MethodPost, cd+"/Actions/VirtualMedia.InsertMedia", map[string]any{"Image": img.URL + "/broken.iso"}, nil); r.status == http.StatusNoContent {
		t.Fatalf("InsertMedia of a broken image: %d, want an error", r.status)
	}
	m.mu.Lock()
	left = m.cd
	m.mu.Unlock()
	if left != "" {
		t.Errorf("machine CD after a failed insert = %q, want empty", left)
	}
}
