package githistory

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage"
)

// Store gives exclusive access to an object store and the head to read
// history from; *gitsource.Source implements it.
type Store interface {
	WithHead(fn func(st storage.Storer, head plumbing.Hash) error) error
}

// Reader walks the history a Store holds.
type Reader struct{ Store Store }

// Walk is Walk over the store's head.
func (r Reader) Walk(ctx context.Context, paths []string, opt Options) (Result, error) {
	var res Result
	err := r.Store.WithHead(func(st storage.Storer, head plumbing.Hash) error {
		var err error
		res, err = Walk(ctx, st, head, paths, opt)
		return err
	})
	return res, err
}

// Dir is a repository on disk, read at its HEAD each time: a working
// directory followed by `serve --local`.
type Dir string

// IsRepo reports whether dir is the top of a Git repository.
func IsRepo(dir string) bool {
	_, err := git.PlainOpen(dir)
	return err == nil
}

// WithHead implements Store. A repository without commits has a zero head.
func (d Dir) WithHead(fn func(st storage.Storer, head plumbing.Hash) error) error {
	repo, err := git.PlainOpen(string(d))
	if err != nil {
		return fmt.Errorf("repository %s: %w", string(d), err)
	}
	var head plumbing.Hash
	ref, err := repo.Head()
	switch {
	case errors.Is(err, plumbing.ErrReferenceNotFound):
	case err != nil:
		return fmt.Errorf("repository %s: HEAD: %w", string(d), err)
	default:
		head = ref.Hash()
	}
	return fn(repo.Storer, head)
}
