package gitsource_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/memory"

	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
)

// Refs outside refs/heads: read what a person's git wrote, replace it by
// compare-and-swap (not fast-forward), refuse a stale swap, delete.
func TestRefReadAndCompareAndSwap(t *testing.T) {
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", seedFiles)
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const name = plumbing.ReferenceName("refs/metalsync/test")

	if h, err := src.Ref(ctx, name); err != nil || !h.IsZero() {
		t.Fatalf("Ref of a missing ref = %s, %v; want zero, nil", h, err)
	}
	// A person writes the ref: a parentless commit of the empty tree.
	emptyTree := gittest.Git(t, bare, "hash-object", "-t", "tree", "-w", "/dev/null")
	theirs := gittest.Git(t, bare, "commit-tree", "-m", "record one", emptyTree)
	gittest.Git(t, bare, "update-ref", name.String(), theirs)

	if h, err := src.Ref(ctx, name); err != nil || h.String() != theirs {
		t.Fatalf("Ref = %s, %v; want %s", h, err, theirs)
	}
	st := memory.NewStorage()
	h, err := src.FetchRef(ctx, name, st)
	if err != nil || h.String() != theirs {
		t.Fatalf("FetchRef = %s, %v; want %s", h, err, theirs)
	}
	c, err := object.GetCommit(st, h)
	if err != nil || strings.TrimSpace(c.Message) != "record one" {
		t.Fatalf("fetched commit: %v, %v", c, err)
	}
	// Nothing went into the source's own store.
	err = src.WithStorer(func(own storage.Storer) error {
		if own.HasEncodedObject(h) == nil {
			return errors.New("the ref's commit is in the source's store")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Replace it with another parentless commit (no fast-forward).
	mine := gittest.Git(t, bare, "commit-tree", "-m", "record two", emptyTree)
	if err := src.PushRef(ctx, name, plumbing.ZeroHash, plumbing.NewHash(mine), st, nil); !errors.Is(err, gitsource.ErrRemoteMoved) {
		t.Fatalf("create over an existing ref = %v, want ErrRemoteMoved", err)
	}
	if err := src.PushRef(ctx, name, h, plumbing.NewHash(mine), st, nil); err != nil {
		t.Fatalf("swap: %v", err)
	}
	if got := gittest.Git(t, bare, "rev-parse", name.String()); got != mine {
		t.Fatalf("remote ref = %s, want %s", got, mine)
	}
	// A stale delete leaves it; a current one removes it.
	if err := src.PushRef(ctx, name, h, plumbing.ZeroHash, st, nil); !errors.Is(err, gitsource.ErrRemoteMoved) {
		t.Fatalf("stale delete = %v, want ErrRemoteMoved", err)
	}
	if err := src.PushRef(ctx, name, plumbing.NewHash(mine), plumbing.ZeroHash, st, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := gittest.TryGit(bare, "rev-parse", "--verify", "--quiet", name.String()); err == nil {
		t.Fatal("ref still there after delete")
	}
	if err := src.PushRef(ctx, "refs/heads", plumbing.ZeroHash, plumbing.ZeroHash, st, nil); err == nil {
		t.Fatal("PushRef accepted a ref name without a leaf")
	}
}
