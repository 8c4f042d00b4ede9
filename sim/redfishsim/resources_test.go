package redfishsim

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestResources(t *testing.T) {
	sim := newTestSim(t, Config{})
	sys := "/redfish/v1/Systems/sys-0001"
	tests := []struct {
		path   string
		status int
		checks map[string][]any // expected value -> path into the document
	}{
		{"/redfish/v1/", 200, map[string][]any{"1.15.0": {"RedfishVersion"}, "/redfish/v1/SessionService/Sessions": {"Links", "Sessions", "@odata.id"}}},
		{"/redfish", 200, map[string][]any{"/redfish/v1/": {"v1"}}},
		{"/redfish/v1/Systems", 200, map[string][]any{"/redfish/v1/Systems/sys-0002": {"Members", 1, "@odata.id"}}},
		{"/redfish/v1/Managers", 200, map[string][]any{"/redfish/v1/Managers/sys-0001": {"Members", 0, "@odata.id"}}},
		{"/redfish/v1/Chassis", 200, map[string][]any{"/redfish/v1/Chassis/sys-0002": {"Members", 1, "@odata.id"}}},
		{sys, 200, map[string][]any{
			"#ComputerSystem.v1_20_0.ComputerSystem": {"@odata.type"},
			"Off":                                    {"PowerState"},
			"UEFI":                                   {"Boot", "BootSourceOverrideMode"},
			"Cd":                                     {"Boot", "BootSourceOverrideTarget@Redfish.AllowableValues", 2},
			"ForceOff":                               {"Actions", "#ComputerSystem.Reset", "ResetType@Redfish.AllowableValues", 1},
			sys + "/Actions/ComputerSystem.Reset":    {"Actions", "#ComputerSystem.Reset", "target"},
			"/redfish/v1/Managers/sys-0001":          {"Links", "ManagedBy", 0, "@odata.id"},
		}},
		{sys + "/Processors", 200, map[string][]any{sys + "/Processors/CPU2": {"Members", 1, "@odata.id"}}},
		{sys + "/Processors/CPU1", 200, map[string][]any{"x86": {"ProcessorArchitecture"}}},
		{sys + "/Processors/CPU3", 404, nil},
		{sys + "/Memory/DIMM8", 200, map[string][]any{"DIMM8": {"Id"}}},
		{sys + "/Memory/DIMM9", 404, nil},
		{sys + "/EthernetInterfaces/NIC.2", 200, map[string][]any{"02:5A:00:00:01:02": {"MACAddress"}}},
		{sys + "/Storage/1", 200, map[string][]any{sys + "/Storage/1/Volumes": {"Volumes", "@odata.id"}}},
		{sys + "/Storage/1/Drives/Disk.3", 200, map[string][]any{"HDD": {"MediaType"}}},
		{sys + "/Bios", 200, map[string][]any{"Enabled": {"Attributes", "ProcHyperthreading"}, sys + "/Bios/Settings": {"@Redfish.Settings", "SettingsObject", "@odata.id"}}},
		{"/redfish/v1/Managers/sys-0002/VirtualMedia", 200, map[string][]any{"/redfish/v1/Managers/sys-0002/VirtualMedia/RemovableDisk1": {"Members", 1, "@odata.id"}}},
		{"/redfish/v1/Managers/sys-0002/VirtualMedia/CD1", 200, map[string][]any{"NotConnected": {"ConnectedVia"}}},
		{"/redfish/v1/Chassis/sys-0002", 200, map[string][]any{"/redfish/v1/Systems/sys-0002": {"Links", "ComputerSystems", 0, "@odata.id"}}},
		{"/redfish/v1/UpdateService", 200, map[string][]any{"/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate": {"Actions", "#UpdateService.SimpleUpdate", "target"}}},
		{"/redfish/v1/UpdateService/FirmwareInventory/BIOS-sys-0001", 200, map[string][]any{"2.19.1": {"Version"}}},
		{"/redfish/v1/Systems/nope", 404, nil},
		{"/redfish/v1/Nope", 404, nil},
		{"/other", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := do(t, "GET", sim.url+tt.path, nil, nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %v", r.status, tt.status, r.body)
			}
			for want, p := range tt.checks {
				if got := field(r.body, p...); got != want {
					t.Errorf("%v = %v, want %q", p, got, want)
				}
			}
			if etag := r.header.Get("ETag"); r.status == 200 && (etag == "" || r.body["@odata.etag"] != etag) {
				t.Errorf("ETag header %q, @odata.etag %v", etag, r.body["@odata.etag"])
			}
			if r.status == 404 && errorID(r) != msgResourceMissing {
				t.Errorf("404 error id %v", errorID(r))
			}
		})
	}
}

func TestPower(t *testing.T) {
	tests := []struct {
		name         string
		on           bool
		transitional bool
		reset        string
		before       string // PowerState right after the request
		after        string // once the transition is done
		boots        int
	}{
		{"on from off", false, false, "On", "Off", "On", 1},
		{"on from off transitional", false, true, "On", "PoweringOn", "On", 1},
		{"force off", true, false, "ForceOff", "On", "Off", 0},
		{"graceful shutdown transitional", true, true, "GracefulShutdown", "PoweringOff", "Off", 0},
		{"on when on", true, true, "On", "On", "On", 0},
		{"restart", true, true, "ForceRestart", "PoweringOff", "On", 1},
		{"push button from off", false, false, "PushPowerButton", "Off", "On", 1},
		{"nmi", true, false, "Nmi", "On", "On", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := newTestSim(t, Config{Systems: Systems(1, SystemConfig{
				PoweredOn: tt.on, ReportTransitional: tt.transitional,
				PowerOnDelay: 10 * time.Second, PowerOffDelay: 5 * time.Second,
			})})
			u := sim.url + "/redfish/v1/Systems/sys-0001"
			if r := do(t, "POST", u+"/Actions/ComputerSystem.Reset", map[string]string{"ResetType": tt.reset}, nil); r.status != http.StatusNoContent {
				t.Fatalf("reset: %d %v", r.status, r.body)
			}
			if got := field(do(t, "GET", u, nil, nil).body, "PowerState"); got != tt.before {
				t.Errorf("before: PowerState %v, want %s", got, tt.before)
			}
			sim.clock.Advance(15 * time.Second)
			if got := field(do(t, "GET", u, nil, nil).body, "PowerState"); got != tt.after {
				t.Errorf("after: PowerState %v, want %s", got, tt.after)
			}
			st, _ := sim.System("sys-0001")
			if st.Boots != tt.boots {
				t.Errorf("boots %d, want %d", st.Boots, tt.boots)
			}
		})
	}
}

func TestResetErrors(t *testing.T) {
	sim := newTestSim(t, Config{})
	u := sim.url + "/redfish/v1/Systems/sys-0001/Actions/ComputerSystem.Reset"
	tests := []struct {
		name   string
		method string
		body   any
		status int
		id     any
	}{
		{"missing", "POST", map[string]any{}, 400, msgActionParamMissing},
		{"unknown", "POST", map[string]any{"ResetType": "Explode"}, 400, msgActionParamValue},
		{"bad json", "POST", "{", 400, msgMalformedJSON},
		{"get", "GET", nil, 405, msgOperationNotAllow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, u, tt.body, nil)
			if r.status != tt.status || errorID(r) != tt.id {
				t.Errorf("got %d %v, want %d %v", r.status, errorID(r), tt.status, tt.id)
			}
		})
	}
}

func TestBootOverride(t *testing.T) {
	tests := []struct {
		name   string
		body   any
		status int
		want   [3]string // target, enabled, mode after the PATCH
	}{
		{"once pxe", map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}, 204, [3]string{"Pxe", "Once", "UEFI"}},
		{"continuous cd legacy", map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": "Cd", "BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideMode": "Legacy"}}, 204, [3]string{"Cd", "Continuous", "Legacy"}},
		{"bad target", map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": "Floppy"}}, 400, [3]string{"None", "Disabled", "UEFI"}},
		{"unknown boot key", map[string]any{"Boot": map[string]any{"Foo": "x"}}, 400, [3]string{"None", "Disabled", "UEFI"}},
		{"read-only property", map[string]any{"PowerState": "On"}, 400, [3]string{"None", "Disabled", "UEFI"}},
		{"annotation ignored", map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideTarget@Redfish.AllowableValues": []string{"x"}}}, 204, [3]string{"Hdd", "Disabled", "UEFI"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := newTestSim(t, Config{})
			u := sim.url + "/redfish/v1/Systems/sys-0001"
			if r := do(t, "PATCH", u, tt.body, nil); r.status != tt.status {
				t.Fatalf("PATCH: %d %v, want %d", r.status, r.body, tt.status)
			}
			st, _ := sim.System("sys-0001")
			if got := [3]string{st.BootTarget, st.BootEnabled, st.BootMode}; got != tt.want {
				t.Errorf("boot %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBootOnceUsedUpAtBoot(t *testing.T) {
	sim := newTestSim(t, Config{})
	u := sim.url + "/redfish/v1/Systems/sys-0001"
	do(t, "PATCH", u, map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}, nil)
	do(t, "POST", u+"/Actions/ComputerSystem.Reset", map[string]any{"ResetType": "On"}, nil)
	st, _ := sim.System("sys-0001")
	if diff := cmp.Diff(BootRecord{Time: t0, Target: "Pxe", Mode: "UEFI"}, st.LastBoot); diff != "" {
		t.Errorf("last boot (-want +got):\n%s", diff)
	}
	if st.BootEnabled != "Disabled" || st.BootTarget != "Pxe" {
		t.Errorf("after boot: %s %s, want Pxe Disabled", st.BootTarget, st.BootEnabled)
	}
}

func TestBIOSPendingAppliedAtReboot(t *testing.T) {
	sim := newTestSim(t, Config{Systems: Systems(1, SystemConfig{PoweredOn: true, PowerOffDelay: time.Second, PowerOnDelay: time.Second})})
	u := sim.url + "/redfish/v1/Systems/sys-0001/Bios"
	tests := []struct {
		name   string
		body   any
		status int
	}{
		{"unknown attribute", map[string]any{"Attributes": map[string]any{"Nope": "x"}}, 400},
		{"wrong type", map[string]any{"Attributes": map[string]any{"ProcCoreDisable": "two"}}, 400},
		{"empty", map[string]any{}, 400},
		{"ok", map[string]any{"Attributes": map[string]any{"ProcHyperthreading": "Disabled", "ProcCoreDisable": 2}}, 204},
	}
	for _, tt := range tests {
		if r := do(t, "PATCH", u+"/Settings", tt.body, nil); r.status != tt.status {
			t.Errorf("%s: PATCH %d %v, want %d", tt.name, r.status, r.body, tt.status)
		}
	}
	read := func() (applied, staged any) {
		return field(do(t, "GET", u, nil, nil).body, "Attributes", "ProcHyperthreading"),
			field(do(t, "GET", u+"/Settings", nil, nil).body, "Attributes", "ProcHyperthreading")
	}
	if a, s := read(); a != "Enabled" || s != "Disabled" {
		t.Fatalf("before reboot: applied %v staged %v", a, s)
	}
	do(t, "POST", sim.url+"/redfish/v1/Systems/sys-0001/Actions/ComputerSystem.Reset", map[string]any{"ResetType": "GracefulRestart"}, nil)
	sim.clock.Advance(time.Second) // off, not yet on
	if a, _ := read(); a != "Enabled" {
		t.Fatalf("while off: applied %v", a)
	}
	sim.clock.Advance(time.Second)
	if a, s := read(); a != "Disabled" || s != "Disabled" {
		t.Errorf("after reboot: applied %v staged %v", a, s)
	}
	st, _ := sim.System("sys-0001")
	if diff := cmp.Diff(map[string]any{}, st.BIOSPending); diff != "" {
		t.Errorf("pending after reboot (-want +got):\n%s", diff)
	}
	if st.BIOS["ProcCoreDisable"] != 2 {
		t.Errorf("ProcCoreDisable %v, want 2", st.BIOS["ProcCoreDisable"])
	}
}

func TestVolumes(t *testing.T) {
	sim := newTestSim(t, Config{})
	base := "/redfish/v1/Systems/sys-0001/Storage/1"
	u := sim.url + base + "/Volumes"
	drives := func(ids ...string) map[string]any {
		var l []map[string]string
		for _, id := range ids {
			l = append(l, map[string]string{"@odata.id": base + "/Drives/" + id})
		}
		return map[string]any{"Drives": l}
	}
	tests := []struct {
		name     string
		body     any
		status   int
		location string
	}{
		{"raid1 of the ssds", map[string]any{"Name": "os", "RAIDType": "RAID1", "Links": drives("Disk.0", "Disk.1")}, 201, base + "/Volumes/1"},
		{"drive in use", map[string]any{"RAIDType": "RAID0", "Links": drives("Disk.1")}, 400, ""},
		{"too few drives", map[string]any{"RAIDType": "RAID5", "Links": drives("Disk.2", "Disk.3")}, 400, ""},
		{"unknown raid", map[string]any{"RAIDType": "RAID7", "Links": drives("Disk.2")}, 400, ""},
		{"unknown drive", map[string]any{"RAIDType": "RAID0", "Links": drives("Disk.9")}, 400, ""},
		{"same drive twice", map[string]any{"RAIDType": "RAID1", "Links": drives("Disk.2", "Disk.2")}, 400, ""},
		{"too big", map[string]any{"RAIDType": "RAID0", "CapacityBytes": int64(1) << 50, "Links": drives("Disk.2")}, 400, ""},
		{"raid0 of the hdds", map[string]any{"RAIDType": "RAID0", "Links": drives("Disk.2", "Disk.3")}, 201, base + "/Volumes/2"},
	}
	for _, tt := range tests {
		r := do(t, "POST", u, tt.body, nil)
		if r.status != tt.status || r.header.Get("Location") != tt.location {
			t.Errorf("%s: %d %q, want %d %q: %v", tt.name, r.status, r.header.Get("Location"), tt.status, tt.location, r.body)
		}
	}
	st, _ := sim.System("sys-0001")
	want := []VolumeState{
		{ID: "1", Name: "os", RAIDType: "RAID1", CapacityBytes: 480103981056, Drives: []string{"Disk.0", "Disk.1"}},
		{ID: "2", Name: "Volume 2", RAIDType: "RAID0", CapacityBytes: 2 * 4000787030016, Drives: []string{"Disk.2", "Disk.3"}},
	}
	if diff := cmp.Diff(want, st.Volumes); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	if r := do(t, "DELETE", u+"/1", nil, map[string]string{"If-Match": `"stale"`}); r.status != 412 {
		t.Errorf("DELETE with stale If-Match: %d", r.status)
	}
	etag := do(t, "GET", u+"/1", nil, nil).header.Get("ETag")
	if r := do(t, "DELETE", u+"/1", nil, map[string]string{"If-Match": etag}); r.status != 204 {
		t.Errorf("DELETE: %d %v", r.status, r.body)
	}
	if r := do(t, "GET", u+"/1", nil, nil); r.status != 404 {
		t.Errorf("GET deleted volume: %d", r.status)
	}
	if got := field(do(t, "GET", u, nil, nil).body, "Members@odata.count"); got != 1.0 {
		t.Errorf("members after delete: %v", got)
	}
}

func TestETags(t *testing.T) {
	sim := newTestSim(t, Config{Systems: []SystemConfig{{ID: "loose"}, {ID: "strict", RequireIfMatch: true}}})
	boot := func(target string) map[string]any {
		return map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": target}}
	}
	for _, tt := range []struct {
		id         string
		withoutTag int
	}{{"loose", 204}, {"strict", 428}} {
		u := sim.url + "/redfish/v1/Systems/" + tt.id
		r := do(t, "GET", u, nil, nil)
		if etag := r.header.Get("ETag"); etag == "" || r.body["@odata.etag"] != etag {
			t.Fatalf("%s: ETag header %q, @odata.etag %v", tt.id, etag, r.body["@odata.etag"])
		}
		if r := do(t, "PATCH", u, boot("Pxe"), map[string]string{"If-Match": `W/"0000000000000000"`}); r.status != 412 || errorID(r) != msgPreconditionFailed {
			t.Errorf("%s: stale If-Match: %d %v", tt.id, r.status, errorID(r))
		}
		if r := do(t, "PATCH", u, boot("Pxe"), nil); r.status != tt.withoutTag {
			t.Errorf("%s: no If-Match: %d, want %d", tt.id, r.status, tt.withoutTag)
		}
		etag := do(t, "GET", u, nil, nil).header.Get("ETag")
		if r := do(t, "PATCH", u, boot("Hdd"), map[string]string{"If-Match": etag}); r.status != 204 {
			t.Errorf("%s: current If-Match: %d %v", tt.id, r.status, r.body)
		}
		if r := do(t, "PATCH", u, boot("Cd"), map[string]string{"If-Match": etag}); r.status != 412 {
			t.Errorf("%s: If-Match from before the last change: %d", tt.id, r.status)
		}
		if r := do(t, "PATCH", u, boot("Cd"), map[string]string{"If-Match": "*"}); r.status != 204 {
			t.Errorf("%s: If-Match *: %d", tt.id, r.status)
		}
	}
}
