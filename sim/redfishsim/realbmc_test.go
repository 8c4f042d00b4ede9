package redfishsim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSections: a broken section stays linked and answers its status
// under the link; the rest of the system is served.
func TestSections(t *testing.T) {
	sim := newTestSim(t, Config{Systems: Systems(2, SystemConfig{Sections: map[Section]int{
		SectionMemory: 404, SectionProcessors: 501, SectionFirmware: 404,
	}})})
	sys := sim.url + "/redfish/v1/Systems/sys-0001"
	r := do(t, "GET", sys, nil, nil)
	if r.status != 200 || field(r.body, "Memory", "@odata.id") == nil || field(r.body, "MemorySummary", "TotalSystemMemoryGiB") != nil {
		t.Errorf("system: %d, Memory link %v, memory summary %v; want 200, a link, no summary",
			r.status, field(r.body, "Memory"), field(r.body, "MemorySummary"))
	}
	cases := []struct {
		path   string
		status int
		id     string
	}{
		{"/redfish/v1/Systems/sys-0001/Memory", 404, msgResourceMissing},
		{"/redfish/v1/Systems/sys-0001/Memory/DIMM1", 404, msgResourceMissing},
		{"/redfish/v1/Systems/sys-0001/Processors", 501, msgNotImplemented},
		{"/redfish/v1/Systems/sys-0001/EthernetInterfaces", 200, ""},
		{"/redfish/v1/UpdateService", 200, ""},
		{"/redfish/v1/UpdateService/FirmwareInventory", 404, msgResourceMissing},
	}
	for _, tc := range cases {
		r := do(t, "GET", sim.url+tc.path, nil, nil)
		if r.status != tc.status || (tc.id != "" && errorID(r) != tc.id) {
			t.Errorf("GET %s = %d %v, want %d %s", tc.path, r.status, errorID(r), tc.status, tc.id)
		}
	}
}

// TestRedirectToUUID: a system named by its ID answers 307 to its UUID
// URL, where it is served; collections name the UUID URL; a PATCH sent
// again there (as a 307 asks) applies.
func TestRedirectToUUID(t *testing.T) {
	sim := newTestSim(t, Config{Systems: Systems(2, SystemConfig{RedirectToUUID: true})})
	byName := sim.url + "/redfish/v1/Systems/sys-0002"
	uuidPath := "/redfish/v1/Systems/" + sim.systems["sys-0002"].uuid()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", byName+"/Bios?x=1", nil)
	req.SetBasicAuth("admin", "password")
	hr, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusTemporaryRedirect || hr.Header.Get("Location") != uuidPath+"/Bios?x=1" {
		t.Errorf("GET by name = %d Location %q, want 307 to %s/Bios?x=1", hr.StatusCode, hr.Header.Get("Location"), uuidPath)
	}
	if r := do(t, "GET", byName, nil, nil); r.status != 200 || r.body["@odata.id"] != uuidPath {
		t.Errorf("GET by name, followed = %d %v", r.status, r.body["@odata.id"])
	}
	r := do(t, "GET", sim.url+"/redfish/v1/Systems", nil, nil)
	if got := field(r.body, "Members", 1, "@odata.id"); got != uuidPath {
		t.Errorf("Systems member = %v, want %s", got, uuidPath)
	}
	r = do(t, "PATCH", byName, map[string]any{"Boot": map[string]string{"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}, nil)
	st, _ := sim.System("sys-0002")
	if r.status != 204 || st.BootTarget != "Pxe" {
		t.Errorf("PATCH by name = %d, boot target %s", r.status, st.BootTarget)
	}
	if r := do(t, "GET", sim.url+"/redfish/v1/Managers/sys-0002", nil, nil); r.status != 200 || field(r.body, "Links", "ManagerForServers", 0, "@odata.id") != uuidPath {
		t.Errorf("manager = %d %v", r.status, field(r.body, "Links", "ManagerForServers"))
	}
}

// TestSessionLifetime: a session ends SessionLifetime after its login
// even while in use.
func TestSessionLifetime(t *testing.T) {
	sim := newTestSim(t, Config{SessionLifetime: 10 * time.Minute})
	r := login(t, sim.url, "admin", "password")
	tok := map[string]string{"X-Auth-Token": r.header.Get("X-Auth-Token")}
	sys := sim.url + "/redfish/v1/Systems/sys-0001"
	for range 9 {
		sim.clock.Advance(time.Minute)
		if r := do(t, "GET", sys, nil, tok); r.status != 200 {
			t.Fatalf("GET at %v: %d", sim.clock.Now().Sub(t0), r.status)
		}
	}
	sim.clock.Advance(time.Minute)
	if r := do(t, "GET", sys, nil, tok); r.status != 401 {
		t.Errorf("GET after the lifetime: %d, want 401", r.status)
	}
	if n := sim.Sessions(""); n != 0 {
		t.Errorf("%d sessions left", n)
	}
}

// TestRequestLogOnePerSweep: the request log shows what one power read
// per node costs: one GET of each system, nothing else.
func TestRequestLogOnePerSweep(t *testing.T) {
	sim := newTestSim(t, Config{Systems: Systems(3, SystemConfig{})})
	r := login(t, sim.url, "admin", "password")
	tok := map[string]string{"X-Auth-Token": r.header.Get("X-Auth-Token")}
	sim.ResetRequests()
	for _, id := range sim.IDs() {
		do(t, "GET", sim.url+"/redfish/v1/Systems/"+id, nil, tok)
	}
	var got []string
	for _, r := range sim.Requests() {
		got = append(got, r.Method+" "+r.System+" "+strings.TrimPrefix(r.Path, "/redfish/v1/Systems/"))
	}
	want := "GET sys-0001 sys-0001,GET sys-0002 sys-0002,GET sys-0003 sys-0003"
	if strings.Join(got, ",") != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}
