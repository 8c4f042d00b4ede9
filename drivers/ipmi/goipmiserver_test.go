package ipmi

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/hal/mock"
	"github.com/bougou/go-ipmi/pkg/types"
	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/drivertest"
	"metalsync.dev/metalsync/sim/ipmisim"
)

// startGoIPMIServer runs go-ipmi's reference BMC in process on loopback. It
// is the second peer: unlike ipmi_sim it keeps the persistent and EFI boot
// flags and speaks cipher suite 17.
// With hungOS the simulated OS ignores soft shutdowns.
func startGoIPMIServer(t *testing.T, hungOS bool) (drivers.Config, *mock.Chassis) {
	t.Helper()
	sim, err := ipmisim.Start(ipmisim.Config{Username: simUser, Password: simPassword, IgnoreSoftOff: hungOS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return drivers.Config{
		Endpoint:    &url.URL{Scheme: "ipmi", Host: sim.Addr().String()},
		Username:    simUser,
		Password:    simPassword,
		CallTimeout: 5 * time.Second,
	}, sim.Chassis
}

// TestConformanceGoIPMIServer runs the suite against go-ipmi's reference
// BMC with both cipher suites; here every boot combination must pass, and
// the flags are checked on the BMC's side.
func TestConformanceGoIPMIServer(t *testing.T) {
	for _, suite := range []int{3, 17} {
		t.Run("suite"+map[int]string{3: "3", 17: "17"}[suite], func(t *testing.T) {
			cfg, ch := startGoIPMIServer(t, false)
			cfg.CipherSuite = suite
			open := func(t *testing.T) drivers.BMC {
				b, err := Open(t.Context(), cfg)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return b
			}
			drivertest.Run(t, open, drivertest.Options{
				PowerTimeout: 20 * time.Second,
				Password:     simPassword,
				CheckBoot: func(t *testing.T, _ drivers.BMC, want drivers.BootOptions) {
					f, err := ch.GetBootFlags(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					got := drivers.BootOptions{Persistent: f.Persist, Mode: drivers.BootModeLegacy}
					if f.BIOSBootType == types.BIOSBootTypeEFI {
						got.Mode = drivers.BootModeUEFI
					}
					for d, s := range bootDevices {
						if s == f.BootDeviceSelector {
							got.Device = d
						}
					}
					if want.Mode == drivers.BootModeUnset {
						want.Mode = drivers.BootModeLegacy // IPMI has no "unset"
					}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("BMC boot flags (-want +got):\n%s", diff)
					}
				},
			})
		})
	}
}

// TestGracefulOffHonoursDeadline: when the OS ignores the ACPI request,
// SetPower waits until ctx ends, then says so with ctx's error.
func TestGracefulOffHonoursDeadline(t *testing.T) {
	cfg, ch := startGoIPMIServer(t, true)
	_ = ch.SetPower(t.Context(), true)
	b, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	err = b.SetPower(ctx, drivers.ActionGracefulOff)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SetPower graceful-off with a hung OS: %v, want DeadlineExceeded", err)
	}
	want := "ipmi " + cfg.Endpoint.Host + ": power graceful-off: power still on: context deadline exceeded"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if on, _ := ch.PowerState(t.Context()); !on {
		t.Error("the machine powered off although its OS ignored the request")
	}
}

// TestCapabilities: what the registry declares is what the type asserts.
func TestCapabilities(t *testing.T) {
	cfg, _ := startGoIPMIServer(t, false)
	b, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if diff := cmp.Diff(Capabilities(), drivers.Capabilities(b)); diff != "" {
		t.Errorf("Capabilities (-declared +implemented):\n%s", diff)
	}
}
