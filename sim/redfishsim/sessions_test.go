package redfishsim

import (
	"net/http/httptest"
	"testing"
	"time"
)

func login(t *testing.T, base, user, pass string) resp {
	t.Helper()
	return do(t, "POST", base+"/redfish/v1/SessionService/Sessions",
		map[string]string{"UserName": user, "Password": pass}, map[string]string{"Authorization": "-"})
}

func TestAuth(t *testing.T) {
	sim := newTestSim(t, Config{SessionTimeout: time.Minute})
	sys := sim.url + "/redfish/v1/Systems/sys-0001"
	r := login(t, sim.url, "admin", "password")
	if r.status != 201 || r.header.Get("X-Auth-Token") == "" || r.header.Get("Location") == "" {
		t.Fatalf("login: %d %v", r.status, r.header)
	}
	token, loc := r.header.Get("X-Auth-Token"), r.header.Get("Location")
	if r := do(t, "GET", sim.url+loc, nil, map[string]string{"X-Auth-Token": token}); r.body["UserName"] != "admin" {
		t.Errorf("GET session: %d %v", r.status, r.body)
	}

	tests := []struct {
		name   string
		method string
		url    string
		hdr    map[string]string
		status int
	}{
		{"root needs nothing", "GET", sim.url + "/redfish/v1/", map[string]string{"Authorization": "-"}, 200},
		{"no credentials", "GET", sys, map[string]string{"Authorization": "-"}, 401},
		{"basic", "GET", sys, nil, 200},
		{"token", "GET", sys, map[string]string{"X-Auth-Token": token}, 200},
		{"bad token", "GET", sys, map[string]string{"X-Auth-Token": "nope"}, 401},
		{"systems collection without credentials", "GET", sim.url + "/redfish/v1/Systems", map[string]string{"Authorization": "-"}, 401},
	}
	for _, tt := range tests {
		if r := do(t, tt.method, tt.url, nil, tt.hdr); r.status != tt.status {
			t.Errorf("%s: %d, want %d", tt.name, r.status, tt.status)
		}
	}
	if r := login(t, sim.url, "admin", "wrong"); r.status != 401 {
		t.Errorf("login with a wrong password: %d", r.status)
	}
	if r := do(t, "DELETE", sim.url+loc, nil, map[string]string{"X-Auth-Token": token}); r.status != 204 {
		t.Errorf("logout: %d", r.status)
	}
	if r := do(t, "GET", sys, nil, map[string]string{"X-Auth-Token": token}); r.status != 401 {
		t.Errorf("after logout: %d", r.status)
	}

	token = login(t, sim.url, "admin", "password").header.Get("X-Auth-Token")
	sim.clock.Advance(59 * time.Second)
	if r := do(t, "GET", sys, nil, map[string]string{"X-Auth-Token": token}); r.status != 200 {
		t.Errorf("used within the timeout: %d", r.status)
	}
	sim.clock.Advance(61 * time.Second)
	if r := do(t, "GET", sys, nil, map[string]string{"X-Auth-Token": token}); r.status != 401 {
		t.Errorf("idle past the timeout: %d", r.status)
	}
}

func TestSessionLimit(t *testing.T) {
	sim := newTestSim(t, Config{Systems: Systems(2, SystemConfig{MaxSessions: 2})})
	h, err := sim.BMC("sys-0001")
	if err != nil {
		t.Fatal(err)
	}
	bmc := httptest.NewServer(h)
	defer bmc.Close()

	var locs []string
	for i, want := range []int{201, 201, 503} {
		r := login(t, bmc.URL, "admin", "password")
		if r.status != want {
			t.Fatalf("login %d: %d, want %d", i+1, r.status, want)
		}
		if want == 503 && errorID(r) != msgSessionLimit {
			t.Errorf("503 message %v", errorID(r))
		}
		locs = append(locs, r.header.Get("Location"))
	}
	if got := sim.Sessions("sys-0001"); got != 2 {
		t.Errorf("sessions on the BMC: %d", got)
	}
	// The shared listener and the other BMC have their own sessions.
	if r := login(t, sim.url, "admin", "password"); r.status != 201 {
		t.Errorf("shared listener login: %d", r.status)
	}
	if r := do(t, "DELETE", bmc.URL+locs[0], nil, nil); r.status != 204 {
		t.Fatalf("logout: %d", r.status)
	}
	if r := login(t, bmc.URL, "admin", "password"); r.status != 201 {
		t.Errorf("login after a logout: %d", r.status)
	}
	// The BMC view shows its own system only.
	r := do(t, "GET", bmc.URL+"/redfish/v1/Systems", nil, nil)
	if got := field(r.body, "Members@odata.count"); got != 1.0 {
		t.Errorf("BMC view lists %v systems", got)
	}
	if r := do(t, "GET", bmc.URL+"/redfish/v1/Systems/sys-0002", nil, nil); r.status != 404 {
		t.Errorf("other system through a BMC view: %d", r.status)
	}
}
