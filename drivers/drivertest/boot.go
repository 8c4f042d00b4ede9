package drivertest

import (
	"fmt"
	"testing"

	"metalsync.dev/metalsync/drivers"
)

func (s *suite) testBoot(t *testing.T) {
	b := s.bmc(t)
	bs, ok := b.(drivers.BootSetter)
	if !ok {
		t.Skip("driver has no BootSetter")
	}
	devices := []drivers.BootDevice{drivers.BootPXE, drivers.BootCD, drivers.BootDisk, drivers.BootBIOS}
	modes := []drivers.BootMode{drivers.BootModeUnset, drivers.BootModeUEFI, drivers.BootModeLegacy}
	for _, persistent := range []bool{false, true} {
		for _, mode := range modes {
			for _, dev := range devices {
				o := drivers.BootOptions{Device: dev, Mode: mode, Persistent: persistent}
				t.Run(bootName(o), func(t *testing.T) {
					if s.opts.BootLacks != nil && s.opts.BootLacks(o) {
						s.wantUnsupported(t, "SetBoot "+bootName(o)+" (Options.BootLacks)", bs.SetBoot(s.ctx(t), o))
						return
					}
					s.must(t, "SetBoot "+bootName(o), bs.SetBoot(s.ctx(t), o))
					if s.opts.CheckBoot != nil {
						s.opts.CheckBoot(t, b, o)
					}
				})
			}
		}
	}
	t.Run("unknown-device", func(t *testing.T) {
		s.wantUnsupported(t, "SetBoot tape", bs.SetBoot(s.ctx(t), drivers.BootOptions{Device: "tape"}))
	})
	t.Run("unknown-mode", func(t *testing.T) {
		s.wantUnsupported(t, "SetBoot mode hybrid",
			bs.SetBoot(s.ctx(t), drivers.BootOptions{Device: drivers.BootDisk, Mode: "hybrid"}))
	})
	// Leave the peer booting from disk, as a deployed machine would:
	// persistently where it can.
	t.Run("restore", func(t *testing.T) {
		o := drivers.BootOptions{Device: drivers.BootDisk, Persistent: true}
		if s.opts.BootLacks != nil && s.opts.BootLacks(o) {
			o.Persistent = false
		}
		s.must(t, "SetBoot "+bootName(o), bs.SetBoot(s.ctx(t), o))
	})
}

func bootName(o drivers.BootOptions) string {
	mode := string(o.Mode)
	if mode == "" {
		mode = "unset"
	}
	once := "once"
	if o.Persistent {
		once = "persistent"
	}
	return fmt.Sprintf("%s-%s-%s", o.Device, mode, once)
}
