package localwatch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func start(t *testing.T, dir string) *Watcher {
	t.Helper()
	w, err := New(Config{Dir: dir, Quiet: 50 * time.Millisecond, MaxWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

// waitTrigger fails the test if no trigger comes; the long bound only
// guards against a hang.
func waitTrigger(t *testing.T, w *Watcher, what string) {
	t.Helper()
	select {
	case <-w.C():
	case <-time.After(20 * time.Second):
		t.Fatalf("no trigger after %s", what)
	}
}

// noTrigger checks that nothing fires for a while. It can only pass
// wrongly on a slow machine, never fail wrongly.
func noTrigger(t *testing.T, w *Watcher, what string) {
	t.Helper()
	select {
	case <-w.C():
		t.Fatalf("trigger after %s", what)
	case <-time.After(400 * time.Millisecond):
	}
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatchNestedDirectories(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "nodes", "r1", "n01.yaml"), "a")
	w := start(t, dir)

	// An existing nested file.
	write(t, filepath.Join(dir, "nodes", "r1", "n01.yaml"), "b")
	waitTrigger(t, w, "editing an existing nested file")

	// Directories created after the watch started, file written at once
	// (before the new directories' watches can exist).
	write(t, filepath.Join(dir, "nodes", "r2", "deep", "n02.yaml"), "c")
	waitTrigger(t, w, "creating nested directories with a file")

	// A later file in the new directory is seen through its own watch.
	write(t, filepath.Join(dir, "nodes", "r2", "deep", "n03.yml"), "d")
	waitTrigger(t, w, "a file in a directory created after start")

	// Renamed directory: the new path is watched.
	if err := os.Rename(filepath.Join(dir, "nodes", "r2"), filepath.Join(dir, "nodes", "r3")); err != nil {
		t.Fatal(err)
	}
	waitTrigger(t, w, "renaming a directory")
	write(t, filepath.Join(dir, "nodes", "r3", "deep", "n04.cue"), "e")
	waitTrigger(t, w, "a file in a renamed directory")

	// Removing a directory of inventory files.
	if err := os.RemoveAll(filepath.Join(dir, "nodes", "r3")); err != nil {
		t.Fatal(err)
	}
	waitTrigger(t, w, "removing a directory")

	// Noise: git internals, editor temporaries, other file types.
	write(t, filepath.Join(dir, ".git", "refs", "heads", "main"), "x")
	write(t, filepath.Join(dir, ".git", "x.yaml"), "x")
	write(t, filepath.Join(dir, "nodes", "r1", ".n01.yaml.swp"), "x")
	write(t, filepath.Join(dir, "nodes", "r1", "n01.yaml~"), "x")
	write(t, filepath.Join(dir, "nodes", "r1", "4913"), "x")
	write(t, filepath.Join(dir, "nodes", "r1", "#n01.yaml#"), "x")
	write(t, filepath.Join(dir, "README.md"), "x")
	noTrigger(t, w, "writing ignored files")

	// A burst of changes gives one trigger, not one per file.
	for i := 0; i < 20; i++ {
		write(t, filepath.Join(dir, "nodes", "r1", "n01.yaml"), string(rune('a'+i)))
	}
	waitTrigger(t, w, "a burst of writes")
	noTrigger(t, w, "the burst settled")
}

func TestWatchOverflowRescans(t *testing.T) {
	dir := t.TempDir()
	w, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Directories made while events were lost (as after an overflow) are
	// watched after a resync, and stale watches are dropped.
	write(t, filepath.Join(dir, "a", "b", "n.yaml"), "x")
	if err := os.MkdirAll(filepath.Join(dir, ".git", "objects"), 0o755); err != nil {
		t.Fatal(err)
	}
	found, err := w.resync()
	if err != nil || !found {
		t.Fatalf("resync = %v, %v; want an inventory file found", found, err)
	}
	want := []string{dir, filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")}
	if diff := cmp.Diff(want, sorted(w.fsw.WatchList())); diff != "" {
		t.Errorf("watches (-want +got):\n%s", diff)
	}
	if err := os.RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.resync(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{dir}, sorted(w.fsw.WatchList())); diff != "" {
		t.Errorf("watches after removal (-want +got):\n%s", diff)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestFilters(t *testing.T) {
	tests := []struct {
		path     string
		relevant bool
	}{
		{"nodes/a.yaml", true},
		{"nodes/a.YML", true},
		{"schema/x.cue", true},
		{"metalsync.yaml", true},
		{".git/config", false},
		{".git/x.yaml", false},
		{"sub/.git/x.yaml", false},
		{"nodes/.a.yaml.swp", false},
		{"nodes/a.yaml~", false},
		{"nodes/.#a.yaml", false},
		{"nodes/#a.yaml#", false},
		{"nodes/4913", false},
		{"nodes/.a.yaml.4f2a", false},
		{"nodes/a.yaml.tmp", false},
		{"README.md", false},
	}
	for _, tc := range tests {
		if got := relevant(tc.path); got != tc.relevant {
			t.Errorf("relevant(%q) = %v, want %v", tc.path, got, tc.relevant)
		}
	}
}
