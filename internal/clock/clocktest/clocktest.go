// Package clocktest is the one fake clock of the tests: time moves only
// when a test advances it, or when the code under test sleeps on it, so
// backoff and expiry cost no wall time.
package clocktest

import (
	"context"
	"sync"
	"time"
)

// Fake is a clock.Clock a test moves by hand.
type Fake struct {
	mu  sync.Mutex
	now time.Time // guarded by mu
}

// New returns a fake clock reading t.
func New(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the clock's time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// Sleep advances the clock by d at once, unless ctx has ended.
func (f *Fake) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.Advance(d)
	return nil
}
