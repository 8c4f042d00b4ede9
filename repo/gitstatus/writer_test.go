package gitstatus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/repo/gitstatus"
)

func TestWriterCoalesces(t *testing.T) {
	bare, src, _ := setup(t)
	c, err := gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	var flushes []gitstatus.Result
	var mu sync.Mutex
	w := gitstatus.NewWriter(c, gitstatus.WriterConfig{Interval: time.Hour, OnFlush: func(r gitstatus.Result, err error) {
		if err != nil {
			t.Errorf("flush: %v", err)
		}
		mu.Lock()
		flushes = append(flushes, r)
		mu.Unlock()
	}})
	before := gittest.Git(t, bare, "rev-list", "--count", "main")

	// Many goroutines, several updates per node: the last one wins.
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				node := fmt.Sprintf("r2-n%02d", g)
				if err := w.Update(node, []byte(fmt.Sprintf("v: %d\n", i)), fmt.Sprintf("step %d", i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Update("r1-n09", nil, "forgotten"); err != nil {
		t.Fatal(err)
	}
	if err := w.Update("../x", []byte("x"), ""); err == nil {
		t.Error("Update accepted a path as a node name")
	}
	if got := w.Pending(); got != 9 {
		t.Errorf("Pending() = %d, want 9", got)
	}
	res, err := w.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := gittest.Git(t, bare, "rev-list", "--count", "main"), fmt.Sprint(mustAtoi(t, before)+1); got != want {
		t.Errorf("commits = %s, want %s (one commit for the batch)", got, want)
	}
	if len(res.Changed) != 9 {
		t.Errorf("changed = %v, want 9 nodes", res.Changed)
	}
	for g := 0; g < 8; g++ {
		if got := gittest.Git(t, bare, "show", fmt.Sprintf("main:status/r2-n%02d.yaml", g)); got != "v: 2" {
			t.Errorf("r2-n%02d = %q, want the last update", g, got)
		}
	}
	subject := gittest.Git(t, bare, "log", "-1", "--format=%s", "main")
	if !strings.HasPrefix(subject, "status: 9 nodes changed (r1-n09 forgotten, r2-n00 step 2, ") {
		t.Errorf("subject = %q", subject)
	}
	// Nothing pending: Flush makes no commit and calls no OnFlush.
	if _, err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(flushes) != 1 || flushes[0].Commit != res.Commit {
		t.Errorf("OnFlush calls = %+v, want one with %s", flushes, res.Commit)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWriterRunFlushesAndShutsDown(t *testing.T) {
	bare, src, _ := setup(t)
	c, err := gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	flushed := make(chan gitstatus.Result, 10)
	w := gitstatus.NewWriter(c, gitstatus.WriterConfig{Interval: time.Hour, OnFlush: func(r gitstatus.Result, err error) {
		if err != nil {
			t.Errorf("flush: %v", err)
		}
		flushed <- r
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, 30*time.Second) }()

	// The first update after a quiet spell is committed straight away.
	if err := w.Update("r1-n01", []byte("first\n"), "a→b"); err != nil {
		t.Fatal(err)
	}
	r := <-flushed
	if diff := cmp.Diff([]string{"r1-n01"}, r.Changed); diff != "" {
		t.Errorf("first flush (-want +got):\n%s", diff)
	}
	// The next waits for the interval (an hour) — or for shutdown, which
	// flushes it.
	if err := w.Update("r1-n02", []byte("second\n"), "b→c"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	r = <-flushed
	if diff := cmp.Diff([]string{"r1-n02"}, r.Changed); diff != "" {
		t.Errorf("shutdown flush (-want +got):\n%s", diff)
	}
	if got := gittest.Git(t, bare, "show", "main:status/r1-n02.yaml"); got != "second" {
		t.Errorf("r1-n02 = %q", got)
	}
}

func TestWriterKeepsChangesOnFailure(t *testing.T) {
	_, src, _ := setup(t)
	c, err := gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	w := gitstatus.NewWriter(c, gitstatus.WriterConfig{})
	if err := w.Update("r1-n01", []byte("x\n"), ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the fetch fails at once
	if _, err := w.Flush(ctx); err == nil {
		t.Fatal("flush with a cancelled context succeeded")
	}
	if got := w.Pending(); got != 1 {
		t.Fatalf("Pending() after failure = %d, want 1", got)
	}
	if _, err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats(); got.Commits != 1 || got.Failures != 1 {
		t.Errorf("stats = %+v, want 1 commit and 1 failure", got)
	}
}

// TestWriterFile: a non-node file (the daemon's report of an invalid
// inventory) is written beside the node statuses and removed with nil; a
// name that looks like a node status is refused.
func TestWriterFile(t *testing.T) {
	bare, src, _ := setup(t)
	c, err := gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	w := gitstatus.NewWriter(c, gitstatus.WriterConfig{Interval: time.Hour})
	if err := w.UpdateFile("invalid.yaml", []byte("x"), ""); err == nil {
		t.Error("UpdateFile accepted a .yaml name")
	}
	if err := w.UpdateFile("inventory-errors.txt", []byte("nodes/a.yaml:1:1: bad\n"), "invalid inventory"); err != nil {
		t.Fatal(err)
	}
	if err := w.Update("inventory-errors", []byte("v: 1\n"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := gittest.Git(t, bare, "show", "main:status/inventory-errors.txt"); got != "nodes/a.yaml:1:1: bad" {
		t.Errorf("report = %q", got)
	}
	if got := gittest.Git(t, bare, "show", "main:status/inventory-errors.yaml"); got != "v: 1" {
		t.Errorf("node status beside the report = %q", got)
	}
	if err := w.UpdateFile("inventory-errors.txt", nil, "inventory valid again"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := gittest.TryGit(bare, "show", "main:status/inventory-errors.txt"); err == nil {
		t.Error("report still there after removal")
	}
}

// TestWriterShardedStatus: status files live in sub-directories that
// mirror nodes/, and a node that moves is removed from its old place in the
// same commit.
func TestWriterShardedStatus(t *testing.T) {
	bare, src, _ := setup(t)
	c, err := gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	w := gitstatus.NewWriter(c, gitstatus.WriterConfig{Interval: time.Hour})
	if err := w.UpdateAt("../x", "n1", []byte("v: 1\n"), ""); err == nil {
		t.Error("UpdateAt accepted a directory outside the status directory")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Update("n1", []byte("v: 0\n"), "")) // a flat, older layout
	must(w.UpdateAt("dc1/rack1", "n2", []byte("v: 2\n"), ""))
	_, err = w.Flush(t.Context())
	must(err)
	must(w.Update("n1", nil, ""))
	must(w.UpdateAt("rack1", "n1", []byte("v: 1\n"), ""))
	must(w.UpdateAt("dc1/rack2", "n3", []byte("v: 3\n"), ""))
	res, err := w.Flush(t.Context())
	must(err)
	if res.Commit == "" {
		t.Fatal("no commit")
	}
	files := gittest.Git(t, bare, "ls-tree", "-r", "--name-only", "main", "status")
	// r1-n01 and r1-n09 are the seed's.
	want := "status/dc1/rack1/n2.yaml\nstatus/dc1/rack2/n3.yaml\nstatus/r1-n01.yaml\nstatus/r1-n09.yaml\nstatus/rack1/n1.yaml"
	if files != want {
		t.Errorf("status files:\n%s\nwant:\n%s", files, want)
	}
}
