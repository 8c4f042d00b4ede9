package apply

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"metalsync.dev/metalsync/credentials"
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/reconcile/plan"
)

// Class is the small outcome vocabulary every failure maps to.
type Class int

// Failure classes.
const (
	// Transient failures are retried with backoff: a 503, a timeout.
	Transient Class = iota
	// Waiting means the work is in progress: poll again after a while.
	Waiting
	// Stalled means a person must act: bad credentials, a missing
	// capability, a missing agent, a request the BMC refuses for good
	// (drivers.ErrPermanent: 400, 403, 404, 405, 501...). Retrying will
	// not help; the step fails at once with the BMC's message.
	Stalled
)

func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Waiting:
		return "waiting"
	case Stalled:
		return "stalled"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// WaitingError says the operation is under way; poll after After.
type WaitingError struct {
	After  time.Duration
	Reason string
}

func (e *WaitingError) Error() string { return "waiting: " + e.Reason }

// Wait returns a WaitingError.
func Wait(after time.Duration, reason string) error {
	return &WaitingError{After: after, Reason: reason}
}

// StalledError wraps a failure only a person can resolve.
type StalledError struct{ Err error }

func (e *StalledError) Error() string { return e.Err.Error() }
func (e *StalledError) Unwrap() error { return e.Err }

// Stall marks err as needing a person.
func Stall(err error) error { return &StalledError{Err: err} }

// inspectFailed ends an out-of-band inspection whose retries (or time)
// ran out as a stalled one: the operation lands in inspect failed with the
// reason in lastError, instead of resuming at the next pass as other
// transient failures do. From inspect failed the planner enforces power
// first and inspects again, so an inspection that keeps failing never
// blocks power. Other steps are returned as they are.
func inspectFailed(step plan.Step, err error) error {
	if step.Action != plan.ActionInspect {
		return err
	}
	return Stall(err)
}

// ErrPowerNotApplied marks a power change the BMC accepted but that did
// not take effect: the power read afterwards shows the old state.
var ErrPowerNotApplied = errors.New("power change did not take effect")

// ErrFault marks a node that failed often enough to be quarantined
// automatically.
var ErrFault = errors.New("automatic fault")

// Classify maps an error to its class. Whatever is not waiting, stalled
// (a StalledError, rejected credentials, a missing capability or
// credential, a permanent refusal by the BMC, an automatic fault) is
// transient: timeouts, connection resets, 5xx other than 501, 429.
func Classify(err error) Class {
	var w *WaitingError
	var s *StalledError
	switch {
	case errors.As(err, &w):
		return Waiting
	case errors.As(err, &s),
		errors.Is(err, drivers.ErrAuth),
		errors.Is(err, drivers.ErrUnsupported),
		errors.Is(err, drivers.ErrPermanent),
		errors.Is(err, credentials.ErrMissing),
		errors.Is(err, ErrFault):
		return Stalled
	}
	return Transient
}

// unhealthy reports whether err says the BMC or the machine is in
// trouble, as opposed to a bad request: these failures count towards an
// automatic fault (Ironic's "power failure"), every attempt of every step,
// an inspection's included.
//
// A permanent refusal (drivers.ErrPermanent, even a 404 on the system
// itself), rejected credentials and a 429 do not count: the BMC answered,
// so it is not unhealthy; the step fails at once (or is retried, for a
// 429) with the BMC's message, which a person acts on. A fault would hide
// that message behind "power failure" and stop power enforcement.
func unhealthy(err error) (string, bool) {
	switch {
	case errors.Is(err, drivers.ErrUnreachable):
		return "BMC unreachable", true
	case errors.Is(err, drivers.ErrBMCFailing):
		return "BMC failing (5xx)", true
	case errors.Is(err, ErrPowerNotApplied):
		return "power change not taking effect", true
	case errors.Is(err, context.DeadlineExceeded):
		return "BMC not answering in time", true
	}
	return "", false
}

// urlSecrets matches the query of a URL: media and agent URLs carry
// tokens there.
var urlSecrets = regexp.MustCompile(`(https?://[^\s?"']+)\?[^\s"']*`)

// mediaTokens matches the token segment of a media server URL
// (/media/<token>/<node>.iso), which a BMC may quote back in an error.
var mediaTokens = regexp.MustCompile(`/media/[A-Za-z0-9_=-]{16,}/`)

// Sanitize renders an error for status files (which end up in Git), logs
// and terminals: the queries of URLs and the token segment of media URLs,
// where media and agent URLs carry their tokens, are redacted.
func Sanitize(err error) string {
	if err == nil {
		return ""
	}
	s := urlSecrets.ReplaceAllString(err.Error(), "$1?[redacted]")
	return mediaTokens.ReplaceAllString(s, "/media/[redacted]/")
}
