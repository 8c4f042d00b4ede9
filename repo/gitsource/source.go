// Package gitsource follows one branch of a Git remote and reads the
// inventory from its commits.
//
// The repository is kept in memory (or in a bare repository on disk) with
// no worktree: files are read straight from tree objects through an io/fs.FS
// (see Tree), which stays cheap for tens of thousands of files where a
// checkout would not. Fetch and push speak the Git protocol directly over
// go-git's transports (https, ssh, git, file), asking only for the branches
// metalsync needs; Push is a compare-and-swap of one ref, used by the
// gitstatus package to write status commits.
//
// Only the history the daemon sees is kept: the first fetch is shallow
// (depth 1), and an in-memory store is rebuilt from a fresh shallow fetch
// after Config.CompactAfter new commits, so memory stays bounded while
// status commits accumulate.
//
// A Source is safe for concurrent use: every access to the object store
// holds its lock (also while a fetch transfers, so readers wait for it).
package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Config configures a Source.
type Config struct {
	// URL of the remote: https://host/org/repo.git, ssh://git@host/repo,
	// git@host:org/repo.git, git://host/repo or file:///path/repo.git.
	URL string
	// Branch to follow; "main" when empty.
	Branch string
	// Auth holds credentials; see Auth for which apply to which scheme.
	Auth Auth
	// Dir, when set, keeps objects in a bare repository at this path
	// (created when missing) so that a restart fetches only what is new.
	// Empty keeps everything in memory.
	Dir string
	// IgnoreDir is a top-level directory (the status directory the daemon
	// writes itself) whose changes alone do not make Run call onCommit.
	IgnoreDir string
	// CompactAfter bounds the history kept in memory: after this many new
	// commits (fetched or pushed) the in-memory store is dropped and the
	// next fetch starts again from a shallow copy of the head (default 100;
	// negative never compacts). Fetches are always shallow, so only commits
	// seen while running accumulate. Not used with Dir.
	CompactAfter int
	// Logger receives fetch failures in Run; nil discards.
	Logger *slog.Logger
}

// Source follows one branch of one remote.
type Source struct {
	remote    *remote
	branch    string
	ignoreDir string
	log       *slog.Logger

	compactAfter int // 0: never

	// mu guards st (go-git's storages are not safe for concurrent use),
	// last, added and pins.
	mu    sync.Mutex
	st    storage.Storer
	last  plumbing.Hash // head of the followed branch at the last Fetch
	added int           // commits added to st since it was made
	pins  int           // Pin holders: no compaction while > 0
}

// ErrRemoteMoved means a push found the remote branch somewhere other than
// where the caller built on: fetch, rebuild and try again.
var ErrRemoteMoved = errors.New("remote branch moved")

// ErrNoBranch means the remote has no such branch.
var ErrNoBranch = errors.New("branch not found")

// New checks cfg and prepares an empty repository; the first Fetch clones.
func New(cfg Config) (*Source, error) {
	r, err := parseRemote(cfg.URL, cfg.Auth)
	if err != nil {
		return nil, err
	}
	branch := cfg.Branch
	if branch == "" {
		branch = "main"
	}
	if err := checkBranchName(branch); err != nil {
		return nil, fmt.Errorf("remote %s: %w", r.name, err)
	}
	if strings.Contains(cfg.IgnoreDir, "/") {
		return nil, fmt.Errorf("ignore dir %q: must be a top-level directory name", cfg.IgnoreDir)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{remote: r, branch: branch, ignoreDir: cfg.IgnoreDir, log: log}
	if cfg.Dir == "" {
		s.st = memory.NewStorage()
		switch {
		case cfg.CompactAfter == 0:
			s.compactAfter = 100
		case cfg.CompactAfter > 0:
			s.compactAfter = cfg.CompactAfter
		}
	} else {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("repository dir: %w", err)
		}
		fst := filesystem.NewStorage(osfs.New(cfg.Dir), cache.NewObjectLRUDefault())
		// git.Init writes HEAD and config, so the directory is a bare
		// repository the git CLI can inspect too.
		if _, err := git.Init(fst, nil); err != nil && !errors.Is(err, git.ErrRepositoryAlreadyExists) {
			return nil, fmt.Errorf("repository dir %s: %w", cfg.Dir, err)
		}
		s.st = fst
	}
	return s, nil
}

func checkBranchName(b string) error {
	n := plumbing.NewBranchReferenceName(b)
	if strings.HasPrefix(b, "refs/") || strings.Contains(b, "..") || strings.ContainsAny(b, " ~^:?*[\\") ||
		strings.HasPrefix(b, "/") || strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".lock") {
		return fmt.Errorf("branch %q: not a valid branch name", b)
	}
	return n.Validate()
}

// Name is the remote's URL with any password removed.
func (s *Source) Name() string { return s.remote.name }

// Branch is the followed branch.
func (s *Source) Branch() string { return s.branch }

// Fetch brings the followed branch up to date and returns its head commit
// and whether it differs from the previous Fetch (the first successful
// Fetch always reports changed).
func (s *Source) Fetch(ctx context.Context) (commit string, changed bool, err error) {
	h, err := s.FetchBranch(ctx, s.branch)
	if err != nil {
		return "", false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = h != s.last
	s.last = h
	return h.String(), changed, nil
}

// FetchBranch brings one branch up to date and returns its head, or
// ErrNoBranch. It does not change what Fetch reports as changed.
func (s *Source) FetchBranch(ctx context.Context, branch string) (plumbing.Hash, error) {
	if err := checkBranchName(branch); err != nil {
		return plumbing.ZeroHash, err
	}
	op := "fetch " + branch
	t, err := s.remote.transport(false)
	if err != nil {
		return plumbing.ZeroHash, s.remote.wrap(op, err)
	}
	sess, err := t.NewUploadPackSession(s.remote.ep, s.remote.auth)
	if err != nil {
		return plumbing.ZeroHash, s.remote.wrap(op, err)
	}
	defer sess.Close()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return plumbing.ZeroHash, s.remote.wrap(op, ErrNoBranch)
		}
		return plumbing.ZeroHash, s.remote.wrap(op, err)
	}
	refs, err := ar.AllReferences()
	if err != nil {
		return plumbing.ZeroHash, s.remote.wrap(op, err)
	}
	ref, err := refs.Reference(plumbing.NewBranchReferenceName(branch))
	if err != nil {
		return plumbing.ZeroHash, s.remote.wrap(op, ErrNoBranch)
	}
	want := ref.Hash()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.compactAfter > 0 && s.added >= s.compactAfter && s.pins == 0 {
		// Trees handed out keep the old store alive until they are dropped.
		s.st = memory.NewStorage()
		s.added = 0
	}
	if s.st.HasEncodedObject(want) != nil {
		if err := s.fetchPackLocked(ctx, sess, ar, want); err != nil {
			return plumbing.ZeroHash, s.remote.wrap(op, err)
		}
		s.added++
	}
	if err := s.st.SetReference(plumbing.NewHashReference(trackingRef(branch), want)); err != nil {
		return plumbing.ZeroHash, s.remote.wrap(op, err)
	}
	return want, nil
}

// fetchPackLocked fetches want. The first fetch asks for depth 1: the
// daemon never needs history, only the head's tree. Our shallow boundary
// goes with every request, so the server does not assume we hold objects
// older than it.
func (s *Source) fetchPackLocked(ctx context.Context, sess transport.UploadPackSession, ar *packp.AdvRefs, want plumbing.Hash) error {
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	if ar.Capabilities.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	req.Wants = []plumbing.Hash{want}
	req.Haves = s.havesLocked()
	shallow := ar.Capabilities.Supports(capability.Shallow)
	if shallow {
		_ = req.Capabilities.Set(capability.Shallow)
		// Depth 1 only for the first fetch into an empty store: with a
		// depth, git's upload-pack resends the whole tree even to a client
		// that has most of it. Later fetches bring the commits since our
		// head (bounded by compaction).
		if len(req.Haves) == 0 {
			req.Depth = packp.DepthCommits(1)
		}
		var err error
		if req.Shallows, err = s.st.Shallow(); err != nil {
			return err
		}
	}
	resp, err := sess.UploadPack(ctx, req)
	if errors.Is(err, transport.ErrEmptyUploadPackRequest) {
		return nil
	}
	if err != nil {
		return err
	}
	defer resp.Close()
	if shallow && (len(resp.Shallows) > 0 || len(resp.Unshallows) > 0) {
		cur, err := s.st.Shallow()
		if err != nil {
			return err
		}
		set := map[plumbing.Hash]bool{}
		for _, h := range cur {
			set[h] = true
		}
		for _, h := range resp.Unshallows {
			delete(set, h)
		}
		for _, h := range resp.Shallows {
			set[h] = true
		}
		next := make([]plumbing.Hash, 0, len(set))
		for h := range set {
			next = append(next, h)
		}
		if err := s.st.SetShallow(next); err != nil {
			return err
		}
	}
	return packfile.UpdateObjectStorage(s.st, sidebandReader(req.Capabilities, resp))
}

// Pin keeps the object store from being compacted until the returned
// function is called: hold it while building objects until they are
// pushed (gitstatus does).
func (s *Source) Pin() (unpin func()) {
	s.mu.Lock()
	s.pins++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.pins--
			s.mu.Unlock()
		})
	}
}

// havesLocked lists commits we hold so the server sends only what is new:
// the tracked heads and a few of their ancestors (enough to find common
// ground after a force push of the last few commits).
func (s *Source) havesLocked() []plumbing.Hash {
	const perRef = 16
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	iter, err := s.st.IterReferences()
	if err != nil {
		return nil
	}
	_ = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference || !strings.HasPrefix(ref.Name().String(), "refs/remotes/origin/") {
			return nil
		}
		h := ref.Hash()
		for i := 0; i < perRef && !h.IsZero() && !seen[h]; i++ {
			c, err := object.GetCommit(s.st, h)
			if err != nil {
				break
			}
			seen[h] = true
			out = append(out, h)
			if len(c.ParentHashes) == 0 {
				break
			}
			h = c.ParentHashes[0]
		}
		return nil
	})
	return out
}

func trackingRef(branch string) plumbing.ReferenceName {
	return plumbing.ReferenceName("refs/remotes/origin/" + branch)
}

func sidebandReader(caps *capability.List, r io.Reader) io.Reader {
	switch {
	case caps.Supports(capability.Sideband64k):
		return sideband.NewDemuxer(sideband.Sideband64k, r)
	case caps.Supports(capability.Sideband):
		return sideband.NewDemuxer(sideband.Sideband, r)
	}
	return r
}

// Push sets the remote branch to newCommit if, and only if, it is still at
// old (the zero hash: the branch must not exist). objects are the objects
// the remote lacks (those created since old); they are sent as one pack.
// A remote found elsewhere gives an error matching ErrRemoteMoved. On
// success the local tracking ref follows.
func (s *Source) Push(ctx context.Context, branch string, old, newCommit plumbing.Hash, objects []plumbing.Hash) error {
	if err := checkBranchName(branch); err != nil {
		return err
	}
	op := "push " + branch
	// The pack is encoded under the lock, into memory: packs of status
	// objects are small, and the lock must not be held across the network
	// while the server is slow to read.
	err := s.receivePack(ctx, op, plumbing.NewBranchReferenceName(branch), old, newCommit, func(w io.Writer, refDelta bool) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, err := packfile.NewEncoder(w, s.st, refDelta).Encode(objects, 0)
		return err
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.added++
	if err := s.st.SetReference(plumbing.NewHashReference(trackingRef(branch), newCommit)); err != nil {
		return s.remote.wrap(op, err)
	}
	return nil
}

// receivePack updates ref name from old to newHash on the remote, sending
// the pack encode writes (nil for a delete). The command carries old:
// receive-pack refuses it under git's ref lock if someone pushed in
// between, which makes every push a compare-and-swap.
func (s *Source) receivePack(ctx context.Context, op string, name plumbing.ReferenceName, old, newHash plumbing.Hash, encode func(w io.Writer, refDelta bool) error) error {
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
	req.Commands = []*packp.Command{{Name: name, Old: old, New: newHash}}
	if encode != nil {
		var pack strings.Builder
		if err := encode(&pack, !caps.Supports(capability.OFSDelta)); err != nil {
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

// classifyPush maps git's refusals of a stale old value (the server's ref
// lock saw another update land first) to ErrRemoteMoved. Git reports them
// as text only.
func classifyPush(err error) error {
	msg := err.Error()
	for _, s := range []string{"cannot lock ref", "stale info", "non-fast-forward", "fetch first", "failed to lock", "failed to update ref"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("%w: %v", ErrRemoteMoved, err)
		}
	}
	return err
}

func short(h plumbing.Hash) string {
	if h.IsZero() {
		return "nothing"
	}
	return h.String()[:12]
}

// WithStorer runs fn with exclusive access to the object store, for
// building commits at the object level. fn must not keep st.
func (s *Source) WithStorer(fn func(st storage.Storer) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(s.st)
}

// SetIgnoreDir changes the top-level directory whose changes do not make a
// new spec ("" for none): the site file, read after the first fetch, says
// where status goes.
func (s *Source) SetIgnoreDir(dir string) error {
	if strings.Contains(dir, "/") {
		return fmt.Errorf("ignore dir %q: must be a top-level directory name", dir)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignoreDir = dir
	return nil
}

// WithHead runs fn like WithStorer, with the head of the followed branch
// as last fetched or pushed (zero before either). The store holds history
// only from the first, shallow, fetch on.
func (s *Source) WithHead(fn func(st storage.Storer, head plumbing.Hash) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var head plumbing.Hash
	if ref, err := s.st.Reference(trackingRef(s.branch)); err == nil {
		head = ref.Hash()
	}
	return fn(s.st, head)
}

// Tree returns a read-only file system over the tree of commit.
func (s *Source) Tree(commit string) (fs.FS, error) {
	h, err := parseHash(commit)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	st := s.st
	c, err := object.GetCommit(st, h)
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit, err)
	}
	return newTreeFS(s, st, c.TreeHash, c.Committer.When), nil
}

func parseHash(commit string) (plumbing.Hash, error) {
	if len(commit) != 40 || strings.Trim(commit, "0123456789abcdef") != "" {
		return plumbing.ZeroHash, fmt.Errorf("commit %q: not a full hex object name", commit)
	}
	return plumbing.NewHash(commit), nil
}

// Spec returns SpecHash of commit with the configured IgnoreDir: two
// commits with the same Spec have the same desired state.
func (s *Source) Spec(commit string) (plumbing.Hash, error) {
	h, err := parseHash(commit)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return SpecHash(s.st, h, s.ignoreDir)
}

// SpecHash identifies the content of commit outside the top-level
// directory ignore: two commits with the same SpecHash have the same spec.
// The caller must hold the store (WithStorer).
func SpecHash(st storer.EncodedObjectStorer, commit plumbing.Hash, ignore string) (plumbing.Hash, error) {
	if commit.IsZero() {
		return plumbing.ZeroHash, nil
	}
	c, err := object.GetCommit(st, commit)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("commit %s: %w", commit, err)
	}
	if ignore == "" {
		return c.TreeHash, nil
	}
	t, err := object.GetTree(st, c.TreeHash)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("commit %s: tree: %w", commit, err)
	}
	// Hash the root entries other than ignore: cheap, as subtrees are
	// compared by their hashes.
	h := plumbing.NewHasher(plumbing.TreeObject, 0)
	for _, e := range t.Entries {
		if e.Name == ignore {
			continue
		}
		fmt.Fprintf(&h, "%o %s\x00", e.Mode, e.Name)
		h.Write(e.Hash[:])
	}
	return h.Sum(), nil
}
