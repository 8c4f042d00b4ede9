// Package gitstatus writes node status files back to the inventory
// repository: one commit per batch, built at the object level on top of
// the current remote head, touching only the status directory, and pushed
// with compare-and-swap so that a person's commit is never lost or
// rewritten.
//
// Committer makes one commit from a batch of changes. Writer is the
// coalescing front the daemon uses: Update from any goroutine, flushed as one
// commit at most every interval, on Flush and on shutdown.
package gitstatus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"

	"metalsync.dev/metalsync/internal/backoff"
	"metalsync.dev/metalsync/internal/clock"
	"metalsync.dev/metalsync/repo/gitsource"
)

// Identity is the bot's author and committer.
type Identity struct {
	Name  string
	Email string
}

// Config configures a Committer.
type Config struct {
	// Source is the repository to write to (shared with the reader, so the
	// objects fetched to read the spec are the ones commits build on).
	Source *gitsource.Source
	// Branch receives status commits; empty means the followed branch.
	// A separate branch (site setting status.branch) is created on first
	// write, holding only status files.
	Branch string
	// Dir is the status directory inside the branch ("status"; may be
	// nested, "a/b"). It may be empty only on a separate branch, which then
	// holds the files at its root.
	Dir string
	// Author signs the commits; both fields are required.
	Author Identity
	// MaxAttempts bounds pushes per commit when the remote keeps moving
	// (default 10).
	MaxAttempts int
	// Clock gives commit times and waits between pushes; the wall clock
	// when nil.
	Clock clock.Clock
	// Logger receives retries; nil discards.
	Logger *slog.Logger
}

// Change is the new content of one node's status file.
type Change struct {
	Node string
	// Dir is the sub-directory of the status directory the file lives in
	// ("rack1", "dc1/rack1"), mirroring the node's place under nodes/ so
	// that no tree grows with the whole fleet; "" is the status directory
	// itself. A node that moves gets a nil Data change at its old Dir.
	Dir string
	// File, when set, names a file of the status directory that is not a
	// node's status (the daemon's report of an invalid inventory); it must
	// not end in .yaml or .yml, so that no reader takes it for a node.
	// Node is then only the label in the commit message.
	File string
	// Data is the file content; nil deletes the file (a forgotten node).
	Data []byte
	// Summary describes the change for the commit message, like
	// "available→active"; empty uses "updated" or "removed".
	Summary string
}

// Result says what a commit did.
type Result struct {
	// Commit is the pushed status commit; empty when nothing changed.
	Commit string
	// Base is the remote head the commit was built on (or, when nothing
	// changed, the head that already had these files).
	Base string
	// Changed lists the nodes whose files the commit changed, sorted.
	Changed []string
	// Retries is how many pushes found the remote moved.
	Retries int
	// SpecMoved is true when the files outside the status directory differ
	// from those at the base of this Committer's previous commit: a person
	// pushed, and the daemon should fetch and re-plan. Always false with a
	// separate status branch.
	SpecMoved bool
}

// Stats are running totals, safe to read at any time.
type Stats struct {
	Commits     uint64 // status commits pushed
	Unchanged   uint64 // batches that changed no file, so made no commit
	PushRetries uint64 // pushes that found the remote moved and were redone
	Failures    uint64 // batches that ended in an error
}

// Committer builds and pushes status commits.
type Committer struct {
	src         *gitsource.Source
	branch      string
	sameBranch  bool
	dir         []string // path of the status directory, split
	topDir      string   // first element of dir, ignored by the spec hash
	author      Identity
	maxAttempts int
	clock       clock.Clock
	log         *slog.Logger

	commits, unchanged, retries, failures atomic.Uint64

	mu       sync.Mutex // serialises Commit; guards lastSpec
	lastSpec plumbing.Hash
}

// New checks cfg and returns a Committer.
func New(cfg Config) (*Committer, error) {
	if cfg.Source == nil {
		return nil, errors.New("status writer: no source")
	}
	if cfg.Author.Name == "" || cfg.Author.Email == "" {
		return nil, errors.New("status writer: author name and email are required")
	}
	c := &Committer{
		src:         cfg.Source,
		branch:      cfg.Branch,
		author:      cfg.Author,
		maxAttempts: cfg.MaxAttempts,
		clock:       clock.Or(cfg.Clock),
		log:         cfg.Logger,
	}
	if c.branch == "" || c.branch == cfg.Source.Branch() {
		c.branch = cfg.Source.Branch()
		c.sameBranch = true
	}
	if cfg.Dir != "" {
		if !validDir(cfg.Dir) {
			return nil, fmt.Errorf("status writer: directory %q is not a clean relative path", cfg.Dir)
		}
		c.dir = strings.Split(cfg.Dir, "/")
		c.topDir = c.dir[0]
	} else if c.sameBranch {
		return nil, errors.New("status writer: a status directory is required on the spec branch")
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = 10
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func validDir(d string) bool {
	if path.Clean(d) != d || strings.HasPrefix(d, "/") || d == "." {
		return false
	}
	for _, p := range strings.Split(d, "/") {
		if p == ".." || p == ".git" {
			return false
		}
	}
	return true
}

// ValidNode checks that a node name can be a file name in the status
// directory.
func ValidNode(node string) error {
	if node == "" || node == "." || node == ".." || strings.ContainsAny(node, "/\\\x00") || strings.HasPrefix(node, ".") {
		return fmt.Errorf("node %q: not usable as a status file name", node)
	}
	return nil
}

// key is the change's path relative to the status directory.
func (ch Change) key() string {
	if ch.Dir == "" {
		return ch.fileName()
	}
	return ch.Dir + "/" + ch.fileName()
}

// fileName is the change's file name in its directory.
func (ch Change) fileName() string {
	if ch.File != "" {
		return ch.File
	}
	return ch.Node + ".yaml"
}

// validFile checks a non-node file name of the status directory.
func validFile(name string) error {
	if err := ValidNode(name); err != nil {
		return err
	}
	if strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		return fmt.Errorf("file %q: a non-node status file must not look like a node's (.yaml)", name)
	}
	return nil
}

// Stats returns the running totals.
func (c *Committer) Stats() Stats {
	return Stats{
		Commits:     c.commits.Load(),
		Unchanged:   c.unchanged.Load(),
		PushRetries: c.retries.Load(),
		Failures:    c.failures.Load(),
	}
}

// Commit writes changes as one commit on top of the remote head and pushes
// it. When the remote moves in between, it fetches, rebuilds the same
// changes on the new head and tries again, with jittered backoff, up to
// MaxAttempts. A batch that changes no file makes no commit.
func (c *Committer) Commit(ctx context.Context, changes []Change) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The objects built must stay in the store until they are pushed.
	defer c.src.Pin()()
	res, err := c.commitLocked(ctx, changes)
	if err != nil {
		c.failures.Add(1)
		return res, fmt.Errorf("status commit: %w", err)
	}
	return res, nil
}

func (c *Committer) commitLocked(ctx context.Context, changes []Change) (Result, error) {
	changes, err := normalise(changes)
	if err != nil || len(changes) == 0 {
		return Result{}, err
	}
	var res Result
	for attempt := 1; ; attempt++ {
		head, err := c.src.FetchBranch(ctx, c.branch)
		if errors.Is(err, gitsource.ErrNoBranch) && !c.sameBranch {
			head, err = plumbing.ZeroHash, nil // first write creates the branch
		}
		if err != nil {
			return res, err
		}
		res.Base = head.String()
		var b built
		err = c.src.WithStorer(func(st storage.Storer) error {
			var err error
			b, err = c.build(st, head, changes)
			return err
		})
		if err != nil {
			return res, err
		}
		if c.sameBranch {
			if !c.lastSpec.IsZero() && b.spec != c.lastSpec {
				res.SpecMoved = true
			}
		}
		if b.commit.IsZero() {
			c.unchanged.Add(1)
			c.lastSpec = b.spec
			return res, nil
		}
		err = c.src.Push(ctx, c.branch, head, b.commit, b.objects)
		if err == nil {
			c.commits.Add(1)
			c.lastSpec = b.spec
			res.Commit = b.commit.String()
			res.Changed = b.changed
			return res, nil
		}
		if !errors.Is(err, gitsource.ErrRemoteMoved) {
			return res, err
		}
		if attempt >= c.maxAttempts {
			return res, fmt.Errorf("remote kept moving after %d attempts: %w", attempt, err)
		}
		res.Retries++
		c.retries.Add(1)
		// 20ms doubling per attempt up to 1s, jittered so that racing
		// writers spread out.
		wait := backoff.Policy{Base: 20 * time.Millisecond, Max: time.Second}.Jittered(attempt - 1)
		c.log.Debug("status push raced, rebuilding", "branch", c.branch, "attempt", attempt, "retry_in", wait)
		if err := c.clock.Sleep(ctx, wait); err != nil {
			return res, err
		}
	}
}

// normalise checks node names and keeps the last change per node, sorted.
func normalise(changes []Change) ([]Change, error) {
	byNode := make(map[string]Change, len(changes))
	for _, ch := range changes {
		if err := ValidNode(ch.Node); err != nil {
			return nil, err
		}
		if ch.File != "" {
			if err := validFile(ch.File); err != nil {
				return nil, err
			}
		}
		if ch.Dir != "" && !validDir(ch.Dir) {
			return nil, fmt.Errorf("node %s: status sub-directory %q is not a clean relative path", ch.Node, ch.Dir)
		}
		byNode[ch.key()] = ch
	}
	out := make([]Change, 0, len(byNode))
	for _, ch := range byNode {
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out, nil
}

// built is a commit made locally, not yet pushed.
type built struct {
	commit  plumbing.Hash   // zero when the tree did not change
	objects []plumbing.Hash // new objects the remote lacks
	changed []string        // nodes whose file changed
	spec    plumbing.Hash   // SpecHash of the base
}

// build writes the objects of a commit that applies changes to base's tree.
// Only the status directory's tree and the trees above it are rewritten;
// every other entry is reused by hash.
func (c *Committer) build(st storage.Storer, base plumbing.Hash, changes []Change) (built, error) {
	rootHash, spec, err := c.baseTree(st, base)
	if err != nil {
		return built{}, err
	}
	ed := &editor{st: st}
	newRoot, err := c.rewrite(st, rootHash, c.dir, func(entries map[string]object.TreeEntry) error {
		return ed.applyByDir(c, entries, changes)
	}, &ed.objects)
	if err != nil {
		return built{}, err
	}
	if newRoot == rootHash || len(ed.changed) == 0 {
		return built{spec: spec}, nil
	}
	if newRoot.IsZero() { // everything removed from a status branch
		if newRoot, err = writeTree(st, nil); err != nil {
			return built{}, err
		}
		ed.objects = append(ed.objects, newRoot)
	}
	commit, err := c.writeCommit(st, base, newRoot, Message(ed.summaries))
	if err != nil {
		return built{}, err
	}
	return built{commit: commit, objects: append(ed.objects, commit), changed: ed.changed, spec: spec}, nil
}

// baseTree returns the root tree of base and, on the spec branch, the
// hash of its spec (zero hashes for a branch not created yet).
func (c *Committer) baseTree(st storage.Storer, base plumbing.Hash) (root, spec plumbing.Hash, err error) {
	if base.IsZero() {
		return plumbing.ZeroHash, plumbing.ZeroHash, nil
	}
	bc, err := object.GetCommit(st, base)
	if err != nil {
		return plumbing.ZeroHash, plumbing.ZeroHash, fmt.Errorf("commit %s: %w", base, err)
	}
	if c.sameBranch {
		if spec, err = gitsource.SpecHash(st, base, c.topDir); err != nil {
			return plumbing.ZeroHash, plumbing.ZeroHash, err
		}
	}
	return bc.TreeHash, spec, nil
}

// editor applies changes to trees and records what it did.
type editor struct {
	st        storage.Storer
	objects   []plumbing.Hash // new objects the remote lacks
	changed   []string        // nodes whose file changed
	summaries []string        // commit message lines
}

// applyByDir edits the status directory's entries: changes at its root
// directly, the others in their sub-directories, in sorted order.
func (ed *editor) applyByDir(c *Committer, entries map[string]object.TreeEntry, changes []Change) error {
	byDir := map[string][]Change{}
	for _, ch := range changes {
		byDir[ch.Dir] = append(byDir[ch.Dir], ch)
	}
	for _, d := range slices.Sorted(maps.Keys(byDir)) {
		group := byDir[d]
		if d == "" {
			if err := ed.apply(entries, group); err != nil {
				return err
			}
			continue
		}
		if err := ed.applySub(c, entries, d, group); err != nil {
			return err
		}
	}
	return nil
}

// applySub edits sub-directory d of the status directory, whose entries
// are given, and replaces (or drops, when left empty) its top entry.
func (ed *editor) applySub(c *Committer, entries map[string]object.TreeEntry, d string, group []Change) error {
	segs := strings.Split(d, "/")
	sub := plumbing.ZeroHash
	if e, ok := entries[segs[0]]; ok {
		if e.Mode != filemode.Dir {
			return fmt.Errorf("status sub-directory %s: exists and is not a directory", d)
		}
		sub = e.Hash
	}
	nh, err := c.rewrite(ed.st, sub, segs[1:], func(m map[string]object.TreeEntry) error { return ed.apply(m, group) }, &ed.objects)
	if err != nil {
		return err
	}
	if nh.IsZero() {
		delete(entries, segs[0])
	} else {
		entries[segs[0]] = object.TreeEntry{Name: segs[0], Mode: filemode.Dir, Hash: nh}
	}
	return nil
}

// apply edits one directory's entries.
func (ed *editor) apply(entries map[string]object.TreeEntry, changes []Change) error {
	for _, ch := range changes {
		name := ch.fileName()
		old, had := entries[name]
		if ch.Data == nil {
			if !had {
				continue
			}
			delete(entries, name)
			ed.record(ch, "removed")
			continue
		}
		h := plumbing.ComputeHash(plumbing.BlobObject, ch.Data)
		if had && old.Hash == h && old.Mode == filemode.Regular {
			continue
		}
		if _, err := writeBlob(ed.st, ch.Data); err != nil {
			return err
		}
		ed.objects = append(ed.objects, h)
		entries[name] = object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h}
		ed.record(ch, "updated")
	}
	return nil
}

func (ed *editor) record(ch Change, dflt string) {
	ed.changed = append(ed.changed, ch.Node)
	ed.summaries = append(ed.summaries, summary(ch, dflt))
}

// writeCommit stores the commit of tree on top of base (none when zero).
func (c *Committer) writeCommit(st storage.Storer, base, tree plumbing.Hash, msg string) (plumbing.Hash, error) {
	sig := object.Signature{Name: c.author.Name, Email: c.author.Email, When: c.clock.Now()}
	commit := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: tree}
	if !base.IsZero() {
		commit.ParentHashes = []plumbing.Hash{base}
	}
	obj := st.NewEncodedObject()
	if err := commit.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode commit: %w", err)
	}
	h, err := st.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store commit: %w", err)
	}
	return h, nil
}

func summary(ch Change, dflt string) string {
	s := ch.Summary
	if s == "" {
		s = dflt
	}
	return ch.Node + " " + s
}

// rewrite returns the hash of tree h with the directory at dir (relative)
// replaced by edit's result; new tree objects are appended to objs. A
// directory left empty is dropped, as Git cannot hold empty trees.
func (c *Committer) rewrite(st storage.Storer, h plumbing.Hash, dir []string, edit func(map[string]object.TreeEntry) error, objs *[]plumbing.Hash) (plumbing.Hash, error) {
	entries := map[string]object.TreeEntry{}
	if !h.IsZero() {
		t, err := object.GetTree(st, h)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("tree %s: %w", h, err)
		}
		for _, e := range t.Entries {
			entries[e.Name] = e
		}
	}
	if len(dir) == 0 {
		if err := edit(entries); err != nil {
			return plumbing.ZeroHash, err
		}
	} else {
		sub := plumbing.ZeroHash
		if e, ok := entries[dir[0]]; ok {
			if e.Mode != filemode.Dir {
				return plumbing.ZeroHash, fmt.Errorf("status directory %s: exists and is not a directory", dir[0])
			}
			sub = e.Hash
		}
		nh, err := c.rewrite(st, sub, dir[1:], edit, objs)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if nh == sub {
			return h, nil
		}
		if nh.IsZero() {
			delete(entries, dir[0])
		} else {
			entries[dir[0]] = object.TreeEntry{Name: dir[0], Mode: filemode.Dir, Hash: nh}
		}
	}
	if len(entries) == 0 {
		return plumbing.ZeroHash, nil
	}
	nh, err := writeTree(st, entries)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if nh != h {
		*objs = append(*objs, nh)
	}
	return nh, nil
}

func writeBlob(st storage.Storer, data []byte) (plumbing.Hash, error) {
	obj := st.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store blob: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store blob: %w", err)
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store blob: %w", err)
	}
	h, err := st.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store blob: %w", err)
	}
	return h, nil
}

func writeTree(st storage.Storer, entries map[string]object.TreeEntry) (plumbing.Hash, error) {
	t := &object.Tree{Entries: make([]object.TreeEntry, 0, len(entries))}
	for _, e := range entries {
		t.Entries = append(t.Entries, e)
	}
	// Git's order: a directory sorts as if its name ended in "/".
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(t.Entries, func(i, j int) bool { return key(t.Entries[i]) < key(t.Entries[j]) })
	obj := st.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode tree: %w", err)
	}
	h, err := st.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store tree: %w", err)
	}
	return h, nil
}

// Message is the commit message for per-node summary lines ("r1-n01
// available→active"): a first line counting the nodes and naming the first
// few, then every line.
func Message(lines []string) string {
	n := len(lines)
	noun := "nodes"
	if n == 1 {
		noun = "node"
	}
	var first bytes.Buffer
	fmt.Fprintf(&first, "status: %d %s changed (", n, noun)
	const width = 100
	for i, l := range lines {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		if i > 0 && first.Len()+len(sep)+len(l)+1 > width {
			first.WriteString(", …")
			break
		}
		first.WriteString(sep + l)
	}
	first.WriteString(")")
	if n == 1 {
		return first.String() + "\n"
	}
	return first.String() + "\n\n" + strings.Join(lines, "\n") + "\n"
}
