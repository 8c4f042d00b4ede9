// Package fleetpagetest is a daemon's view that tests set and change, for
// testing the fleet page and its clients without a daemon.
package fleetpagetest

import (
	"sync"

	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/schema"
)

// Fleet implements fleetpage.Fleet over a snapshot that tests change.
type Fleet struct {
	mu   sync.Mutex
	snap daemon.Snapshot
}

// New returns a Fleet showing snap.
func New(snap daemon.Snapshot) *Fleet { return &Fleet{snap: snap} }

// Snapshot returns a copy of the current view.
func (f *Fleet) Snapshot() daemon.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.snap
	s.Observed = f.snap.Observed.Clone()
	return s
}

// Generation is the current view's generation.
func (f *Fleet) Generation() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap.Generation
}

// Update changes the view and moves its generation on, as a daemon does
// on every change.
func (f *Fleet) Update(fn func(*daemon.Snapshot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.snap)
	f.snap.Generation++
}

// SetStatus changes one node's observed status with edit.
func (f *Fleet) SetStatus(node string, edit func(*schema.NodeStatusBody)) {
	f.Update(func(s *daemon.Snapshot) {
		st := s.Observed[node]
		edit(&st)
		s.Observed[node] = st
	})
}
