// Package localdir follows an inventory in a local working directory
// (`metalsync serve --local`): file events trigger a re-read of the whole
// tree, and a revision is named by the digest of its spec files, so the
// status files the daemon writes into the same directory do not count.
package localdir

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"metalsync.dev/metalsync/repo/localwatch"
	"metalsync.dev/metalsync/schema"
)

// Source follows a working directory. Its Run has the shape of the
// daemon's revision source.
type Source struct {
	Dir string
	// Logger receives read and watch errors; nil discards.
	Logger *slog.Logger
}

// Run delivers the directory's revision now, then again whenever a file
// event or trigger shows that its spec files changed, until ctx ends.
// onRevision runs on Run's goroutine, so deliveries never overlap.
func (s Source) Run(ctx context.Context, trigger <-chan struct{}, onRevision func(ctx context.Context, rev string, fsys fs.FS)) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := localwatch.New(localwatch.Config{Dir: s.Dir, Logger: log})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		_ = w.Run(wctx)
	}()
	defer func() {
		cancel()
		<-watched
	}()
	last := ""
	deliver := func() {
		fsys := os.DirFS(s.Dir)
		rev, err := Revision(fsys)
		if err != nil {
			log.Warn("read local inventory", "dir", s.Dir, "err", err)
			return
		}
		if rev != last {
			last = rev
			onRevision(ctx, rev, fsys)
		}
	}
	deliver()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.C():
			deliver()
		case <-trigger:
			deliver()
		}
	}
}

// Revision names a local revision by the content of its spec files: the
// .yaml and .yml files outside the status directory and hidden directories.
func Revision(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || p == schema.DefaultStatusDir) {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml") {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("local revision: %w", err)
	}
	return "local-" + hex.EncodeToString(h.Sum(nil))[:12], nil
}
