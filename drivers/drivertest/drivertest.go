// Package drivertest is the conformance suite every BMC driver must pass:
// the Redfish and IPMI drivers against their real peers, the simulator and
// the fake driver in memory.
//
// Run exercises each capability the BMC implements (found by type assertion,
// as the planner finds it) and checks the contract of package drivers:
//
//   - a state change is read back (power, and boot, BIOS and media where the
//     driver or the caller can read them back), so a fake success fails;
//   - an operation the BMC lacks, and an unknown action, boot device, boot
//     mode or media kind, returns an error matching drivers.ErrUnsupported;
//   - a capability the driver implements (declares) works on the peer: an
//     ErrUnsupported from it fails the suite, except for what the contract
//     makes optional (floppy and USB slots) and the boot requests
//     Options.BootLacks names; a capability the driver does not implement
//     is skipped;
//   - repeating a power action, or ejecting an empty media slot, succeeds;
//   - a cancelled or expired ctx makes every method return ctx's error
//     without acting;
//   - concurrent calls on one BMC are safe;
//   - no error carries Options.Password.
//
// The subtests run one after another against the same peer and leave it
// powered on.
package drivertest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/drivers"
)

// Options tunes Run to the peer under test. Zero values skip the tests that
// need them.
type Options struct {
	// MediaURL is an image URL the BMC can fetch; "" skips insert tests.
	MediaURL string
	// PowerTimeout bounds one power change including its read-back;
	// 0 means one minute.
	PowerTimeout time.Duration

	// BootLacks, when set, tells the boot requests the peer under test
	// cannot honour (a UEFI-only BMC and legacy mode; ipmi_sim, which drops
	// the persistent and EFI flags). SetBoot must return ErrUnsupported for
	// exactly those: boot is a declared capability, so an ErrUnsupported
	// anywhere else fails the suite, and so does a success here.
	BootLacks func(drivers.BootOptions) bool
	// CheckBoot, when set, is called after each successful SetBoot to check
	// that the peer really holds want (a simulator's state, ipmitool). It
	// reports mismatches with t.Errorf.
	CheckBoot func(t *testing.T, b drivers.BMC, want drivers.BootOptions)
	// BIOSChange are attributes to apply in the BIOS test, with values that
	// differ from the current ones; nil skips apply.
	BIOSChange map[string]any
	// RAIDVolume is a volume to create and delete; nil skips create.
	RAIDVolume *drivers.VolumeSpec
	// FirmwareURL is an update image the BMC accepts; "" skips update.
	FirmwareURL string
	// FirmwareTargets are passed with FirmwareURL.
	FirmwareTargets []string
	// Password, when set, must not appear in any error text.
	Password string
}

// hangLimit is how long a call with an already cancelled ctx may take before
// the suite calls it a hang. It is generous on purpose: it detects ignored
// contexts, it does not measure speed.
const hangLimit = 15 * time.Second

// Run runs the conformance suite. open is called once per subtest and must
// return a ready BMC; Run closes it (and checks Close) when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) drivers.BMC, opts Options) {
	if opts.PowerTimeout <= 0 {
		opts.PowerTimeout = time.Minute
	}
	s := &suite{open: open, opts: opts}
	t.Run("power", s.testPower)
	t.Run("context", s.testContext)
	t.Run("concurrent", s.testConcurrent)
	t.Run("boot", s.testBoot)
	t.Run("media", s.testMedia)
	t.Run("inventory", s.testInventory)
	t.Run("bios", s.testBIOS)
	t.Run("raid", s.testRAID)
	t.Run("firmware", s.testFirmware)
}

type suite struct {
	open func(t *testing.T) drivers.BMC
	opts Options
}

// bmc opens a BMC for the running subtest and closes it when it ends.
func (s *suite) bmc(t *testing.T) drivers.BMC {
	t.Helper()
	b := s.open(t)
	if b == nil {
		t.Fatal("open returned a nil BMC")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.PowerTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// ctx returns a context for one call, bounded by the power timeout.
func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), s.opts.PowerTimeout)
	t.Cleanup(cancel)
	return ctx
}

// noSecret fails the test if err reveals the password.
func (s *suite) noSecret(t *testing.T, op string, err error) {
	t.Helper()
	if err != nil && s.opts.Password != "" && strings.Contains(err.Error(), s.opts.Password) {
		t.Errorf("%s: error reveals the password: %q", op, err)
	}
}

// must fails the test on any error. ErrUnsupported fails it too: must is
// only called for a capability the driver declares (implements), and a
// declared capability that the peer under test cannot serve is a driver bug
// or a wrong declaration, not something to skip.
func (s *suite) must(t *testing.T, op string, err error) {
	t.Helper()
	s.noSecret(t, op, err)
	if err == nil {
		return
	}
	if errors.Is(err, drivers.ErrUnsupported) {
		t.Fatalf("%s: %v (the driver declares this capability: it must not be unsupported)", op, err)
	}
	t.Fatalf("%s: %v", op, err)
}

// optional is must for what the contract lets a BMC lack inside a
// capability it has (a floppy or USB slot): ErrUnsupported skips the test.
func (s *suite) optional(t *testing.T, op string, err error) {
	t.Helper()
	if errors.Is(err, drivers.ErrUnsupported) {
		s.noSecret(t, op, err)
		t.Skipf("%s: %v", op, err)
	}
	s.must(t, op, err)
}

// wantUnsupported fails the test unless err matches ErrUnsupported.
func (s *suite) wantUnsupported(t *testing.T, op string, err error) {
	t.Helper()
	s.noSecret(t, op, err)
	switch {
	case err == nil:
		t.Errorf("%s: succeeded, want an error matching drivers.ErrUnsupported", op)
	case !errors.Is(err, drivers.ErrUnsupported):
		t.Errorf("%s: %v, want an error matching drivers.ErrUnsupported", op, err)
	}
}

// wantError fails the test unless err is non-nil (bad input must not be
// accepted silently).
func (s *suite) wantError(t *testing.T, op string, err error) {
	t.Helper()
	s.noSecret(t, op, err)
	if err == nil {
		t.Errorf("%s: succeeded, want an error", op)
	}
}

// setPower applies action and checks the read-back state.
func (s *suite) setPower(t *testing.T, b drivers.BMC, action drivers.PowerAction) {
	t.Helper()
	s.must(t, "SetPower "+string(action), b.SetPower(s.ctx(t), action))
	got, err := b.PowerState(s.ctx(t))
	s.noSecret(t, "PowerState", err)
	if err != nil {
		t.Fatalf("PowerState after %s: %v", action, err)
	}
	if want := action.Target(); got != want {
		t.Fatalf("PowerState after %s = %q, want %q", action, got, want)
	}
}
