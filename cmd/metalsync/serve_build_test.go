package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/schema"
)

// TestGitFetchesCounted: the revision source serve builds for a Git remote
// counts its fetches in metalsync_git_fetches_total by result. Its first
// fetch finds the head the start-up fetch (the site file) already read.
func TestGitFetchesCounted(t *testing.T) {
	srv := gittest.Daemon(t)
	gittest.Seed(t, srv.Base, "inv.git", map[string]string{"nodes/n1.yaml": "kind: Node\n"})
	env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, Getenv: func(string) string { return "" }}
	metrics := daemon.NewMetrics()
	a := serveArgs{repo: srv.URL("inv.git"), branch: "main"}
	in, err := buildGitIO(t.Context(), a, env, &schema.Loader{}, metrics, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	delivered := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- in.source.Run(ctx, nil, func(context.Context, string, fs.FS) { delivered <- struct{}{} })
	}()
	select {
	case <-delivered:
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff(map[string]float64{"unchanged": 1}, fetchCounts(t, metrics)); diff != "" {
		t.Errorf("metalsync_git_fetches_total (-want +got):\n%s", diff)
	}
}

// fetchCounts reads metalsync_git_fetches_total by result.
func fetchCounts(t *testing.T, m *daemon.Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "metalsync_git_fetches_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "result" {
					got[l.GetValue()] = mt.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}
