package redfishsim

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		status int  // answer to a GET of the system
		fails  bool // the client sees a transport error instead
	}{
		{"errors", Faults{ErrorRate: 1}, 500, false},
		{"bad credentials", Faults{BadCredentials: true}, 401, false},
		{"reset", Faults{ResetRate: 1}, 0, true},
		{"hang", Faults{HangRate: 1}, 0, true},
		{"none", Faults{}, 200, false},
	}
	sim := newTestSim(t, Config{})
	u := sim.url + "/redfish/v1/Systems/sys-0001"
	get := func(url string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.SetBasicAuth("admin", "password")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		r.Body.Close()
		return r.StatusCode, nil
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := sim.SetFaults("sys-0001", tt.faults); err != nil {
				t.Fatal(err)
			}
			status, err := get(u)
			if (err != nil) != tt.fails || status != tt.status {
				t.Errorf("got %d, %v; want %d, failure %v", status, err, tt.status, tt.fails)
			}
			if tt.name == "hang" && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("hang: %v, want the client's deadline", err)
			}
			// Other systems are unaffected.
			if status, err := get(sim.url + "/redfish/v1/Systems/sys-0002"); status != 200 {
				t.Errorf("other system: %d %v", status, err)
			}
		})
	}
	if err := sim.SetFaults("nope", Faults{}); err == nil {
		t.Error("SetFaults of an unknown system: no error")
	}
}

func TestBadCredentialsOnOwnBMC(t *testing.T) {
	sim := newTestSim(t, Config{Systems: Systems(1, SystemConfig{})})
	h, _ := sim.BMC("sys-0001")
	bmc := httptest.NewServer(h)
	defer bmc.Close()
	tests := []struct {
		name   string
		faults Faults
		want   int
	}{
		{"rejected", Faults{BadCredentials: true}, 401},
		{"cleared", Faults{}, 201},
	}
	for _, tt := range tests {
		sim.SetFaults("sys-0001", tt.faults)
		if r := login(t, bmc.URL, "admin", "password"); r.status != tt.want {
			t.Errorf("%s: login %d, want %d", tt.name, r.status, tt.want)
		}
	}
	// The service root stays readable, as on a real BMC.
	sim.SetFaults("sys-0001", Faults{BadCredentials: true})
	if r := do(t, "GET", bmc.URL+"/redfish/v1/", nil, nil); r.status != 200 {
		t.Errorf("service root: %d", r.status)
	}
}

func TestPowerStuck(t *testing.T) {
	sim := newTestSim(t, Config{Systems: Systems(1, SystemConfig{Faults: Faults{PowerStuck: true}})})
	u := sim.url + "/redfish/v1/Systems/sys-0001"
	if r := do(t, "POST", u+"/Actions/ComputerSystem.Reset", map[string]string{"ResetType": "On"}, nil); r.status != 204 {
		t.Fatalf("reset: %d", r.status)
	}
	sim.clock.Advance(time.Hour)
	if got := field(do(t, "GET", u, nil, nil).body, "PowerState"); got != "Off" {
		t.Errorf("stuck system: PowerState %v", got)
	}
	sim.SetFaults("sys-0001", Faults{})
	do(t, "POST", u+"/Actions/ComputerSystem.Reset", map[string]string{"ResetType": "On"}, nil)
	if got := field(do(t, "GET", u, nil, nil).body, "PowerState"); got != "On" {
		t.Errorf("after clearing the fault: PowerState %v", got)
	}
}

func TestHungRequestReleasedByClose(t *testing.T) {
	sim := newTestSim(t, Config{Systems: Systems(1, SystemConfig{Faults: Faults{HangRate: 1}})})
	done := make(chan int)
	go func() {
		req, _ := http.NewRequest("GET", sim.url+"/redfish/v1/Systems/sys-0001", nil)
		req.SetBasicAuth("admin", "password")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- -1
			return
		}
		r.Body.Close()
		done <- r.StatusCode
	}()
	for sim.hung.Load() == 0 { // requests are recorded when they end
		time.Sleep(time.Millisecond)
	}
	sim.Close()
	if got := <-done; got != 503 {
		t.Errorf("hung request after Close: %d, want 503", got)
	}
}

func TestLatencyProfiles(t *testing.T) {
	// The draws, not the clock: no timing in this test.
	tests := []struct {
		p        Profile
		min, max time.Duration // bounds on the median of many draws
	}{
		{ProfileZero, 0, 0},
		{ProfileIDRAC9, 130 * time.Millisecond, 170 * time.Millisecond},
		{ProfileSlow, 540 * time.Millisecond, 660 * time.Millisecond},
	}
	for _, tt := range tests {
		var d []time.Duration
		for range 4001 {
			d = append(d, tt.p.latency())
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		if med := d[len(d)/2]; med < tt.min || med > tt.max {
			t.Errorf("%s: median %v, want %v..%v", tt.p, med, tt.min, tt.max)
		}
		if p99 := d[len(d)*99/100]; tt.p != ProfileZero && p99 < 2*tt.min {
			t.Errorf("%s: p99 %v has no tail", tt.p, p99)
		}
	}
	for _, s := range []string{"", "zero", "idrac9", "slow"} {
		if _, err := ParseProfile(s); err != nil {
			t.Errorf("ParseProfile(%q): %v", s, err)
		}
	}
	if _, err := ParseProfile("fast"); err == nil {
		t.Error("ParseProfile(fast): no error")
	}
}
