// Package localwatch turns edits in a local inventory directory into
// debounced triggers, for people iterating on a laptop without pushing.
//
// Events are only a hint: after a trigger the consumer re-reads the whole
// tree (os.DirFS), because fsnotify is not recursive, reports stale paths
// after a directory rename and drops events when its queue overflows. In
// daemon mode the Git remote is the source of truth; use gitsource there.
package localwatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Config configures a Watcher.
type Config struct {
	// Dir is the working directory to watch, recursively.
	Dir string
	// Quiet is how long the tree must stay still before a trigger
	// (default 300ms); MaxWait bounds the delay under constant change
	// (default 3s).
	Quiet   time.Duration
	MaxWait time.Duration
	// Logger receives watch errors; nil discards.
	Logger *slog.Logger
}

// Watcher watches a directory tree.
type Watcher struct {
	dir     string
	quiet   time.Duration
	maxWait time.Duration
	log     *slog.Logger
	fsw     *fsnotify.Watcher
	c       chan struct{}
}

// New starts watching cfg.Dir and every directory below it (except .git).
// Call Run to process events, and Close if Run is never called.
func New(cfg Config) (*Watcher, error) {
	if cfg.Dir == "" {
		return nil, errors.New("localwatch: no directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("localwatch: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("localwatch: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("localwatch: %s is not a directory", dir)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("localwatch: %w", err)
	}
	w := &Watcher{dir: dir, quiet: cfg.Quiet, maxWait: cfg.MaxWait, log: cfg.Logger, fsw: fsw, c: make(chan struct{}, 1)}
	if w.quiet <= 0 {
		w.quiet = 300 * time.Millisecond
	}
	if w.maxWait <= 0 {
		w.maxWait = 3 * time.Second
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if _, err := w.resync(); err != nil {
		fsw.Close()
		return nil, err
	}
	return w, nil
}

// C delivers a value after each settled burst of relevant changes. It has
// a buffer of one: triggers while the consumer is busy coalesce. It can be
// passed to gitsource-style loops as their trigger channel.
func (w *Watcher) C() <-chan struct{} { return w.c }

// Close stops watching. Run closes the watcher itself when it returns.
func (w *Watcher) Close() error { return w.fsw.Close() }

// Run processes events until ctx is done, then closes the watcher and
// returns ctx's error.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.fsw.Close()
	return w.loop(ctx, w.fsw.Events, w.fsw.Errors)
}

// loop handles events and errors until ctx is done, and sends on w.c once
// the relevant ones have stopped for w.quiet, or w.maxWait after the first
// of a burst that does not stop.
func (w *Watcher) loop(ctx context.Context, events <-chan fsnotify.Event, errs <-chan error) error {
	var quiet, max <-chan time.Time
	var quietT, maxT *time.Timer
	stop := func() {
		if quietT != nil {
			quietT.Stop()
			maxT.Stop()
		}
		quiet, max, quietT, maxT = nil, nil, nil, nil
	}
	defer stop()
	changed := func() {
		if quietT == nil {
			quietT = time.NewTimer(w.quiet)
			maxT = time.NewTimer(w.maxWait)
			quiet, max = quietT.C, maxT.C
			return
		}
		quietT.Reset(w.quiet)
	}
	fire := func() {
		stop()
		select {
		case w.c <- struct{}{}:
		default:
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-quiet:
			fire()
		case <-max:
			fire()
		case err, ok := <-errs:
			if !ok {
				return errors.New("localwatch: watcher closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: watch whatever exists now and let the
				// consumer re-read everything.
				w.log.Warn("file events overflowed; rescanning", "dir", w.dir)
				if _, err := w.resync(); err != nil {
					w.log.Error("rescan", "dir", w.dir, "err", err)
				}
				changed()
				continue
			}
			w.log.Error("watch", "dir", w.dir, "err", err)
		case ev, ok := <-events:
			if !ok {
				return errors.New("localwatch: watcher closed")
			}
			if w.handle(ev) {
				changed()
			}
		}
	}
}

// handle keeps the watch list in step with the tree and says whether ev
// may have changed the inventory.
func (w *Watcher) handle(ev fsnotify.Event) bool {
	rel, err := filepath.Rel(w.dir, ev.Name)
	if err != nil || ignored(rel) {
		return false
	}
	switch {
	case ev.Has(fsnotify.Create):
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			// A new directory (mkdir -p, mv in, git checkout): files may
			// have been created in it before its watch existed, so scan.
			found, err := w.addTree(ev.Name)
			if err != nil {
				w.log.Error("watch new directory", "path", ev.Name, "err", err)
				return true
			}
			return found
		}
	case ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove):
		// A renamed directory keeps its watch under the old name, and its
		// files are reported with stale paths: rebuild the watch list. A
		// path without a known extension may have been a directory full of
		// inventory files.
		if _, err := w.resync(); err != nil {
			w.log.Error("rescan", "dir", w.dir, "err", err)
		}
		if !relevant(rel) && filepath.Ext(rel) == "" {
			return true
		}
	}
	return relevant(rel)
}

// resync watches every directory of the tree, drops watches whose
// directory is gone, and reports whether any inventory file exists.
func (w *Watcher) resync() (bool, error) {
	want := map[string]bool{}
	found := false
	err := filepath.WalkDir(w.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != w.dir && errors.Is(err, fs.ErrNotExist) {
				return nil // vanished while walking
			}
			return err
		}
		rel, _ := filepath.Rel(w.dir, p)
		if rel != "." && ignored(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			want[p] = true
		} else if relevant(rel) {
			found = true
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("localwatch: scan %s: %w", w.dir, err)
	}
	for _, p := range w.fsw.WatchList() {
		if !want[p] {
			_ = w.fsw.Remove(p)
		}
	}
	watched := map[string]bool{}
	for _, p := range w.fsw.WatchList() {
		watched[p] = true
	}
	for p := range want {
		if !watched[p] {
			if err := w.fsw.Add(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return found, fmt.Errorf("localwatch: watch %s: %w", p, err)
			}
		}
	}
	return found, nil
}

// addTree watches dir and its subdirectories and reports whether any
// inventory file is already in them.
func (w *Watcher) addTree(dir string) (bool, error) {
	found := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(w.dir, p)
		if ignored(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if err := w.fsw.Add(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		} else if relevant(rel) {
			found = true
		}
		return nil
	})
	return found, err
}

// relevant is true for files the inventory is made of.
func relevant(rel string) bool {
	switch strings.ToLower(filepath.Ext(rel)) {
	case ".yaml", ".yml", ".cue":
		return !ignored(rel)
	}
	return false
}

// ignored is true for paths under .git and for editors' temporary files.
func ignored(rel string) bool {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for _, p := range parts {
		if p == ".git" {
			return true
		}
	}
	base := parts[len(parts)-1]
	switch {
	case strings.HasPrefix(base, ".#"), // emacs lock
		strings.HasPrefix(base, "#") && strings.HasSuffix(base, "#"), // emacs autosave
		strings.HasSuffix(base, "~"),                                 // backups
		strings.HasPrefix(base, ".") && (strings.HasSuffix(base, ".swp") || strings.HasSuffix(base, ".swo") ||
			strings.HasSuffix(base, ".swx") || strings.HasSuffix(base, ".kate-swp")), // vim, kate
		base == "4913", // vim's write test
		strings.HasPrefix(base, ".goutputstream-"),
		strings.HasSuffix(base, ".tmp"),
		strings.HasPrefix(base, ".") && (strings.Contains(base, ".yaml.") || strings.Contains(base, ".yml.")): // atomic-save temps like .x.yaml.12345
		return true
	}
	return false
}
