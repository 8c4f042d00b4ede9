package lease_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/internal/clock/clocktest"
	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/repo/lease"
)

// newClock is the settable time source shared by every taker of one test.
func newClock() *clocktest.Fake { return clocktest.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)) }

// backend makes independent takers of one lease: each has its own store
// (its own Git source: another laptop), all on the same clock.
type backend struct {
	name string
	// taker returns a new Lease on the shared place.
	taker func(t *testing.T, c *clocktest.Fake) *lease.Lease
	// exists reports whether the lease record is stored.
	exists func(t *testing.T) bool
}

func backends(t *testing.T) []backend {
	t.Helper()
	var out []backend

	dir := t.TempDir()
	out = append(out, backend{
		name: "dir",
		taker: func(t *testing.T, c *clocktest.Fake) *lease.Lease {
			return lease.New(lease.DirStore(dir), lease.Options{Now: c.Now})
		},
		exists: func(t *testing.T) bool {
			_, err := os.Stat(filepath.Join(dir, lease.FileName))
			return err == nil
		},
	})

	srv := gittest.Daemon(t)
	for _, scheme := range []string{"file", "git"} {
		name := scheme + ".git"
		bare := gittest.Seed(t, srv.Base, name, map[string]string{"metalsync.yaml": "kind: Site\n"})
		url := "file://" + bare
		if scheme == "git" {
			url = srv.URL(name)
		}
		out = append(out, backend{
			name: scheme,
			taker: func(t *testing.T, c *clocktest.Fake) *lease.Lease {
				src, err := gitsource.New(gitsource.Config{URL: url})
				if err != nil {
					t.Fatal(err)
				}
				return lease.New(lease.RemoteStore(src), lease.Options{Now: c.Now})
			},
			exists: func(t *testing.T) bool {
				_, err := gittest.TryGit(bare, "rev-parse", "--verify", "--quiet", lease.RefName.String())
				return err == nil
			},
		})
	}
	return out
}

func req(holder string) lease.Request {
	return lease.Request{Holder: holder, Operation: "apply", TTL: time.Minute}
}

func TestLease(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Run("second acquire refused with the holder named", func(t *testing.T) {
				c := newClock()
				a, err := b.taker(t, c).Acquire(ctx, req("metalsync apply alice@laptop pid 1"))
				if err != nil {
					t.Fatal(err)
				}
				defer a.Release(ctx)
				_, err = b.taker(t, c).Acquire(ctx, req("metalsync apply bob@desk pid 2"))
				var held *lease.HeldError
				if !errors.As(err, &held) {
					t.Fatalf("second Acquire = %v, want a *HeldError", err)
				}
				if diff := cmp.Diff(a.Record(), held.Record); diff != "" {
					t.Errorf("refusal names (-want +got):\n%s", diff)
				}
				want := "the fleet is leased by metalsync apply alice@laptop pid 1 since 2026-11-01T10:00:00Z (lease " + a.Record().ID + ", expires 2026-11-01T10:01:00Z)"
				if got := err.Error(); got != want {
					t.Errorf("message:\n got %s\nwant %s", got, want)
				}
			})

			t.Run("release frees it", func(t *testing.T) {
				c := newClock()
				a, err := b.taker(t, c).Acquire(ctx, req("a"))
				if err != nil {
					t.Fatal(err)
				}
				if !b.exists(t) {
					t.Fatal("no lease stored after Acquire")
				}
				if err := a.Release(ctx); err != nil {
					t.Fatal(err)
				}
				if b.exists(t) {
					t.Fatal("lease still stored after Release")
				}
				bh, err := b.taker(t, c).Acquire(ctx, req("b"))
				if err != nil {
					t.Fatalf("Acquire after Release: %v", err)
				}
				bh.Release(ctx)
			})

			t.Run("renew extends it", func(t *testing.T) {
				c := newClock()
				l := b.taker(t, c)
				a, err := l.Acquire(ctx, req("a"))
				if err != nil {
					t.Fatal(err)
				}
				defer a.Release(ctx)
				c.Advance(50 * time.Second)
				if err := a.Renew(ctx); err != nil {
					t.Fatal(err)
				}
				if err := a.Renew(ctx); err != nil { // same second: same record
					t.Fatalf("second Renew: %v", err)
				}
				c.Advance(50 * time.Second) // past the first expiry
				cur, err := b.taker(t, c).Current(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if want := c.Now().Add(10 * time.Second); !cur.Expires.Equal(want) || cur.Expired(c.Now()) {
					t.Errorf("after renew: expires %s, want %s", cur.Expires, want)
				}
				if _, err := b.taker(t, c).Acquire(ctx, req("b")); !isHeld(err) {
					t.Errorf("Acquire of a renewed lease = %v, want a *HeldError", err)
				}
			})

			t.Run("expired lease taken over; the old holder is fenced", func(t *testing.T) {
				c := newClock()
				a, err := b.taker(t, c).Acquire(ctx, req("a"))
				if err != nil {
					t.Fatal(err)
				}
				c.Advance(61 * time.Second)
				bh, err := b.taker(t, c).Acquire(ctx, req("b"))
				if err != nil {
					t.Fatalf("Acquire of an expired lease: %v", err)
				}
				defer bh.Release(ctx)
				if err := a.Renew(ctx); !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "now held by b") {
					t.Errorf("Renew after takeover = %v, want ErrLost naming b", err)
				}
				if err := a.Release(ctx); !errors.Is(err, lease.ErrLost) {
					t.Errorf("Release after takeover = %v, want ErrLost", err)
				}
				assertHolder(t, b.taker(t, c), bh.Record().ID)
			})

			t.Run("break needs the id; the broken holder is fenced", func(t *testing.T) {
				c := newClock()
				a, err := b.taker(t, c).Acquire(ctx, req("a"))
				if err != nil {
					t.Fatal(err)
				}
				op := b.taker(t, c)
				if _, err := op.Break(ctx, "0123456789abcdef"); !isHeld(err) || !strings.Contains(err.Error(), "leased by a ") {
					t.Fatalf("Break with a wrong id = %v, want a *HeldError naming a", err)
				}
				assertHolder(t, op, a.Record().ID)
				broken, err := op.Break(ctx, a.Record().ID)
				if err != nil {
					t.Fatal(err)
				}
				if broken.Holder != "a" {
					t.Errorf("Break removed %+v", broken)
				}
				if _, err := op.Break(ctx, a.Record().ID); !errors.Is(err, lease.ErrNotHeld) {
					t.Errorf("second Break = %v, want ErrNotHeld", err)
				}
				if err := a.Renew(ctx); !errors.Is(err, lease.ErrLost) {
					t.Errorf("Renew after Break = %v, want ErrLost", err)
				}
				ch, err := b.taker(t, c).Acquire(ctx, req("c"))
				if err != nil {
					t.Fatal(err)
				}
				defer ch.Release(ctx)
				if err := a.Release(ctx); !errors.Is(err, lease.ErrLost) {
					t.Errorf("Release of a broken lease = %v, want ErrLost", err)
				}
				assertHolder(t, op, ch.Record().ID)
			})

			t.Run("concurrent acquirers: exactly one wins", func(t *testing.T) {
				c := newClock()
				const n = 4
				takers := make([]*lease.Lease, n)
				for i := range takers {
					takers[i] = b.taker(t, c)
				}
				var wg sync.WaitGroup
				helds := make([]*lease.Held, n)
				errs := make([]error, n)
				start := make(chan struct{})
				for i := range takers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						helds[i], errs[i] = takers[i].Acquire(ctx, req("taker"))
					}()
				}
				close(start)
				wg.Wait()
				var won []*lease.Held
				for i, err := range errs {
					switch {
					case err == nil:
						won = append(won, helds[i])
					case !isHeld(err):
						t.Errorf("taker %d: %v, want a win or a *HeldError", i, err)
					}
				}
				if len(won) != 1 {
					t.Fatalf("%d takers won, want exactly 1", len(won))
				}
				assertHolder(t, takers[0], won[0].Record().ID)
				if err := won[0].Release(ctx); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("keep reports a broken lease", func(t *testing.T) {
				c := newClock()
				a, err := b.taker(t, c).Acquire(ctx, req("a"))
				if err != nil {
					t.Fatal(err)
				}
				kctx, cancel := context.WithCancel(ctx)
				defer cancel()
				lost := a.Keep(kctx, time.Millisecond)
				if _, err := b.taker(t, c).Break(ctx, a.Record().ID); err != nil {
					t.Fatal(err)
				}
				if err := <-lost; !errors.Is(err, lease.ErrLost) {
					t.Errorf("Keep reported %v, want ErrLost", err)
				}
				if _, open := <-lost; open {
					t.Error("Keep's channel not closed after the loss")
				}
			})

			t.Run("wait: taken once released, or refused when the wait ends", func(t *testing.T) {
				c := newClock()
				a, err := b.taker(t, c).Acquire(ctx, req("a"))
				if err != nil {
					t.Fatal(err)
				}
				w := req("waiter")
				w.Wait = time.Nanosecond
				_, err = b.taker(t, c).Acquire(ctx, w)
				var held *lease.HeldError
				if !errors.As(err, &held) || held.Waited != w.Wait || !strings.Contains(err.Error(), "still held after waiting") {
					t.Fatalf("Acquire with a short wait = %v, want a *HeldError after waiting", err)
				}
				w.Wait = time.Hour
				got := make(chan error, 1)
				waiter := b.taker(t, c)
				go func() {
					h, err := waiter.Acquire(ctx, w)
					if err == nil {
						err = h.Release(ctx)
					}
					got <- err
				}()
				if err := a.Release(ctx); err != nil {
					t.Fatal(err)
				}
				if err := <-got; err != nil {
					t.Errorf("waiting Acquire: %v", err)
				}
			})
		})
	}
}

func isHeld(err error) bool {
	var held *lease.HeldError
	return errors.As(err, &held)
}

func assertHolder(t *testing.T, l *lease.Lease, id string) {
	t.Helper()
	cur, err := l.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cur == nil || cur.ID != id {
		t.Fatalf("current lease = %+v, want id %s", cur, id)
	}
}
