package localwatch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fsnotify/fsnotify"
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

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// settle writes a marker file and handles the watcher's events, one at a
// time as Run would, up to the marker's: inotify queues one watcher's events
// in order, so every event of what was done before has then been handled.
// It reports whether any of them may have changed the inventory. Driving
// handle directly leaves out the debouncing (TestDebounce covers it), so
// what each change did is known exactly, whatever the machine's load.
func settle(t *testing.T, w *Watcher, n int) (relevant bool) {
	t.Helper()
	mark := filepath.Join(w.dir, fmt.Sprintf("settle-%d", n))
	if err := os.WriteFile(mark, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The bound only guards against a hang.
	guard := time.NewTimer(20 * time.Second)
	defer guard.Stop()
	for {
		select {
		case ev := <-w.fsw.Events:
			if ev.Name == mark {
				return relevant
			}
			if w.handle(ev) {
				relevant = true
			}
		case err := <-w.fsw.Errors:
			t.Fatalf("watch error: %v", err)
		case <-guard.C:
			t.Fatalf("no event for %s", mark)
		}
	}
}

func TestWatchNestedDirectories(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "nodes", "r1", "n01.yaml"), "a")
	w, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := func(elem ...string) string { return filepath.Join(append([]string{dir}, elem...)...) }
	base := []string{dir, p("nodes"), p("nodes", "r1")}
	steps := []struct {
		name     string
		do       func(t *testing.T)
		relevant bool
		watches  []string // nil: unchanged
	}{
		{
			name:     "editing an existing nested file",
			do:       func(t *testing.T) { write(t, p("nodes", "r1", "n01.yaml"), "b") },
			relevant: true,
		},
		{
			// The file is written before the watcher sees the new
			// directories, so before their watches can exist: the scan
			// of a new directory finds it.
			name:     "creating nested directories with a file",
			do:       func(t *testing.T) { write(t, p("nodes", "r2", "deep", "n02.yaml"), "c") },
			relevant: true,
			watches:  append(slices.Clone(base), p("nodes", "r2"), p("nodes", "r2", "deep")),
		},
		{
			name:     "a file in a directory created after start",
			do:       func(t *testing.T) { write(t, p("nodes", "r2", "deep", "n03.yml"), "d") },
			relevant: true,
		},
		{
			name: "renaming a directory",
			do: func(t *testing.T) {
				if err := os.Rename(p("nodes", "r2"), p("nodes", "r3")); err != nil {
					t.Fatal(err)
				}
			},
			relevant: true,
			watches:  append(slices.Clone(base), p("nodes", "r3"), p("nodes", "r3", "deep")),
		},
		{
			name:     "a file in a renamed directory",
			do:       func(t *testing.T) { write(t, p("nodes", "r3", "deep", "n04.cue"), "e") },
			relevant: true,
		},
		{
			name: "removing a directory",
			do: func(t *testing.T) {
				if err := os.RemoveAll(p("nodes", "r3")); err != nil {
					t.Fatal(err)
				}
			},
			relevant: true,
			watches:  base,
		},
		{
			name: "writing ignored files",
			do: func(t *testing.T) {
				write(t, p(".git", "refs", "heads", "main"), "x")
				write(t, p(".git", "x.yaml"), "x")
				write(t, p("nodes", "r1", ".n01.yaml.swp"), "x")
				write(t, p("nodes", "r1", "n01.yaml~"), "x")
				write(t, p("nodes", "r1", "4913"), "x")
				write(t, p("nodes", "r1", "#n01.yaml#"), "x")
				write(t, p("README.md"), "x")
			},
			relevant: false,
			watches:  base,
		},
	}
	for i, st := range steps {
		st.do(t)
		if got := settle(t, w, i); got != st.relevant {
			t.Errorf("%s: relevant = %v, want %v", st.name, got, st.relevant)
		}
		if st.watches != nil {
			if diff := cmp.Diff(sorted(st.watches), sorted(w.fsw.WatchList())); diff != "" {
				t.Errorf("%s: watches (-want +got):\n%s", st.name, diff)
			}
		}
	}
}

// TestDebounce runs the event loop on synthetic events in a synctest bubble,
// whose clock moves only when every goroutine in it waits: the triggers'
// times are exact.
func TestDebounce(t *testing.T) {
	const ms = time.Millisecond
	// every returns n writes of file, step apart.
	every := func(n int, step time.Duration, file string) []timedEvent {
		evs := make([]timedEvent, n)
		for i := range evs {
			evs[i] = timedEvent{at: time.Duration(i) * step, file: file}
		}
		return evs
	}
	tests := []struct {
		name   string
		events []timedEvent
		want   []time.Duration // times of the triggers
	}{
		{"one write", every(1, 0, "nodes/a.yaml"), []time.Duration{50 * ms}},
		{"a burst is one trigger", every(20, 10*ms, "nodes/a.yaml"), []time.Duration{240 * ms}},
		{"a quiet period ends a burst", []timedEvent{{0, "a.yaml"}, {30 * ms, "b.cue"}, {100 * ms, "a.yaml"}},
			[]time.Duration{80 * ms, 150 * ms}},
		{"constant change fires every MaxWait", every(84, 30*ms, "nodes/a.yaml"),
			[]time.Duration{1000 * ms, 2020 * ms, 2540 * ms}},
		{"ignored files", []timedEvent{{0, "README.md"}, {10 * ms, ".git/x.yaml"}, {20 * ms, "nodes/.a.yaml.swp"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &Watcher{dir: "/inv", quiet: 50 * ms, maxWait: time.Second,
					log: slog.New(slog.DiscardHandler), c: make(chan struct{}, 1)}
				events, errs := make(chan fsnotify.Event), make(chan error)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- w.loop(ctx, events, errs) }()
				var got []time.Duration
				collected := make(chan struct{})
				start := time.Now()
				go func() {
					defer close(collected)
					for {
						select {
						case <-w.c:
							got = append(got, time.Since(start))
						case <-ctx.Done():
							return
						}
					}
				}()
				for _, ev := range tc.events {
					time.Sleep(ev.at - time.Since(start))
					events <- fsnotify.Event{Name: "/inv/" + ev.file, Op: fsnotify.Write}
				}
				time.Sleep(time.Hour)
				cancel()
				<-collected
				if err := <-done; err != context.Canceled {
					t.Errorf("loop returned %v, want context.Canceled", err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("trigger times (-want +got):\n%s", diff)
				}
			})
		})
	}
}

type timedEvent struct {
	at   time.Duration // since the first event
	file string        // relative to the watched directory
}

// TestRunTriggers checks the whole path through fsnotify and Run: a change
// gives a trigger.
func TestRunTriggers(t *testing.T) {
	dir := t.TempDir()
	w := start(t, dir)
	write(t, filepath.Join(dir, "nodes", "r1", "n01.yaml"), "a")
	waitTrigger(t, w, "creating nested directories with a file")
	write(t, filepath.Join(dir, "nodes", "r1", "n02.yaml"), "b")
	waitTrigger(t, w, "a file in a directory created after start")
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
