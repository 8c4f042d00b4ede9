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
	// OnFetch, when set, is told how each fetch ended (for the daemon's
	// fetch counter); it runs on Run's goroutine and must not block.
	OnFetch func(FetchResult)
}

// Run is Source.Run at the poller's interval.
func (p Poller) Run(ctx context.Context, trigger <-chan struct{}, onRevision func(ctx context.Context, rev string, fsys fs.FS)) error {
	return p.Source.run(ctx, p.Interval, trigger, onRevision, p.OnFetch)
}
