package gitsource_test

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
)

// TestPollerRuns: a Poller delivers the branch head like Source.Run and
// stops with its context.
func TestPollerRuns(t *testing.T) {
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", seedFiles)
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git"), IgnoreDir: "status"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- gitsource.Poller{Source: src, Interval: time.Hour}.Run(ctx, nil, func(_ context.Context, rev string, _ fs.FS) {
			got <- rev
		})
	}()
	select {
	case rev := <-got:
		if want := gittest.Git(t, bare, "rev-parse", "main"); rev != want {
			t.Errorf("delivered %s, want %s", rev, want)
		}
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}
