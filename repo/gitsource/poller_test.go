package gitsource_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
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

// TestPollerOnFetch: the poller tells how each fetch ended: a first head,
// the same head again, a new head, and a remote that is gone.
func TestPollerOnFetch(t *testing.T) {
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", seedFiles)
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git"), IgnoreDir: "status"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	trigger := make(chan struct{}, 1)
	results := make(chan gitsource.FetchResult, 10)
	done := make(chan error, 1)
	go func() {
		p := gitsource.Poller{Source: src, Interval: time.Hour, OnFetch: func(r gitsource.FetchResult) { results <- r }}
		done <- p.Run(ctx, trigger, func(context.Context, string, fs.FS) {})
	}()
	next := func() gitsource.FetchResult {
		t.Helper()
		select {
		case r := <-results:
			return r
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		}
		return ""
	}
	work := gittest.Clone(t, bare)
	steps := []struct {
		name string
		act  func()
		want gitsource.FetchResult
	}{
		{"first fetch", func() {}, gitsource.FetchChanged},
		{"same head", func() { trigger <- struct{}{} }, gitsource.FetchUnchanged},
		{"new head", func() {
			gittest.WriteFiles(t, work, map[string]string{"nodes/r1/n01.yaml": "changed\n"})
			gittest.Git(t, work, "commit", "-qam", "spec")
			gittest.Git(t, work, "push", "-q", "origin", "main")
			trigger <- struct{}{}
		}, gitsource.FetchChanged},
		{"remote gone", func() {
			if err := os.Rename(bare, bare+".gone"); err != nil {
				t.Fatal(err)
			}
			trigger <- struct{}{}
		}, gitsource.FetchError},
	}
	for _, s := range steps {
		s.act()
		if got := next(); got != s.want {
			t.Fatalf("%s: fetch result %q, want %q", s.name, got, s.want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}
