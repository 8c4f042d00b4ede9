// Package lease keeps metalsync runs from acting on the same fleet at the
// same time: `metalsync apply` and `metalsync serve` take the fleet's lease
// before their first BMC call, renew it while they act, and release it when
// they are done. A second run finds the lease held and is refused, with the
// holder named (Terraform's state lock is the model).
//
// A lease is one Record (id, holder, operation, since, expires) kept in a
// Store that changes it only by compare-and-swap. Two stores exist:
//
//   - ForRemote: the ref refs/metalsync/lease of the inventory's Git remote,
//     pointing at a parentless commit with the empty tree whose message is
//     the record (JSON). Every change is a push with the ref's old value, so
//     operators' laptops and the daemon exclude each other through the one
//     thing they all share. `git log -1 refs/metalsync/lease` after a fetch
//     of that ref shows the record.
//   - ForDir: the file .metalsync.lease in the inventory directory, for an
//     inventory that is not a Git clone with a remote (and serve --local).
//     The swap runs under an flock(2) of the directory, so it holds between
//     processes on one machine (and on NFS where flock is supported).
//
// A lease expires when its holder stops renewing it (a crashed run): an
// expired lease may be taken over by the next run. A live one is broken
// only by Break, given its id (metalsync unlock ID). A holder that finds
// its lease gone or taken when renewing gets ErrLost and must stop acting:
// the lease fences it. Expiry compares the holder's clock with the reader's,
// so clocks of machines sharing a lease must roughly agree (NTP); the
// record's times are UTC.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"metalsync.dev/metalsync/internal/backoff"
	"metalsync.dev/metalsync/internal/clock"
)

// Record is one lease: who holds the fleet, for what, since when and until
// when unless renewed.
type Record struct {
	// ID names this lease; `metalsync unlock ID` breaks it. Random hex.
	ID string `json:"id"`
	// Holder says who acts: "metalsync apply alice@laptop pid 4242".
	Holder string `json:"holder"`
	// Operation is what the holder does: "apply", "serve".
	Operation string    `json:"operation"`
	Since     time.Time `json:"since"`
	Expires   time.Time `json:"expires"`
	// Machine and PID identify the holder's process where it runs (see
	// localMachine); they let a restarted daemon take over the lease its
	// killed predecessor left on the same machine without waiting for it
	// to expire.
	Machine string `json:"machine,omitempty"`
	PID     int    `json:"pid,omitempty"`
}

// Expired reports whether r's holder let it lapse by now.
func (r Record) Expired(now time.Time) bool { return now.After(r.Expires) }

// Orphaned reports whether r's holder is a process of this machine (same
// host, boot and pid namespace) that no longer exists: a killed run.
func (r Record) Orphaned() bool {
	m := localMachine()
	return m != "" && r.Machine == m && r.PID > 0 && r.PID != os.Getpid() && processGone(r.PID)
}

func (r Record) marshal() []byte {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic(err) // a struct of strings and times always marshals
	}
	return append(b, '\n')
}

func parseRecord(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("lease record: %w", err)
	}
	if r.ID == "" {
		return nil, errors.New("lease record: no id")
	}
	return &r, nil
}

// Version identifies one state of a Store's record, for compare-and-swap;
// "" is the state with no record.
type Version string

// Store keeps at most one Record and replaces it only by compare-and-swap.
type Store interface {
	// Load returns the current record (nil when there is none) and its
	// version.
	Load(ctx context.Context) (*Record, Version, error)
	// Swap replaces the record at version old with rec (nil removes it)
	// and returns the new version. It fails with an error matching
	// ErrConflict when the record is no longer at old.
	Swap(ctx context.Context, old Version, rec *Record) (Version, error)
	// String says where the lease lives, for messages.
	String() string
}

// ErrConflict means a Swap found the record changed since it was loaded.
var ErrConflict = errors.New("lease changed concurrently")

// ErrLost means the lease is no longer the caller's: it was broken
// (metalsync unlock), or it expired and was taken over. The holder must
// stop acting.
var ErrLost = errors.New("lease lost")

// HeldError refuses a lease that someone else holds.
type HeldError struct {
	Record Record
	// Where the lease lives (Store.String).
	Where string
	// Waited is how long Acquire waited for it (zero: it did not wait).
	Waited time.Duration
}

func (e *HeldError) Error() string {
	msg := fmt.Sprintf("the fleet is leased by %s since %s (lease %s, expires %s)",
		e.Record.Holder, e.Record.Since.UTC().Format(time.RFC3339), e.Record.ID, e.Record.Expires.UTC().Format(time.RFC3339))
	if e.Waited > 0 {
		msg = fmt.Sprintf("still held after waiting %s: %s", e.Waited, msg)
	}
	return msg
}

// Options tune a Lease; the zero value is ready for use.
type Options struct {
	// Now is the clock for Since, Expires and expiry; time.Now when nil.
	Now func() time.Time
}

// Lease takes, renews and breaks the lease kept in one Store.
type Lease struct {
	store Store
	now   func() time.Time
}

// New returns a Lease over store.
func New(store Store, opts Options) *Lease {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Lease{store: store, now: now}
}

// String says where the lease lives.
func (l *Lease) String() string { return l.store.String() }

// Request describes a lease to take.
type Request struct {
	// Holder names the taker in the record (see Holder).
	Holder string
	// Operation is what the taker will do ("apply", "serve").
	Operation string
	// TTL is how long the lease lasts without renewal (Held.Keep renews
	// it every TTL/3). Required.
	TTL time.Duration
	// Wait is how long to wait for a held lease, polling with backoff;
	// zero refuses at once.
	Wait time.Duration
}

// maxRaces bounds the swaps Acquire loses to other takers in a row before
// it gives up (each lost race means someone else took or changed it).
const maxRaces = 10

// Acquire takes the lease for req, taking over an expired one, or one whose
// holder was a process of this machine that is gone (killed). A lease
// held by someone else gives a *HeldError (after waiting up to req.Wait).
func (l *Lease) Acquire(ctx context.Context, req Request) (*Held, error) {
	if req.TTL <= 0 {
		return nil, errors.New("lease: TTL must be positive")
	}
	if req.Holder == "" {
		return nil, errors.New("lease: holder is empty")
	}
	start := l.now()
	waitCtx := ctx
	if req.Wait > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, req.Wait)
		defer cancel()
	}
	// Waiting polls from half a second up to five, jittered.
	poll := backoff.Policy{Base: 500 * time.Millisecond, Max: 5 * time.Second}
	races, polls := 0, 0
	var refusedAt Version = "\x00" // no version: never equal
	for {
		cur, ver, err := l.store.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("lease in %s: %w", l.store, err)
		}
		now := l.now()
		if cur != nil && !cur.Expired(now) && !cur.Orphaned() {
			if req.Wait <= 0 {
				return nil, &HeldError{Record: *cur, Where: l.store.String()}
			}
			polls++
			if err := (clock.Real{}).Sleep(waitCtx, poll.Jittered(polls-1)); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, &HeldError{Record: *cur, Where: l.store.String(), Waited: req.Wait}
			}
			continue
		}
		id, err := newID()
		if err != nil {
			return nil, err
		}
		rec := Record{ID: id, Holder: req.Holder, Operation: req.Operation,
			Since: now.UTC().Truncate(time.Second), Expires: now.Add(req.TTL).UTC().Truncate(time.Second),
			Machine: localMachine(), PID: os.Getpid()}
		nv, err := l.store.Swap(ctx, ver, &rec)
		if err == nil {
			return &Held{lease: l, rec: rec, ver: nv, ttl: req.TTL, start: start}, nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, fmt.Errorf("lease in %s: %w", l.store, err)
		}
		// A conflict on a version we were already refused at is not a race
		// but a refusal (a remote denying non-fast-forward updates).
		if ver == refusedAt {
			return nil, fmt.Errorf("lease in %s: %w", l.store, err)
		}
		refusedAt = ver
		races++
		if races >= maxRaces {
			return nil, fmt.Errorf("lease in %s: lost %d races to other takers: %w", l.store, races, err)
		}
	}
}

// Current returns the lease record, or nil when nobody holds the lease.
// An expired record is returned too (check Expired).
func (l *Lease) Current(ctx context.Context) (*Record, error) {
	rec, _, err := l.store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease in %s: %w", l.store, err)
	}
	return rec, nil
}

// ErrNotHeld means Break found no lease to break.
var ErrNotHeld = errors.New("nobody holds the lease")

// Break removes the lease if, and only if, its id is id, and returns the
// record it removed. A different lease gives a *HeldError naming its
// holder; no lease gives ErrNotHeld.
func (l *Lease) Break(ctx context.Context, id string) (*Record, error) {
	for races := 0; ; races++ {
		cur, ver, err := l.store.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("lease in %s: %w", l.store, err)
		}
		if cur == nil {
			return nil, fmt.Errorf("lease in %s: %w", l.store, ErrNotHeld)
		}
		if cur.ID != id {
			return nil, fmt.Errorf("lease %s is not the current one: %w", id, &HeldError{Record: *cur, Where: l.store.String()})
		}
		_, err = l.store.Swap(ctx, ver, nil)
		if err == nil {
			return cur, nil
		}
		if !errors.Is(err, ErrConflict) || races >= maxRaces {
			return nil, fmt.Errorf("lease in %s: %w", l.store, err)
		}
	}
}

// Holder names this process for a record: "metalsync <command> <who>@<host>
// pid <pid>"; who defaults to the login name (a daemon passes its name).
func Holder(command, who string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		} else {
			who = fmt.Sprintf("uid%d", os.Getuid())
		}
	}
	return fmt.Sprintf("metalsync %s %s@%s pid %d", command, who, host, os.Getpid())
}

func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lease id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
