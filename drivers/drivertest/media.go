package drivertest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
)

func (s *suite) testMedia(t *testing.T) {
	b := s.bmc(t)
	mm, ok := b.(drivers.MediaManager)
	if !ok {
		t.Skip("driver has no MediaManager")
	}
	status := func(t *testing.T, kind drivers.MediaKind) drivers.MediaStatus {
		t.Helper()
		st, err := mm.MediaStatus(s.ctx(t), kind)
		if kind == drivers.MediaCD {
			s.must(t, "MediaStatus "+string(kind), err)
		} else {
			s.optional(t, "MediaStatus "+string(kind), err)
		}
		if st.Kind != kind {
			t.Errorf("MediaStatus(%s).Kind = %q", kind, st.Kind)
		}
		return st
	}
	// Only the fields the contract fixes are compared; Device is the BMC's
	// own name for the slot.
	ignoreDevice := cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Device" }, cmp.Ignore())

	t.Run("eject-empty", func(t *testing.T) {
		// Twice: the first empties the slot whatever it held, the second
		// must succeed on an empty slot (the executor retries).
		s.must(t, "EjectMedia cd", mm.EjectMedia(s.ctx(t), drivers.MediaCD))
		s.must(t, "EjectMedia cd again", mm.EjectMedia(s.ctx(t), drivers.MediaCD))
		want := drivers.MediaStatus{Kind: drivers.MediaCD}
		if diff := cmp.Diff(want, status(t, drivers.MediaCD), ignoreDevice); diff != "" {
			t.Errorf("MediaStatus after eject (-want +got):\n%s", diff)
		}
	})
	t.Run("insert-eject", func(t *testing.T) {
		if s.opts.MediaURL == "" {
			t.Skip("no Options.MediaURL")
		}
		s.must(t, "InsertMedia cd", mm.InsertMedia(s.ctx(t), drivers.MediaCD, s.opts.MediaURL))
		want := drivers.MediaStatus{Kind: drivers.MediaCD, Image: s.opts.MediaURL, Inserted: true}
		if diff := cmp.Diff(want, status(t, drivers.MediaCD), ignoreDevice); diff != "" {
			t.Errorf("MediaStatus after insert (-want +got):\n%s", diff)
		}
		s.must(t, "EjectMedia cd", mm.EjectMedia(s.ctx(t), drivers.MediaCD))
		want = drivers.MediaStatus{Kind: drivers.MediaCD}
		if diff := cmp.Diff(want, status(t, drivers.MediaCD), ignoreDevice); diff != "" {
			t.Errorf("MediaStatus after eject (-want +got):\n%s", diff)
		}
	})
	t.Run("insert-empty-url", func(t *testing.T) {
		s.wantError(t, "InsertMedia with no URL", mm.InsertMedia(s.ctx(t), drivers.MediaCD, ""))
		if st := status(t, drivers.MediaCD); st.Inserted {
			t.Errorf("MediaStatus after a refused insert = %+v, want nothing inserted", st)
		}
	})
	// Floppy and USB slots are optional: a status or ErrUnsupported.
	for _, kind := range []drivers.MediaKind{drivers.MediaFloppy, drivers.MediaUSB} {
		t.Run("status-"+string(kind), func(t *testing.T) { status(t, kind) })
	}
	t.Run("unknown-kind", func(t *testing.T) {
		_, err := mm.MediaStatus(s.ctx(t), "tape")
		s.wantUnsupported(t, "MediaStatus tape", err)
		s.wantUnsupported(t, "InsertMedia tape", mm.InsertMedia(s.ctx(t), "tape", "http://127.0.0.1:9/x.iso"))
		s.wantUnsupported(t, "EjectMedia tape", mm.EjectMedia(s.ctx(t), "tape"))
	})
}
