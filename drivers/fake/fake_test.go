package fake_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/drivertest"
	"metalsync.dev/metalsync/drivers/fake"
)

func open(t *testing.T, f *fake.Fleet, endpoint string, user string, pass secret.Value) (drivers.BMC, error) {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return f.Open(t.Context(), drivers.Config{Endpoint: u, Username: user, Password: pass})
}

func TestConformance(t *testing.T) {
	f := fake.NewFleet()
	f.Add("conf").SetLatency(time.Millisecond, 2*time.Millisecond)
	drivertest.Run(t, func(t *testing.T) drivers.BMC {
		b, err := open(t, f, "fake://conf", "", "")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, drivertest.Options{
		MediaURL:    "http://127.0.0.1:9/agent.iso",
		BIOSChange:  map[string]any{"SriovEnable": "Enabled"},
		RAIDVolume:  &drivers.VolumeSpec{Name: "os", RAIDLevel: "RAID1"},
		FirmwareURL: "http://127.0.0.1:9/bios-1.1.bin",
	})
}

func TestOpen(t *testing.T) {
	f := fake.NewFleet()
	f.Add("locked").SetCredentials("admin", "s3cret-pass")
	tests := []struct {
		name     string
		auto     bool
		endpoint string
		user     string
		pass     secret.Value
		wantErr  error
	}{
		{"good credentials", false, "fake://locked", "admin", "s3cret-pass", nil},
		{"bad password", false, "fake://locked", "admin", "wrong", drivers.ErrAuth},
		{"unknown system", false, "fake://nobody", "", "", drivers.ErrUnreachable},
		{"auto create", true, "fake://nobody", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.AutoCreate = tt.auto
			_, err := open(t, f, tt.endpoint, tt.user, tt.pass)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Open = %v, want %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret-pass") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	f := fake.NewFleet()
	sys := f.Add("n1")
	b, err := open(t, f, "fake://n1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	sys.SetFaults(fake.Faults{FailCalls: 2})
	for i := range 2 {
		if _, err := b.PowerState(ctx); !errors.Is(err, fake.ErrServiceUnavailable) {
			t.Fatalf("call %d: %v, want 503", i, err)
		}
	}
	if _, err := b.PowerState(ctx); err != nil {
		t.Fatalf("third call: %v", err)
	}

	sys.SetFaults(fake.Faults{Unreachable: true})
	if err := b.SetPower(ctx, drivers.ActionOn); !errors.Is(err, drivers.ErrUnreachable) {
		t.Fatalf("SetPower while unreachable: %v", err)
	}
	if got := sys.PowerState(); got != drivers.PowerOff {
		t.Errorf("power changed while unreachable: %s", got)
	}

	sys.SetFaults(fake.Faults{IgnorePower: true})
	if err := b.SetPower(ctx, drivers.ActionOn); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.PowerState(ctx); got != drivers.PowerOff {
		t.Errorf("IgnorePower: power is %s, want off", got)
	}

	sys.SetFaults(fake.Faults{})
	if err := b.SetPower(ctx, drivers.ActionOn); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"power on": 1}
	if diff := cmp.Diff(want, sys.Counts().Ops); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
}

func TestBootOnceAndPendingBIOS(t *testing.T) {
	f := fake.NewFleet()
	sys := f.Add("n1")
	b, _ := open(t, f, "fake://n1", "", "")
	ctx := t.Context()
	bs := b.(drivers.BootSetter)
	bm := b.(drivers.BIOSManager)
	if err := bs.SetBoot(ctx, drivers.BootOptions{Device: drivers.BootCD}); err != nil {
		t.Fatal(err)
	}
	if err := bm.ApplyBIOS(ctx, map[string]any{"SriovEnable": "Enabled"}); err != nil {
		t.Fatal(err)
	}
	if attrs, _ := bm.BIOSAttributes(ctx); attrs["SriovEnable"] != "Disabled" {
		t.Errorf("BIOS applied before boot: %v", attrs["SriovEnable"])
	}
	if err := b.SetPower(ctx, drivers.ActionOn); err != nil {
		t.Fatal(err)
	}
	override, from := sys.Boot()
	if from != drivers.BootCD || override.Device != "" {
		t.Errorf("after boot: override %+v, booted from %s; want override consumed, booted from cd", override, from)
	}
	if attrs, _ := bm.BIOSAttributes(ctx); attrs["SriovEnable"] != "Enabled" {
		t.Errorf("BIOS not applied at boot: %v", attrs["SriovEnable"])
	}
}

func TestSharedHostPeak(t *testing.T) {
	f := fake.NewFleet()
	for _, n := range []string{"chassis1/a", "chassis1/b", "chassis2/a"} {
		f.Add(n).SetLatency(20*time.Millisecond, 0)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 3)
	for _, n := range []string{"chassis1/a", "chassis1/b", "chassis2/a"} {
		b, err := open(t, f, "fake://"+n, "", "")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, err := b.PowerState(ctx); done <- err }()
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	peaks := f.PeakPerHost()
	if peaks["chassis2"] != 1 || peaks["chassis1"] < 1 || peaks["chassis1"] > 2 {
		t.Errorf("peaks = %v", peaks)
	}
}
