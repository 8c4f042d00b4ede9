package drivertest

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
)

// pick returns attrs' values for keys, printed, so that 4 and 4.0 (a JSON
// round trip) compare equal.
func pick(attrs map[string]any, keys []string) map[string]string {
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		if v, ok := attrs[k]; ok {
			m[k] = fmt.Sprint(v)
		}
	}
	return m
}

func (s *suite) testBIOS(t *testing.T) {
	b := s.bmc(t)
	bm, ok := b.(drivers.BIOSManager)
	if !ok {
		t.Skip("driver has no BIOSManager")
	}
	read := func(t *testing.T) map[string]any {
		t.Helper()
		attrs, err := bm.BIOSAttributes(s.ctx(t))
		s.must(t, "BIOSAttributes", err)
		return attrs
	}
	orig := read(t)
	if len(orig) == 0 {
		t.Fatal("BIOSAttributes returned no attributes")
	}

	t.Run("unknown-attribute", func(t *testing.T) {
		err := bm.ApplyBIOS(s.ctx(t), map[string]any{"MetalsyncNoSuchAttribute": true})
		s.wantError(t, "ApplyBIOS MetalsyncNoSuchAttribute", err)
		if _, ok := read(t)["MetalsyncNoSuchAttribute"]; ok {
			t.Error("an unknown attribute appeared after a refused apply")
		}
	})

	t.Run("apply-reboot", func(t *testing.T) {
		if len(s.opts.BIOSChange) == 0 {
			t.Skip("no Options.BIOSChange")
		}
		keys := slices.Sorted(maps.Keys(s.opts.BIOSChange))
		for _, k := range keys {
			if _, ok := orig[k]; !ok {
				t.Fatalf("Options.BIOSChange: attribute %q is not among the BMC's attributes", k)
			}
		}
		want := pick(s.opts.BIOSChange, keys)
		old := pick(orig, keys)
		if diff := cmp.Diff(old, want); diff == "" {
			t.Fatal("Options.BIOSChange equals the current values: nothing would change")
		}
		restore := make(map[string]any, len(keys))
		for _, k := range keys {
			restore[k] = orig[k]
		}

		s.setPower(t, b, drivers.ActionOn)
		s.must(t, "ApplyBIOS", bm.ApplyBIOS(s.ctx(t), s.opts.BIOSChange))
		// Before the reboot the settings are pending on most BMCs; either
		// all old or all new values are acceptable, a mix is not.
		if got := pick(read(t), keys); cmp.Diff(old, got) != "" && cmp.Diff(want, got) != "" {
			t.Errorf("attributes before reboot are neither the old %v nor the new %v: %v", old, want, got)
		}
		s.setPower(t, b, drivers.ActionReboot)
		if diff := cmp.Diff(want, pick(read(t), keys)); diff != "" {
			t.Errorf("attributes after reboot (-want +got):\n%s", diff)
		}

		// Put the peer back as it was.
		s.must(t, "ApplyBIOS restore", bm.ApplyBIOS(s.ctx(t), restore))
		s.setPower(t, b, drivers.ActionReboot)
		if diff := cmp.Diff(old, pick(read(t), keys)); diff != "" {
			t.Errorf("attributes after restore and reboot (-want +got):\n%s", diff)
		}
	})
}

func (s *suite) testRAID(t *testing.T) {
	b := s.bmc(t)
	rm, ok := b.(drivers.RAIDManager)
	if !ok {
		t.Skip("driver has no RAIDManager")
	}
	list := func(t *testing.T) []drivers.Volume {
		t.Helper()
		vs, err := rm.Volumes(s.ctx(t))
		s.must(t, "Volumes", err)
		seen := map[string]bool{}
		for _, v := range vs {
			if v.ID == "" || seen[v.ID] {
				t.Errorf("volume ID %q is empty or repeated", v.ID)
			}
			seen[v.ID] = true
		}
		return vs
	}
	before := list(t)

	t.Run("bad-level", func(t *testing.T) {
		_, err := rm.CreateVolume(s.ctx(t), drivers.VolumeSpec{Name: "metalsync-bad", RAIDLevel: "RAID42"})
		s.wantError(t, "CreateVolume RAID42", err)
		if diff := cmp.Diff(before, list(t)); diff != "" {
			t.Errorf("volumes changed after a refused create (-before +after):\n%s", diff)
		}
	})
	t.Run("delete-unknown", func(t *testing.T) {
		s.wantError(t, "DeleteVolume of an unknown ID", rm.DeleteVolume(s.ctx(t), "metalsync-no-such-volume"))
	})
	t.Run("create-delete", func(t *testing.T) {
		if s.opts.RAIDVolume == nil {
			t.Skip("no Options.RAIDVolume")
		}
		spec := *s.opts.RAIDVolume
		v, err := rm.CreateVolume(s.ctx(t), spec)
		s.must(t, "CreateVolume", err)
		if v.ID == "" || v.RAIDLevel != spec.RAIDLevel {
			t.Errorf("CreateVolume = %+v, want an ID and RAID level %q", v, spec.RAIDLevel)
		}
		if !slices.ContainsFunc(list(t), func(x drivers.Volume) bool { return x.ID == v.ID }) {
			t.Errorf("volume %q missing from Volumes after create", v.ID)
		}
		s.must(t, "DeleteVolume", rm.DeleteVolume(s.ctx(t), v.ID))
		if slices.ContainsFunc(list(t), func(x drivers.Volume) bool { return x.ID == v.ID }) {
			t.Errorf("volume %q still listed after delete", v.ID)
		}
	})
}

func (s *suite) testFirmware(t *testing.T) {
	b := s.bmc(t)
	fu, ok := b.(drivers.FirmwareUpdater)
	if !ok {
		t.Skip("driver has no FirmwareUpdater")
	}
	t.Run("empty-url", func(t *testing.T) {
		s.wantError(t, "UpdateFirmware with no URL", fu.UpdateFirmware(s.ctx(t), "", nil))
	})
	t.Run("update", func(t *testing.T) {
		if s.opts.FirmwareURL == "" {
			t.Skip("no Options.FirmwareURL")
		}
		s.must(t, "UpdateFirmware", fu.UpdateFirmware(s.ctx(t), s.opts.FirmwareURL, s.opts.FirmwareTargets))
	})
}
