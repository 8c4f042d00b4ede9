// Package backoff is metalsync's one retry delay: capped exponential
// backoff with jitter over the upper half, so that retries spread out
// without ever waiting less than half the nominal delay.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is jittered, capped exponential backoff.
type Policy struct {
	Base time.Duration // first delay, before jitter
	Max  time.Duration // cap, before jitter
}

// Delay returns the wait before retry number retry (0 for the first
// retry): Base doubled retry times up to Max, call it d, then a pick in
// [d/2, d] by rnd, a uniform number in [0, 1).
func (p Policy) Delay(retry int, rnd float64) time.Duration {
	d := p.Base
	for i := 0; i < retry && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	return d/2 + time.Duration(rnd*float64(d/2))
}

// Jittered is Delay with a random pick.
func (p Policy) Jittered(retry int) time.Duration {
	return p.Delay(retry, rand.Float64())
}
