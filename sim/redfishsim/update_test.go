package redfishsim

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSimpleUpdate(t *testing.T) {
	img := newImageServer(t)
	sim := newTestSim(t, Config{Systems: Systems(2, SystemConfig{UpdateDuration: time.Minute})})
	action := sim.url + "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate"
	tests := []struct {
		name   string
		body   any
		status int
	}{
		{"no image", map[string]any{"Targets": []string{"/redfish/v1/Systems/sys-0001"}}, 400},
		{"no targets on the shared service", map[string]any{"ImageURI": img.URL + "/ok.iso"}, 400},
		{"unknown target", map[string]any{"ImageURI": img.URL + "/ok.iso", "Targets": []string{"/redfish/v1/Systems/nope"}}, 400},
		{"missing image", map[string]any{"ImageURI": img.URL + "/missing.iso", "Targets": []string{"/redfish/v1/Systems/sys-0001"}}, 400},
	}
	for _, tt := range tests {
		if r := do(t, "POST", action, tt.body, nil); r.status != tt.status {
			t.Errorf("%s: %d, want %d: %v", tt.name, r.status, tt.status, r.body)
		}
	}

	r := do(t, "POST", action, map[string]any{"ImageURI": img.URL + "/ok.iso", "Targets": []string{"/redfish/v1/UpdateService/FirmwareInventory/BIOS-sys-0002"}}, nil)
	monitor := r.header.Get("Location")
	if r.status != 202 || monitor != "/redfish/v1/TaskService/TaskMonitors/1" || r.body["TaskState"] != "Running" {
		t.Fatalf("SimpleUpdate: %d %q %v", r.status, monitor, r.body)
	}
	sim.clock.Advance(30 * time.Second)
	if r := do(t, "GET", sim.url+monitor, nil, nil); r.status != 202 || r.body["PercentComplete"] != 50.0 {
		t.Errorf("monitor while running: %d %v", r.status, r.body)
	}
	sim.clock.Advance(30 * time.Second)
	r = do(t, "GET", sim.url+monitor, nil, nil)
	if r.status != 200 || r.body["TaskState"] != "Completed" {
		t.Errorf("monitor when done: %d %v", r.status, r.body)
	}
	st, _ := sim.System("sys-0002")
	if diff := cmp.Diff([]string{img.URL + "/ok.iso"}, st.Updates); diff != "" {
		t.Errorf("updates (-want +got):\n%s", diff)
	}
	if got := field(do(t, "GET", sim.url+"/redfish/v1/Systems/sys-0002", nil, nil).body, "BiosVersion"); got != "2.19.1-u1" {
		t.Errorf("BiosVersion after update: %v", got)
	}
	if got := field(do(t, "GET", sim.url+"/redfish/v1/TaskService/Tasks", nil, nil).body, "Members", 0, "@odata.id"); got != "/redfish/v1/TaskService/Tasks/1" {
		t.Errorf("tasks: %v", got)
	}

	// A BMC view needs no targets: it has one system.
	h, _ := sim.BMC("sys-0001")
	bmc := httptest.NewServer(h)
	defer bmc.Close()
	if r := do(t, "POST", bmc.URL+"/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate", map[string]any{"ImageURI": img.URL + "/ok.iso"}, nil); r.status != 202 {
		t.Errorf("BMC view update: %d %v", r.status, r.body)
	}
}

func TestRecording(t *testing.T) {
	sim := newTestSim(t, Config{})
	sys := sim.url + "/redfish/v1/Systems/sys-0001"
	login(t, sim.url, "admin", "password")
	do(t, "GET", sys, nil, nil)
	do(t, "PATCH", sys, map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": "Pxe"}}, nil)
	do(t, "POST", sys+"/Actions/ComputerSystem.Reset", map[string]any{"ResetType": "Explode"}, nil)
	do(t, "GET", sim.url+"/redfish/v1/Systems/sys-0002/Bios", nil, nil)

	got := sim.Requests()
	for i := range got {
		got[i].Duration = 0
	}
	want := []Request{
		{Time: t0, Method: "POST", Path: "/redfish/v1/SessionService/Sessions", Status: 201, Body: `{"Password":"[redacted]","UserName":"admin"}`},
		{Time: t0, Method: "GET", Path: "/redfish/v1/Systems/sys-0001", System: "sys-0001", Status: 200},
		{Time: t0, Method: "PATCH", Path: "/redfish/v1/Systems/sys-0001", System: "sys-0001", Status: 204, Body: `{"Boot":{"BootSourceOverrideTarget":"Pxe"}}`},
		{Time: t0, Method: "POST", Path: "/redfish/v1/Systems/sys-0001/Actions/ComputerSystem.Reset", System: "sys-0001", Status: 400, Body: `{"ResetType":"Explode"}`},
		{Time: t0, Method: "GET", Path: "/redfish/v1/Systems/sys-0002/Bios", System: "sys-0002", Status: 200},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[4:], zeroDurations(sim.RequestsFor("sys-0002"))); diff != "" {
		t.Errorf("requests for sys-0002 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Counts{Requests: 3, Get: 1, Post: 1, Patch: 1, Errors: 1}, sim.Counts("sys-0001")); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Counts{Requests: 5, Get: 2, Post: 2, Patch: 1, Errors: 1}, sim.TotalCounts()); diff != "" {
		t.Errorf("total counts (-want +got):\n%s", diff)
	}
	sim.ResetRequests()
	if n := len(sim.Requests()); n != 0 {
		t.Errorf("%d requests after reset", n)
	}
}

func zeroDurations(rs []Request) []Request {
	for i := range rs {
		rs[i].Duration = 0
	}
	return rs
}

func TestRequestLogLimit(t *testing.T) {
	sim := newTestSim(t, Config{LogLimit: 4})
	for range 6 {
		do(t, "GET", sim.url+"/redfish/v1/", nil, nil)
	}
	if n := len(sim.Requests()); n > 4 || n == 0 {
		t.Errorf("%d requests kept with a limit of 4", n)
	}
	if got := sim.Counts("").Requests; got != 6 {
		t.Errorf("counted %d requests, want 6", got)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no systems", Config{}},
		{"empty id", Config{Systems: []SystemConfig{{}}}},
		{"slash in id", Config{Systems: []SystemConfig{{ID: "a/b"}}}},
		{"duplicate", Config{Systems: []SystemConfig{{ID: "a"}, {ID: "a"}}}},
		{"bad profile", Config{Systems: []SystemConfig{{ID: "a", Profile: "warp"}}}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}
