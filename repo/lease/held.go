package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Held is a lease the caller holds. Its methods are safe for concurrent
// use (Keep renews from its own goroutine while the holder releases).
type Held struct {
	lease *Lease
	ttl   time.Duration
	start time.Time // when Acquire began, for Waited

	mu  sync.Mutex
	rec Record  // guarded by mu
	ver Version // guarded by mu; the store's version of rec
}

// Record returns the lease as last written.
func (h *Held) Record() Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rec
}

// Waited is how long Acquire took, waiting for the previous holder
// included.
func (h *Held) Waited() time.Duration {
	return h.lease.now().Sub(h.start)
}

// lostError says who holds the lease now, if anyone.
func lostError(id string, cur *Record) error {
	if cur == nil {
		return fmt.Errorf("lease %s: %w: it was broken (nobody holds it now)", id, ErrLost)
	}
	return fmt.Errorf("lease %s: %w: now held by %s as lease %s since %s", id, ErrLost, cur.Holder, cur.ID, cur.Since.UTC().Format(time.RFC3339))
}

// Renew extends the lease to TTL from now. It fails with ErrLost when the
// lease is no longer ours; the holder must then stop acting.
func (h *Held) Renew(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for races := 0; ; races++ {
		cur, ver, err := h.lease.store.Load(ctx)
		if err != nil {
			return fmt.Errorf("renew lease %s: %w", h.rec.ID, err)
		}
		if cur == nil || cur.ID != h.rec.ID {
			return lostError(h.rec.ID, cur)
		}
		next := h.rec
		next.Expires = h.lease.now().Add(h.ttl).UTC().Truncate(time.Second)
		nv, err := h.lease.store.Swap(ctx, ver, &next)
		if err == nil {
			h.rec, h.ver = next, nv
			return nil
		}
		if !errors.Is(err, ErrConflict) || races >= maxRaces {
			return fmt.Errorf("renew lease %s: %w", h.rec.ID, err)
		}
	}
}

// Release gives the lease up. It removes the record only while it is
// still ours: a lease broken and taken by another run stays theirs, and
// Release then reports ErrLost.
func (h *Held) Release(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for races := 0; ; races++ {
		cur, ver, err := h.lease.store.Load(ctx)
		if err != nil {
			return fmt.Errorf("release lease %s: %w", h.rec.ID, err)
		}
		if cur == nil || cur.ID != h.rec.ID {
			return lostError(h.rec.ID, cur)
		}
		_, err = h.lease.store.Swap(ctx, ver, nil)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrConflict) || races >= maxRaces {
			return fmt.Errorf("release lease %s: %w", h.rec.ID, err)
		}
	}
}

// Keep renews the lease every interval (TTL/3 when interval is not
// positive) until ctx ends. The returned channel receives one error
// matching ErrLost if the lease is lost (taken, broken, or not renewed
// before it expired because the store was unreachable), and is closed when
// Keep stops: after a loss, or after ctx ends. Failed renewals that leave
// the lease unexpired are retried at the next tick.
func (h *Held) Keep(ctx context.Context, interval time.Duration) <-chan error {
	if interval <= 0 {
		interval = h.ttl / 3
	}
	lost := make(chan error, 1)
	go func() {
		defer close(lost)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := h.Renew(ctx)
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return
			case errors.Is(err, ErrLost):
				lost <- err
				return
			case h.Record().Expired(h.lease.now()):
				lost <- fmt.Errorf("%w: not renewed before it expired: %v", ErrLost, err)
				return
			}
		}
	}()
	return lost
}
