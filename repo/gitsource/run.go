package gitsource

import (
	"context"
	"io/fs"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"metalsync.dev/metalsync/internal/backoff"
)

// OnCommit is called by Run with a new head and the file system of its tree.
type OnCommit func(ctx context.Context, commit string, fsys fs.FS)

// Run fetches the followed branch now, then every interval and whenever
// trigger fires (a webhook; a nil channel never fires), and calls onCommit
// for each new head whose spec changed: commits that touch only the ignored
// directory (Config.IgnoreDir, the daemon's own status writes) are skipped.
// The first head is always delivered.
//
// onCommit runs on Run's goroutine, so deliveries never overlap; triggers
// that arrive meanwhile should be coalesced by the sender (a channel with a
// buffer of one and a non-blocking send). Fetch failures are logged and
// retried with jittered backoff (1s doubling) up to interval. Run returns ctx's error
// when ctx is done.
func (s *Source) Run(ctx context.Context, interval time.Duration, trigger <-chan struct{}, onCommit OnCommit) error {
	return s.run(ctx, interval, trigger, onCommit, nil)
}

// FetchResult is how one of Run's fetches ended.
type FetchResult string

// Fetch results.
const (
	FetchChanged   FetchResult = "changed"   // the branch has a head not fetched before
	FetchUnchanged FetchResult = "unchanged" // the branch is where the last fetch found it
	FetchError     FetchResult = "error"     // the fetch failed (and is retried)
)

// run is Run, telling onFetch (when not nil) how each fetch ended; a fetch
// cut short by ctx ending is not told.
func (s *Source) run(ctx context.Context, interval time.Duration, trigger <-chan struct{}, onCommit OnCommit, onFetch func(FetchResult)) error {
	if onFetch == nil {
		onFetch = func(FetchResult) {}
	}
	if interval <= 0 {
		interval = time.Minute
	}
	var delivered string
	var deliveredSpec plumbing.Hash
	failures := 0
	for {
		wait := interval
		commit, changed, err := s.Fetch(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			onFetch(FetchError)
			failures++
			wait = backoff.Policy{Base: time.Second, Max: interval}.Jittered(failures - 1)
			s.log.Warn("git fetch failed", "remote", s.remote.name, "branch", s.branch, "err", err, "retry_in", wait)
		default:
			if changed {
				onFetch(FetchChanged)
			} else {
				onFetch(FetchUnchanged)
			}
			failures = 0
			if commit == delivered {
				break
			}
			// Trees are taken before the spec so that a compaction in
			// between cannot lose the commit.
			fsys, err := s.Tree(commit)
			if err != nil {
				s.log.Error("git read tree", "remote", s.remote.name, "commit", commit, "err", err)
				break
			}
			spec, err := s.Spec(commit)
			if err != nil {
				s.log.Error("git read tree", "remote", s.remote.name, "commit", commit, "err", err)
				break
			}
			if delivered == "" || spec != deliveredSpec {
				onCommit(ctx, commit, fsys)
			}
			delivered, deliveredSpec = commit, spec
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-trigger:
			t.Stop()
		case <-t.C:
		}
	}
}
