package lease

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/memory"

	"metalsync.dev/metalsync/repo/gitsource"
)

// RefName is the ref of the inventory remote that holds the lease.
const RefName = plumbing.ReferenceName("refs/metalsync/lease")

// ForRemote returns the lease kept in src's remote (RefName).
func ForRemote(src *gitsource.Source) *Lease {
	return New(RemoteStore(src), Options{})
}

// RemoteStore keeps the record in RefName of src's remote: a parentless
// commit of the empty tree whose message is a summary line, a blank line
// and the record as JSON. Every change is a compare-and-swap push, so the
// remote's own ref lock decides between concurrent takers; a delete pushes
// the zero hash. Each record replaces the last without history (git's
// receive.denyNonFastForwards applies to branches only); a remote whose
// hooks refuse pushes to refs/metalsync/ cannot hold the lease.
func RemoteStore(src *gitsource.Source) Store { return &gitStore{src: src} }

type gitStore struct{ src *gitsource.Source }

func (g *gitStore) String() string { return RefName.String() + " of " + g.src.Name() }

// Every Load and Swap works in a fresh in-memory store: the records are
// tiny, need no history, and would otherwise pile up in the Source's store
// at every renewal.

func (g *gitStore) Load(ctx context.Context) (*Record, Version, error) {
	st := memory.NewStorage()
	h, err := g.src.FetchRef(ctx, RefName, st)
	if err != nil || h.IsZero() {
		return nil, "", err
	}
	c, err := object.GetCommit(st, h)
	if err != nil {
		return nil, "", fmt.Errorf("commit %s: %w", h, err)
	}
	body := c.Message
	if _, after, ok := strings.Cut(body, "\n\n"); ok {
		body = after
	}
	rec, err := parseRecord([]byte(body))
	if err != nil {
		return nil, "", fmt.Errorf("commit %s: %w (remove it with: git push <remote> :%s)", h, err, RefName)
	}
	return rec, Version(h.String()), nil
}

func (g *gitStore) Swap(ctx context.Context, old Version, rec *Record) (Version, error) {
	oldHash := plumbing.ZeroHash
	if old != "" {
		oldHash = plumbing.NewHash(string(old))
	}
	st := memory.NewStorage()
	if rec == nil {
		if err := g.src.PushRef(ctx, RefName, oldHash, plumbing.ZeroHash, st, nil); err != nil {
			return "", classify(err)
		}
		return "", nil
	}
	commit, objects, err := writeRecord(st, rec)
	if err != nil {
		return "", fmt.Errorf("lease commit: %w", err)
	}
	if commit == oldHash {
		// The same record again (renewed twice within a second): nothing
		// to push, but the ref must still be where the caller saw it.
		cur, err := g.src.Ref(ctx, RefName)
		if err != nil {
			return "", err
		}
		if cur != oldHash {
			return "", fmt.Errorf("%w: %s moved", ErrConflict, RefName)
		}
		return old, nil
	}
	if err := g.src.PushRef(ctx, RefName, oldHash, commit, st, objects); err != nil {
		return "", classify(err)
	}
	return Version(commit.String()), nil
}

// writeRecord stores rec as a parentless commit of the empty tree and
// returns the commit and the objects to push.
func writeRecord(st storage.Storer, rec *Record) (plumbing.Hash, []plumbing.Hash, error) {
	tree := st.NewEncodedObject()
	if err := (&object.Tree{}).Encode(tree); err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("encode tree: %w", err)
	}
	treeHash, err := st.SetEncodedObject(tree)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("store tree: %w", err)
	}
	sig := object.Signature{Name: "metalsync", Email: "metalsync@localhost", When: rec.Since}
	c := &object.Commit{
		Author:    sig,
		Committer: sig,
		Message:   fmt.Sprintf("lease %s: %s\n\n%s", rec.ID, rec.Holder, rec.marshal()),
		TreeHash:  treeHash,
	}
	obj := st.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("encode commit: %w", err)
	}
	commit, err := st.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("store commit: %w", err)
	}
	return commit, []plumbing.Hash{commit, treeHash}, nil
}

func classify(err error) error {
	if errors.Is(err, gitsource.ErrRemoteMoved) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}
