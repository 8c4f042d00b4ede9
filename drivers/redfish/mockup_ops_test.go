package redfish_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/sim/mockupserver"
)

// writes returns the recorded requests that change something.
func writes(m *mockupserver.Server) []mockupserver.Request {
	var out []mockupserver.Request
	for _, r := range m.Requests() {
		if r.Method != http.MethodGet {
			out = append(out, r)
		}
	}
	return out
}

// ignoreIfMatch compares requests without their ETag values, which are
// the server's business; tests that care check them on their own.
var ignoreIfMatch = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".IfMatch" }, cmp.Ignore())

func TestPowerReadIsOneGET(t *testing.T) {
	for _, mockup := range []string{"public-rackmount1", "public-tower", "public-localstorage"} {
		t.Run(mockup, func(t *testing.T) {
			m, ts := serveMockup(t, mockup, mockupserver.Options{})
			b := openMock(t, mockConfig(t, ts.URL))
			m.ResetRequests()
			got, err := b.PowerState(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got != drivers.PowerOn {
				t.Errorf("PowerState = %q, want on", got)
			}
			want := []mockupserver.Request{{Method: "GET", Path: b.System(), Auth: "token", Status: 200}}
			if diff := cmp.Diff(want, m.Requests()); diff != "" {
				t.Errorf("requests of one power read (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetPowerMockup(t *testing.T) {
	const sys = "/redfish/v1/Systems/437XR1238R2"
	reset := func(rt string) mockupserver.Request {
		return mockupserver.Request{Method: "POST", Path: sys + "/Actions/ComputerSystem.Reset", Body: `{"ResetType":"` + rt + `"}`, Auth: "token", Status: 204}
	}
	// Steps run in order on one server: the mockup starts powered on.
	steps := []struct {
		action drivers.PowerAction
		want   []mockupserver.Request // writes
		state  drivers.PowerState
	}{
		{drivers.ActionOn, nil, drivers.PowerOn}, // already on: nothing sent
		{drivers.ActionGracefulOff, []mockupserver.Request{reset("GracefulShutdown")}, drivers.PowerOff},
		{drivers.ActionOff, nil, drivers.PowerOff},
		{drivers.ActionReboot, []mockupserver.Request{reset("On")}, drivers.PowerOn}, // reboot of an off machine powers it on
		{drivers.ActionReboot, []mockupserver.Request{reset("ForceRestart")}, drivers.PowerOn},
		{drivers.ActionGracefulReboot, []mockupserver.Request{reset("GracefulRestart")}, drivers.PowerOn},
		{drivers.ActionOff, []mockupserver.Request{reset("ForceOff")}, drivers.PowerOff},
		{drivers.ActionOn, []mockupserver.Request{reset("On")}, drivers.PowerOn},
	}
	m, ts := serveMockup(t, "public-tower", mockupserver.Options{})
	b := openMock(t, mockConfig(t, ts.URL))
	for _, s := range steps {
		m.ResetRequests()
		if err := b.SetPower(t.Context(), s.action); err != nil {
			t.Fatalf("SetPower %s: %v", s.action, err)
		}
		if diff := cmp.Diff(s.want, writes(m)); diff != "" {
			t.Errorf("SetPower %s: writes (-want +got):\n%s", s.action, diff)
		}
		if got, err := b.PowerState(t.Context()); err != nil || got != s.state {
			t.Errorf("after SetPower %s: PowerState = %q, %v; want %q", s.action, got, err, s.state)
		}
	}
}

func TestSetBootMockup(t *testing.T) {
	const sys = "/redfish/v1/Systems/437XR1138R2"
	tests := []struct {
		opts drivers.BootOptions
		body string
	}{
		{drivers.BootOptions{Device: drivers.BootPXE}, `{"Boot":{"BootSourceOverrideEnabled":"Once","BootSourceOverrideTarget":"Pxe"}}`},
		{drivers.BootOptions{Device: drivers.BootCD, Mode: drivers.BootModeUEFI}, `{"Boot":{"BootSourceOverrideEnabled":"Once","BootSourceOverrideMode":"UEFI","BootSourceOverrideTarget":"Cd"}}`},
		{drivers.BootOptions{Device: drivers.BootDisk, Mode: drivers.BootModeLegacy, Persistent: true}, `{"Boot":{"BootSourceOverrideEnabled":"Continuous","BootSourceOverrideMode":"Legacy","BootSourceOverrideTarget":"Hdd"}}`},
	}
	for _, requireIfMatch := range []bool{false, true} {
		m, ts := serveMockup(t, "public-rackmount1", mockupserver.Options{RequireIfMatch: requireIfMatch})
		b := openMock(t, mockConfig(t, ts.URL))
		for _, tc := range tests {
			m.ResetRequests()
			if err := b.SetBoot(t.Context(), tc.opts); err != nil {
				t.Fatalf("SetBoot %+v: %v", tc.opts, err)
			}
			want := []mockupserver.Request{{Method: "PATCH", Path: sys, Body: tc.body, Auth: "token", Status: 204}}
			got := writes(m)
			if diff := cmp.Diff(want, got, ignoreIfMatch); diff != "" {
				t.Errorf("SetBoot %+v: writes (-want +got):\n%s", tc.opts, diff)
			}
			// The PATCH carries the ETag of the GET just before it.
			if len(got) == 1 && got[0].IfMatch == "" {
				t.Errorf("SetBoot %+v: PATCH without If-Match", tc.opts)
			}
			boot := m.Doc(sys)["Boot"].(map[string]any)
			if boot["BootSourceOverrideTarget"] == nil || !strings.Contains(tc.body, boot["BootSourceOverrideTarget"].(string)) {
				t.Errorf("SetBoot %+v: mockup holds target %v", tc.opts, boot["BootSourceOverrideTarget"])
			}
		}
	}
}

func TestSetBootUnsupportedTarget(t *testing.T) {
	m, ts := serveMockup(t, "public-rackmount1", mockupserver.Options{})
	b := openMock(t, mockConfig(t, ts.URL))
	m.ResetRequests()
	// BootSourceOverrideMode has no allowable values there, Pxe is allowed;
	// an unknown device must fail before anything is sent.
	err := b.SetBoot(t.Context(), drivers.BootOptions{Device: "floppy"})
	if !errors.Is(err, drivers.ErrUnsupported) {
		t.Errorf("SetBoot floppy: %v, want ErrUnsupported", err)
	}
	if w := writes(m); len(w) != 0 {
		t.Errorf("SetBoot floppy sent %v", w)
	}
}

// TestInsertMediaPatch checks the exact requests of virtual media on
// services that declare no InsertMedia action (the mockups): a PATCH of
// Image and Inserted, after ejecting what the device held.
func TestInsertMediaPatch(t *testing.T) {
	const image = "http://[fd00::1]:8080/boot/agent.iso"
	tests := []struct {
		mockup string
		device string
	}{
		{"public-rackmount1", "/redfish/v1/Systems/437XR1138R2/VirtualMedia/CD1"}, // under the system
		{"public-tower", "/redfish/v1/Managers/BMC/VirtualMedia/CD1"},             // under the manager
		{"public-localstorage", "/redfish/v1/Managers/BMC/VirtualMedia/CD1"},
	}
	for _, tc := range tests {
		t.Run(tc.mockup, func(t *testing.T) {
			m, ts := serveMockup(t, tc.mockup, mockupserver.Options{})
			b := openMock(t, mockConfig(t, ts.URL))
			m.ResetRequests()
			if err := b.InsertMedia(t.Context(), drivers.MediaCD, image); err != nil {
				t.Fatal(err)
			}
			want := []mockupserver.Request{
				{Method: "PATCH", Path: tc.device, Body: `{"Image":null,"Inserted":false}`, Auth: "token", Status: 204},
				{Method: "PATCH", Path: tc.device, Body: `{"Image":"` + image + `","Inserted":true}`, Auth: "token", Status: 204},
			}
			if diff := cmp.Diff(want, writes(m), ignoreIfMatch); diff != "" {
				t.Errorf("InsertMedia writes (-want +got):\n%s", diff)
			}
			st, err := b.MediaStatus(t.Context(), drivers.MediaCD)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(drivers.MediaStatus{Kind: drivers.MediaCD, Device: tc.device, Image: image, Inserted: true}, st); diff != "" {
				t.Errorf("MediaStatus (-want +got):\n%s", diff)
			}
			// Inserting the same image again sends nothing.
			m.ResetRequests()
			if err := b.InsertMedia(t.Context(), drivers.MediaCD, image); err != nil {
				t.Fatal(err)
			}
			if w := writes(m); len(w) != 0 {
				t.Errorf("second InsertMedia sent %v", w)
			}
			// Eject empties every CD device; the Floppy slot is left alone.
			m.ResetRequests()
			if err := b.EjectMedia(t.Context(), drivers.MediaCD); err != nil {
				t.Fatal(err)
			}
			for _, w := range writes(m) {
				if w.Body != `{"Image":null,"Inserted":false}` || strings.Contains(w.Path, "Floppy") {
					t.Errorf("EjectMedia sent %s %s %s", w.Method, w.Path, w.Body)
				}
			}
			st, err = b.MediaStatus(t.Context(), drivers.MediaCD)
			if err != nil {
				t.Fatal(err)
			}
			if st.Inserted || st.Image != "" {
				t.Errorf("MediaStatus after eject = %+v", st)
			}
			// USB falls back to the Floppy device.
			if st, err := b.MediaStatus(t.Context(), drivers.MediaUSB); err != nil || !strings.Contains(st.Device, "Floppy") {
				t.Errorf("MediaStatus usb = %+v, %v; want the Floppy device", st, err)
			}
		})
	}
}

func TestBIOSMockup(t *testing.T) {
	m, ts := serveMockup(t, "public-tower", mockupserver.Options{})
	b := openMock(t, mockConfig(t, ts.URL))
	attrs, err := b.BIOSAttributes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"AdminPhone": "", "BootMode": "Uefi", "EmbeddedSata": "Raid", "NicBoot1": "NetworkBoot",
		"NicBoot2": "Disabled", "PowerProfile": "MaxPerf", "ProcCoreDisable": int64(0),
		"ProcHyperthreading": "Enabled", "ProcTurboMode": "Enabled", "UsbControl": "UsbEnabled",
	}
	if diff := cmp.Diff(want, attrs); diff != "" {
		t.Errorf("BIOSAttributes (-want +got):\n%s", diff)
	}
	m.ResetRequests()
	// Unchanged values (ProcCoreDisable 0 given as an int) are not sent.
	if err := b.ApplyBIOS(t.Context(), map[string]any{"ProcTurboMode": "Disabled", "ProcCoreDisable": 0, "NicBoot2": "NetworkBoot"}); err != nil {
		t.Fatal(err)
	}
	wantW := []mockupserver.Request{{Method: "PATCH", Path: "/redfish/v1/Systems/437XR1238R2/Bios/Settings",
		Body: `{"Attributes":{"NicBoot2":"NetworkBoot","ProcTurboMode":"Disabled"}}`, Auth: "token", Status: 204}}
	if diff := cmp.Diff(wantW, writes(m), ignoreIfMatch); diff != "" {
		t.Errorf("ApplyBIOS writes (-want +got):\n%s", diff)
	}
	m.ResetRequests()
	err = b.ApplyBIOS(t.Context(), map[string]any{"NoSuchThing": 1})
	if err == nil || !strings.Contains(err.Error(), "NoSuchThing") {
		t.Errorf("ApplyBIOS unknown attribute: %v", err)
	}
	if w := writes(m); len(w) != 0 {
		t.Errorf("refused ApplyBIOS sent %v", w)
	}
}

func TestVolumesMockup(t *testing.T) {
	_, ts := serveMockup(t, "public-localstorage", mockupserver.Options{})
	b := openMock(t, mockConfig(t, ts.URL))
	vols, err := b.Volumes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 3 {
		t.Fatalf("Volumes = %d, want 3: %+v", len(vols), vols)
	}
	want := drivers.Volume{ID: "/redfish/v1/Systems/437XR1138R2/Storage/1/Volumes/1", Name: "Virtual Disk 1", RAIDLevel: "RAID1",
		CapacityBytes: 899527000064, Drives: []string{"3F5A8C54207B7233", "35D38F11ACEF7BD3"}}
	if diff := cmp.Diff(want, vols[0]); diff != "" {
		t.Errorf("Volumes[0] (-want +got):\n%s", diff)
	}
	// The mockup server, like the DMTF one, takes no POST there.
	_, err = b.CreateVolume(t.Context(), drivers.VolumeSpec{Name: "v", RAIDLevel: "RAID0", Drives: []string{"32ADF365C6C1B7BD"}})
	if !errors.Is(err, drivers.ErrUnsupported) {
		t.Errorf("CreateVolume on a read-only collection: %v, want ErrUnsupported", err)
	}
}

// stalePatch answers the first PATCH with 412, as a BMC does when the
// resource changed between the client's GET and its PATCH.
type stalePatch struct {
	http.Handler
	done bool
}

func (s *stalePatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPatch && !s.done {
		s.done = true
		w.WriteHeader(http.StatusPreconditionFailed)
		return
	}
	s.Handler.ServeHTTP(w, r)
}

// TestPatchStaleETag: on 412 the driver reads a fresh ETag and PATCHes
// once more with it.
func TestPatchStaleETag(t *testing.T) {
	m, err := mockupserver.Open("public-rackmount1", mockupserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(&stalePatch{Handler: m})
	defer ts.Close()
	b := openMock(t, mockConfig(t, ts.URL))
	m.ResetRequests()
	if err := b.SetBoot(t.Context(), drivers.BootOptions{Device: drivers.BootCD}); err != nil {
		t.Fatal(err)
	}
	// The mockup saw: the GET before the PATCH (the 412 came from the
	// wrapper), the GET for a fresh ETag, the PATCH with it, and the GET
	// that reads the override back.
	var got []string
	for _, r := range m.Requests() {
		got = append(got, r.Method+" "+r.Path)
	}
	sys := b.System()
	want := []string{"GET " + sys, "GET " + sys, "PATCH " + sys, "GET " + sys}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if w := writes(m); len(w) != 1 || w[0].IfMatch == "" || w[0].Status != http.StatusNoContent {
		t.Errorf("retried PATCH = %+v, want one with If-Match, accepted", w)
	}
}

// TestMediaWithoutManagedBy: a system that does not link its manager still
// finds the virtual media of the service's only manager.
func TestMediaWithoutManagedBy(t *testing.T) {
	_, ts := serveMockup(t, "public-tower", mockupserver.Options{Username: mockUser, Password: mockPass, DropProperties: []string{"Links"}})
	b := openMock(t, mockConfig(t, ts.URL))
	st, err := b.MediaStatus(t.Context(), drivers.MediaCD)
	if err != nil {
		t.Fatal(err)
	}
	if st.Device != "/redfish/v1/Managers/BMC/VirtualMedia/CD1" {
		t.Errorf("MediaStatus device = %q", st.Device)
	}
}
