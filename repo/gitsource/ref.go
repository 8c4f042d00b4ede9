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
	"github.com/go-git/go-git/v5/plumbing/transport"
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

// FetchRef fetches the object the remote's ref name points at into the
// store (commit and tree; the history behind it only as far as a shallow
// fetch brings) and returns its hash, or the zero hash when the remote has
// no such ref. Read the object with WithStorer.
func (s *Source) FetchRef(ctx context.Context, name plumbing.ReferenceName) (plumbing.Hash, error) {
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
	if want.IsZero() {
		return plumbing.ZeroHash, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.HasEncodedObject(want) != nil {
		if err := s.fetchPackLocked(ctx, sess, ar, want); err != nil {
			return plumbing.ZeroHash, s.remote.wrap(op, err)
		}
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
// deletes the ref. objects are the objects the remote lacks, sent as one
// pack (none for a delete). The update need not be a fast-forward; a
// remote that refuses non-fast-forward updates of name (git's
// receive.denyNonFastForwards) refuses it. A remote found elsewhere gives
// an error matching ErrRemoteMoved. Unlike Push, no local ref follows.
func (s *Source) PushRef(ctx context.Context, name plumbing.ReferenceName, old, newHash plumbing.Hash, objects []plumbing.Hash) error {
	if err := checkRefName(name); err != nil {
		return err
	}
	op := "push " + name.String()
	t, err := s.remote.transport(true)
	if err != nil {
		return s.remote.wrap(op, err)
	}
	sess, err := t.NewReceivePackSession(s.remote.ep, s.remote.auth)
	if err != nil {
		return s.remote.wrap(op, err)
	}
	defer sess.Close()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return s.remote.wrap(op, err)
	}
	if cur := lookupRef(ar, name); cur != old {
		return s.remote.wrap(op, fmt.Errorf("%w: at %s, expected %s", ErrRemoteMoved, short(cur), short(old)))
	}
	caps := capability.NewList()
	if ar != nil {
		caps = ar.Capabilities
	}
	if newHash.IsZero() && !caps.Supports(capability.DeleteRefs) {
		return s.remote.wrap(op, errors.New("the remote does not allow deleting refs"))
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(caps)
	// As in Push, old makes receive-pack check the ref under its lock.
	req.Commands = []*packp.Command{{Name: name, Old: old, New: newHash}}
	if !newHash.IsZero() {
		var pack strings.Builder
		s.mu.Lock()
		_, err = packfile.NewEncoder(&pack, s.st, !caps.Supports(capability.OFSDelta)).Encode(objects, 0)
		s.mu.Unlock()
		if err != nil {
			return s.remote.wrap(op, fmt.Errorf("encode pack: %w", err))
		}
		req.Packfile = io.NopCloser(strings.NewReader(pack.String()))
	}
	rs, err := sess.ReceivePack(ctx, req)
	if err != nil {
		return s.remote.wrap(op, classifyPush(err))
	}
	if rs != nil {
		if err := rs.Error(); err != nil {
			return s.remote.wrap(op, classifyPush(err))
		}
	}
	return nil
}
