package redfish_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/drivertest"
	"metalsync.dev/metalsync/drivers/redfish"
	"metalsync.dev/metalsync/sim/redfishsim"
)

const (
	simUser = "admin"
	simPass = "s3cret-pw"
)

// imageServer serves a small image the simulated BMCs fetch on insert.
func imageServer(t *testing.T) string {
	t.Helper()
	img := make([]byte, 64<<10)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "boot.iso", fixedTime, bytesReader(img))
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/boot.iso"
}

// newSim starts a simulator with the given systems on a listener.
func newSim(t *testing.T, systems []redfishsim.SystemConfig) (*redfishsim.Server, *redfishsim.Listener) {
	t.Helper()
	sim, err := redfishsim.New(redfishsim.Config{Systems: systems, Username: simUser, Password: simPass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	l, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return sim, l
}

// simConfig is the driver config for system id on l.
func simConfig(t *testing.T, l *redfishsim.Listener, id string) drivers.Config {
	t.Helper()
	u, err := url.Parse(l.SystemURL(id))
	if err != nil {
		t.Fatal(err)
	}
	return drivers.Config{Endpoint: u, Username: simUser, Password: simPass}
}

func openSim(t *testing.T, cfg drivers.Config) *redfish.BMC {
	t.Helper()
	b, err := redfish.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return b.(*redfish.BMC)
}

// TestConformanceSimulator runs the driver conformance suite against the
// simulator: one system served as its own BMC with media actions, and one
// system on the shared many-system listener with PATCH-only media and
// mandatory If-Match.
func TestConformanceSimulator(t *testing.T) {
	cases := []struct {
		name   string
		style  redfishsim.MediaStyle
		shared bool
	}{
		{"own-bmc-actions", redfishsim.MediaActions, false},
		{"shared-patch-ifmatch", redfishsim.MediaPatch, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim, l := newSim(t, redfishsim.Systems(2, redfishsim.SystemConfig{
				PoweredOn: true, Media: tc.style, RequireIfMatch: tc.shared,
			}))
			id := sim.IDs()[1]
			cfg := simConfig(t, l, id)
			opts := drivertest.Options{
				MediaURL:    imageServer(t),
				Password:    simPass,
				BIOSChange:  map[string]any{"ProcTurboMode": "Disabled", "ProcCoreDisable": 2},
				RAIDVolume:  &drivers.VolumeSpec{Name: "os", RAIDLevel: "RAID1", Drives: []string{"Disk.0", "Disk.1"}},
				FirmwareURL: imageServer(t),
				CheckBoot: func(t *testing.T, _ drivers.BMC, want drivers.BootOptions) {
					st, err := sim.System(id)
					if err != nil {
						t.Fatal(err)
					}
					checkSimBoot(t, st, want)
				},
			}
			if tc.shared {
				// A service with several systems needs to be told which one.
				opts.FirmwareTargets = []string{cfg.Endpoint.Path}
			} else {
				h, err := sim.BMC(id)
				if err != nil {
					t.Fatal(err)
				}
				ts := httptest.NewServer(h)
				t.Cleanup(ts.Close)
				cfg.Endpoint, _ = url.Parse(ts.URL) // no path: the driver finds the system
			}
			drivertest.Run(t, func(t *testing.T) drivers.BMC { return openSim(t, cfg) }, opts)
		})
	}
}

func checkSimBoot(t *testing.T, st redfishsim.SystemState, want drivers.BootOptions) {
	t.Helper()
	targets := map[drivers.BootDevice]string{drivers.BootPXE: "Pxe", drivers.BootCD: "Cd", drivers.BootDisk: "Hdd", drivers.BootBIOS: "BiosSetup"}
	enabled := "Once"
	if want.Persistent {
		enabled = "Continuous"
	}
	if st.BootTarget != targets[want.Device] || st.BootEnabled != enabled {
		t.Errorf("simulator boot = %s/%s, want %s/%s", st.BootTarget, st.BootEnabled, targets[want.Device], enabled)
	}
	modes := map[drivers.BootMode]string{drivers.BootModeUEFI: "UEFI", drivers.BootModeLegacy: "Legacy"}
	if m, ok := modes[want.Mode]; ok && st.BootMode != m {
		t.Errorf("simulator boot mode = %s, want %s", st.BootMode, m)
	}
}

func redfishsimSystems(n int) []redfishsim.SystemConfig {
	return redfishsim.Systems(n, redfishsim.SystemConfig{PoweredOn: true})
}

// TestPowerReadOneGETSimulator: on the simulator too, a power read is one
// GET of the system and nothing else.
func TestPowerReadOneGETSimulator(t *testing.T) {
	sim, l := newSim(t, redfishsimSystems(3))
	id := sim.IDs()[2]
	b := openSim(t, simConfig(t, l, id))
	defer b.Close(t.Context())
	before, beforeAll := sim.Counts(id), sim.TotalCounts()
	if _, err := b.PowerState(t.Context()); err != nil {
		t.Fatal(err)
	}
	after, afterAll := sim.Counts(id), sim.TotalCounts()
	if got := after.Get - before.Get; got != 1 || afterAll.Requests-beforeAll.Requests != 1 {
		t.Errorf("power read: %d GETs of the system, %d requests in all; want 1 and 1", got, afterAll.Requests-beforeAll.Requests)
	}
}
