package gitstatus_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/repo/gitstatus"
)

// TestWriterSyncIsDurable: Sync returns only once the updates made before
// it are on the remote, without waiting for the interval; concurrent
// Syncs share commits.
func TestWriterSyncIsDurable(t *testing.T) {
	bare, src, _ := setup(t)
	c, err := gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	w := gitstatus.NewWriter(c, gitstatus.WriterConfig{Interval: time.Hour})
	before := gittest.Git(t, bare, "rev-list", "--count", "main")
	const nodes = 16
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			node := fmt.Sprintf("r3-n%02d", i)
			if err := w.Update(node, []byte(fmt.Sprintf("intent: %d\n", i)), "intent"); err != nil {
				t.Error(err)
				return
			}
			if err := w.Sync(t.Context()); err != nil {
				t.Errorf("sync %s: %v", node, err)
				return
			}
			// Durable: the remote has it now.
			got := gittest.Git(t, bare, "show", "main:status/"+node+".yaml")
			if want := fmt.Sprintf("intent: %d", i); strings.TrimSpace(got) != want {
				t.Errorf("%s on the remote after Sync = %q, want %q", node, got, want)
			}
		})
	}
	wg.Wait()
	after := gittest.Git(t, bare, "rev-list", "--count", "main")
	var b, a int
	fmt.Sscan(before, &b)
	fmt.Sscan(after, &a)
	if a-b < 1 || a-b > nodes {
		t.Errorf("%d commits for %d synced updates; want between 1 and %d", a-b, nodes, nodes)
	}
	t.Logf("%d synced updates from %d goroutines made %d commits", nodes, nodes, a-b)
	// Nothing pending: Sync returns at once.
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w.Pending() != 0 {
		t.Errorf("Pending() = %d after Sync", w.Pending())
	}
}
