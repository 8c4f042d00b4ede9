package drivertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
)

func (s *suite) testPower(t *testing.T) {
	t.Run("read", func(t *testing.T) {
		b := s.bmc(t)
		got, err := b.PowerState(s.ctx(t))
		s.noSecret(t, "PowerState", err)
		if err != nil {
			t.Fatalf("PowerState: %v", err)
		}
		if got != drivers.PowerOn && got != drivers.PowerOff {
			t.Errorf("PowerState = %q, want %q or %q", got, drivers.PowerOn, drivers.PowerOff)
		}
	})

	// One session through a sequence of actions: each is read back, and
	// repeating an action that already holds must succeed (the executor
	// retries after timeouts).
	t.Run("sequence", func(t *testing.T) {
		b := s.bmc(t)
		steps := []drivers.PowerAction{
			drivers.ActionOn, drivers.ActionOn,
			drivers.ActionOff, drivers.ActionOff,
			drivers.ActionOn,
			drivers.ActionReboot,
			drivers.ActionGracefulOff,
			drivers.ActionOn,
			drivers.ActionGracefulReboot,
		}
		for i, a := range steps {
			if !t.Run(fmt.Sprintf("%d-%s", i, a), func(t *testing.T) { s.setPower(t, b, a) }) {
				break // later steps assume this one's end state
			}
		}
		// Leave the peer powered on whatever the graceful steps did.
		s.setPower(t, b, drivers.ActionOn)
	})

	t.Run("unknown-action", func(t *testing.T) {
		b := s.bmc(t)
		before, err := b.PowerState(s.ctx(t))
		if err != nil {
			t.Fatalf("PowerState: %v", err)
		}
		s.wantUnsupported(t, "SetPower explode", b.SetPower(s.ctx(t), "explode"))
		after, err := b.PowerState(s.ctx(t))
		if err != nil {
			t.Fatalf("PowerState: %v", err)
		}
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("an unknown action changed the power state (-before +after):\n%s", diff)
		}
	})
}

// call is one driver method bound to fixed arguments.
type call struct {
	name string
	fn   func(ctx context.Context) error
}

// calls lists every method b implements, with harmless arguments.
func (s *suite) calls(b drivers.BMC) []call {
	cs := []call{
		{"PowerState", func(ctx context.Context) error { _, err := b.PowerState(ctx); return err }},
		{"SetPower", func(ctx context.Context) error { return b.SetPower(ctx, drivers.ActionOn) }},
	}
	if x, ok := b.(drivers.BootSetter); ok {
		cs = append(cs, call{"SetBoot", func(ctx context.Context) error {
			return x.SetBoot(ctx, drivers.BootOptions{Device: drivers.BootDisk})
		}})
	}
	if x, ok := b.(drivers.MediaManager); ok {
		url := s.opts.MediaURL
		if url == "" {
			url = "http://127.0.0.1:9/never.iso"
		}
		cs = append(cs,
			call{"InsertMedia", func(ctx context.Context) error { return x.InsertMedia(ctx, drivers.MediaCD, url) }},
			call{"EjectMedia", func(ctx context.Context) error { return x.EjectMedia(ctx, drivers.MediaCD) }},
			call{"MediaStatus", func(ctx context.Context) error { _, err := x.MediaStatus(ctx, drivers.MediaCD); return err }},
		)
	}
	if x, ok := b.(drivers.InventoryReader); ok {
		cs = append(cs, call{"Inventory", func(ctx context.Context) error { _, err := x.Inventory(ctx); return err }})
	}
	if x, ok := b.(drivers.BIOSManager); ok {
		cs = append(cs,
			call{"BIOSAttributes", func(ctx context.Context) error { _, err := x.BIOSAttributes(ctx); return err }},
			call{"ApplyBIOS", func(ctx context.Context) error { return x.ApplyBIOS(ctx, map[string]any{"MetalsyncProbe": 1}) }},
		)
	}
	if x, ok := b.(drivers.RAIDManager); ok {
		cs = append(cs,
			call{"Volumes", func(ctx context.Context) error { _, err := x.Volumes(ctx); return err }},
			call{"CreateVolume", func(ctx context.Context) error {
				_, err := x.CreateVolume(ctx, drivers.VolumeSpec{Name: "metalsync-probe", RAIDLevel: "RAID1"})
				return err
			}},
			call{"DeleteVolume", func(ctx context.Context) error { return x.DeleteVolume(ctx, "metalsync-probe") }},
		)
	}
	if x, ok := b.(drivers.FirmwareUpdater); ok {
		cs = append(cs, call{"UpdateFirmware", func(ctx context.Context) error {
			return x.UpdateFirmware(ctx, "http://127.0.0.1:9/never.bin", nil)
		}})
	}
	return cs
}

// testContext calls every method with a cancelled and with an expired
// context: each must return ctx's error, promptly, and do nothing.
func (s *suite) testContext(t *testing.T) {
	b := s.bmc(t)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()
	ctxs := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"cancelled", cancelled, context.Canceled},
		{"expired", expired, context.DeadlineExceeded},
	}
	for _, c := range s.calls(b) {
		for _, x := range ctxs {
			t.Run(c.name+"/"+x.name, func(t *testing.T) {
				done := make(chan error, 1)
				go func() { done <- c.fn(x.ctx) }()
				select {
				case err := <-done:
					s.noSecret(t, c.name, err)
					if !errors.Is(err, x.want) {
						t.Errorf("%s with a %s context: %v, want an error matching %v", c.name, x.name, err, x.want)
					}
				case <-time.After(hangLimit):
					t.Fatalf("%s with a %s context did not return within %v", c.name, x.name, hangLimit)
				}
			})
		}
	}
}

// testConcurrent reads power from several goroutines on one BMC: drivers
// whose client is not safe for concurrent use must serialise (run with
// -race).
func (s *suite) testConcurrent(t *testing.T) {
	b := s.bmc(t)
	want, err := b.PowerState(s.ctx(t))
	if err != nil {
		t.Fatalf("PowerState: %v", err)
	}
	const workers, reads = 4, 3
	got := make([][]drivers.PowerState, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range reads {
				st, err := b.PowerState(s.ctx(t))
				if err != nil {
					errs[w] = err
					return
				}
				got[w] = append(got[w], st)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent PowerState: %v", err)
	}
	for w := range workers {
		if diff := cmp.Diff(slices.Repeat([]drivers.PowerState{want}, reads), got[w]); diff != "" {
			t.Errorf("worker %d (-want +got):\n%s", w, diff)
		}
	}
}
