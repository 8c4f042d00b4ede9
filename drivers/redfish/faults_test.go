package redfish_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/redfish"
	"metalsync.dev/metalsync/sim/redfishsim"
)

// simBMC starts a simulator whose one system is its own BMC on a loopback
// listener, and returns the driver config for it (address without a
// system path, as for a single-system BMC).
func simBMC(t *testing.T, sc redfishsim.SystemConfig) (*redfishsim.Server, string, drivers.Config) {
	t.Helper()
	sim, err := redfishsim.New(redfishsim.Config{Systems: redfishsim.Systems(1, sc), Username: simUser, Password: simPass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	ls, err := sim.StartBMCs(redfishsim.BMCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	id := sim.IDs()[0]
	u, err := url.Parse(ls.Listener(id).URL)
	if err != nil {
		t.Fatal(err)
	}
	return sim, id, drivers.Config{Endpoint: u, Username: simUser, Password: simPass, CallTimeout: 2 * time.Second}
}

// TestSimulatorFaults injects each fault after a successful open and checks
// how the driver reports it, and that it sends no more than it should.
func TestSimulatorFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults redfishsim.Faults
		call   func(ctx context.Context, b *redfish.BMC) error
		check  func(t *testing.T, err error)
		// maxRequests bounds what the call may send (0: not checked).
		maxRequests int64
	}{
		{
			name:   "5xx",
			faults: redfishsim.Faults{ErrorRate: 1},
			call:   func(ctx context.Context, b *redfish.BMC) error { _, err := b.PowerState(ctx); return err },
			check: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "500 internal server error") || errors.Is(err, drivers.ErrUnreachable) || !errors.Is(err, drivers.ErrBMCFailing) {
					t.Errorf("got %v, want a 500 error that is drivers.ErrBMCFailing", err)
				}
			},
			maxRequests: 1, // no hidden retries: the executor decides
		},
		{
			name:   "hang",
			faults: redfishsim.Faults{HangRate: 1},
			call:   func(ctx context.Context, b *redfish.BMC) error { _, err := b.PowerState(ctx); return err },
			check: func(t *testing.T, err error) {
				if !errors.Is(err, drivers.ErrUnreachable) || !strings.Contains(err.Error(), "no answer within") {
					t.Errorf("got %v, want ErrUnreachable after the call timeout", err)
				}
			},
			maxRequests: 1,
		},
		{
			name:   "connection-reset",
			faults: redfishsim.Faults{ResetRate: 1},
			call:   func(ctx context.Context, b *redfish.BMC) error { _, err := b.Inventory(ctx); return err },
			check: func(t *testing.T, err error) {
				if !errors.Is(err, drivers.ErrUnreachable) {
					t.Errorf("got %v, want ErrUnreachable", err)
				}
			},
		},
		{
			name:   "bad-credentials",
			faults: redfishsim.Faults{BadCredentials: true},
			call:   func(ctx context.Context, b *redfish.BMC) error { _, err := b.PowerState(ctx); return err },
			check: func(t *testing.T, err error) {
				if !errors.Is(err, drivers.ErrAuth) {
					t.Errorf("got %v, want ErrAuth", err)
				}
			},
			maxRequests: 3, // the 401, one new login, nothing more
		},
		{
			name:   "power-stuck",
			faults: redfishsim.Faults{PowerStuck: true},
			call: func(ctx context.Context, b *redfish.BMC) error {
				ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				return b.SetPower(ctx, drivers.ActionOff)
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "power still on, want off") {
					t.Errorf("got %v, want a deadline error saying the power did not change", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, id, cfg := simBMC(t, redfishsim.SystemConfig{PoweredOn: true})
			cfg.CallTimeout = 200 * time.Millisecond
			b := openSim(t, cfg)
			if err := sim.SetFaults(id, tc.faults); err != nil {
				t.Fatal(err)
			}
			before := sim.TotalCounts().Requests
			err := tc.call(t.Context(), b)
			tc.check(t, err)
			if err != nil && strings.Contains(err.Error(), simPass) {
				t.Errorf("error reveals the password: %v", err)
			}
			if n := sim.TotalCounts().Requests - before; tc.maxRequests > 0 && n > tc.maxRequests {
				t.Errorf("sent %d requests, want at most %d", n, tc.maxRequests)
			}
			// Healthy again: the same BMC value works without reopening.
			if err := sim.SetFaults(id, redfishsim.Faults{}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.PowerState(t.Context()); err != nil && !errors.Is(err, drivers.ErrAuth) {
				t.Errorf("PowerState after the fault cleared: %v", err)
			}
		})
	}
}

// TestSessionLimit: a BMC with room for one session refuses a second login
// with 503; Close frees the session for the next client.
func TestSessionLimit(t *testing.T) {
	_, _, cfg := simBMC(t, redfishsim.SystemConfig{PoweredOn: true, MaxSessions: 1})
	first, err := redfish.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = redfish.Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("second Open: %v, want 503 (session limit)", err)
	}
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	again, err := redfish.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open after Close: %v (Close did not delete the session)", err)
	}
	again.Close(t.Context())
}

// TestSimulatorTransitional: a BMC that reports PoweringOff for a while
// (and takes real time) is polled until it reports Off.
func TestSimulatorTransitional(t *testing.T) {
	sim, id, cfg := simBMC(t, redfishsim.SystemConfig{PoweredOn: true, PowerOffDelay: 300 * time.Millisecond, ReportTransitional: true})
	b := openSim(t, cfg)
	if err := b.SetPower(t.Context(), drivers.ActionGracefulOff); err != nil {
		t.Fatal(err)
	}
	st, err := sim.System(id)
	if err != nil {
		t.Fatal(err)
	}
	if st.PowerState != "Off" {
		t.Errorf("simulator power = %s after SetPower returned, want Off", st.PowerState)
	}
	if got, err := b.PowerState(t.Context()); err != nil || got != drivers.PowerOff {
		t.Errorf("PowerState = %q, %v", got, err)
	}
}
