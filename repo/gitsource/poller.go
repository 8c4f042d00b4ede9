package gitsource

import (
	"context"
	"io/fs"
	"time"
)

// Poller follows the branch of a Source, fetching every Interval. Its Run
// has the shape of the daemon's revision source.
type Poller struct {
	Source   *Source
	Interval time.Duration
}

// Run is Source.Run at the poller's interval.
func (p Poller) Run(ctx context.Context, trigger <-chan struct{}, onRevision func(ctx context.Context, rev string, fsys fs.FS)) error {
	return p.Source.Run(ctx, p.Interval, trigger, onRevision)
}
