package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage"
)

// Refs other than the followed branch: metalsync keeps small records (the
// fleet lease) in refs of their own on the remote, outside refs/heads so
// that they show up in no branch list and trigger no CI.

func checkRefName(name plumbing.ReferenceName) error {
	s := name.String()
	if !strings.HasPrefix(s, "refs/") || strings.Count(s, "/") < 2 {
		return fmt.Errorf("ref %q: want a full name such as refs/metalsync/lease", s)
	}
	if err := name.Validate(); err != nil {
		return fmt.Errorf("ref %q: %w", s, err)
	}
	return nil
}

// Ref returns the hash the remote's ref name points at, or the zero hash
// when the remote has no such ref. It reads the advertised references only
// (like git ls-remote) and fetches nothing.
func (s *Source) Ref(ctx context.Context, name plumbing.ReferenceName) (plumbing.Hash, error) {
	if err := checkRefName(name); err != nil {
		return plumbing.ZeroHash, err
	}
	op := "read " + name.String()
	sess, ar, err := s.uploadSession(ctx)
	if err != nil {
		return plumbing.ZeroHash, s.remote.wrap(op, err)
	}
	if sess != nil {
		sess.Close()
	}
	return lookupRef(ar, name), nil
}

// FetchRef fetches the commit the remote's ref name points at, with its
// tree but no history (depth 1), into st and returns its hash, or the zero
// hash when the remote has no such ref. st is the caller's: for small
// records rewritten often (the fleet lease) a fresh memory.NewStorage()
// keeps them out of the Source's own store, which would otherwise collect
// one commit per rewrite (on disk too, with Config.Dir).
func (s *Source) FetchRef(ctx context.Context, name plumbing.ReferenceName, st storage.Storer) (plumbing.Hash, error) {
	if err := checkRefName(name); err != nil {
		return plumbing.ZeroHash, err
	}
	op := "fetch " + name.String()
	sess, ar, err := s.uploadSession(ctx)
	if err != nil {
		return plumbing.ZeroHash, s.remote.wrap(op, err)
	}
	if sess == nil {
		return plumbing.ZeroHash, nil
	}
	defer sess.Close()
	want := lookupRef(ar, name)
	if want.IsZero() || st.HasEncodedObject(want) == nil {
		return want, nil
	}
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	if ar.Capabilities.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	req.Wants = []plumbing.Hash{want}
	if ar.Capabilities.Supports(capability.Shallow) {
		_ = req.Capabilities.Set(capability.Shallow)
		req.Depth = packp.DepthCommits(1)
	}
	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		return plumbing.ZeroHash, s.remote.wrap(op, err)
	}
	defer resp.Close()
	if err := packfile.UpdateObjectStorage(st, sidebandReader(req.Capabilities, resp)); err != nil {
		return plumbing.ZeroHash, s.remote.wrap(op, err)
	}
	return want, nil
}

// uploadSession opens a fetch session and reads the advertised refs. An
// empty remote gives a nil session and nil refs.
func (s *Source) uploadSession(ctx context.Context) (transport.UploadPackSession, *packp.AdvRefs, error) {
	t, err := s.remote.transport(false)
	if err != nil {
		return nil, nil, err
	}
	sess, err := t.NewUploadPackSession(s.remote.ep, s.remote.auth)
	if err != nil {
		return nil, nil, err
	}
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		sess.Close()
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	return sess, ar, nil
}

func lookupRef(ar *packp.AdvRefs, name plumbing.ReferenceName) plumbing.Hash {
	if ar == nil {
		return plumbing.ZeroHash
	}
	refs, err := ar.AllReferences()
	if err != nil {
		return plumbing.ZeroHash
	}
	ref, err := refs.Reference(name)
	if err != nil || ref.Type() != plumbing.HashReference {
		return plumbing.ZeroHash
	}
	return ref.Hash()
}

// PushRef sets the remote's ref name to newHash if, and only if, it is
// still at old (the zero hash: the ref must not exist). A zero newHash
// deletes the ref. objects are the objects the remote lacks, read from st
// (see FetchRef) and sent as one pack (none for a delete). The update need not be a fast-forward; a
// remote that refuses non-fast-forward updates of name (git's
// receive.denyNonFastForwards) refuses it. A remote found elsewhere gives
// an error matching ErrRemoteMoved. Unlike Push, no local ref follows.
func (s *Source) PushRef(ctx context.Context, name plumbing.ReferenceName, old, newHash plumbing.Hash, st storer.EncodedObjectStorer, objects []plumbing.Hash) error {
	if err := checkRefName(name); err != nil {
		return err
	}
	var encode func(io.Writer, bool) error
	if !newHash.IsZero() {
		encode = func(w io.Writer, refDelta bool) error {
			_, err := packfile.NewEncoder(w, st, refDelta).Encode(objects, 0)
			return err
		}
	}
	return s.receivePack(ctx, "push "+name.String(), name, old, newHash, encode)
}
