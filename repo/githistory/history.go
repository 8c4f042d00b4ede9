// Package githistory reads who changed a set of files, when, and which
// fields: the per-node history of the fleet page, from the commits a
// daemon holds.
package githistory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"go.yaml.in/yaml/v3"
)

// Options bound a walk.
type Options struct {
	// MaxCommits is how many commits to look at, newest first along
	// first parents; 0 means 1000.
	MaxCommits int
	// MaxChanges stops the walk after this many matching commits; 0
	// means 50.
	MaxChanges int
	// Ignore names field paths left out of the field changes (they change
	// in every commit, like status.updated).
	Ignore []string
	// MaxValue bounds each old or new value shown; 0 means 160 bytes.
	MaxValue int
	// Redact, when set, says which values are not to be shown (a
	// credential someone committed, even in a refused commit): they read
	// Redacted.
	Redact func(path, value string) bool
}

// Redacted stands for a value Options.Redact withholds.
const Redacted = "(redacted)"

// Result is the history of the files, newest first.
type Result struct {
	Changes []Change
	// Scanned is how many commits were looked at.
	Scanned int
	// Complete is true when the walk reached the first commit; false when
	// it stopped at a bound or at the edge of the history held (a
	// shallow fetch).
	Complete bool
}

// Change is one commit that changed at least one of the files.
type Change struct {
	Commit  string
	Author  string
	Email   string
	When    time.Time
	Subject string
	Files   []FileChange
}

// FileChange is what one commit did to one file.
type FileChange struct {
	Path             string
	Created, Deleted bool
	// Fields are the changed leaves of the YAML document, by dotted path,
	// when it was changed (not created or deleted); Unparsed is set when
	// either side is not a YAML mapping.
	Fields   []Field
	Unparsed bool
}

// Field is one changed leaf; "" for absent.
type Field struct {
	Path, Old, New string
}

// Walk reads, from head back along first parents, the commits whose
// trees differ from their parent's at any of paths.
func Walk(ctx context.Context, st storer.EncodedObjectStorer, head plumbing.Hash, paths []string, opt Options) (Result, error) {
	if opt.MaxCommits <= 0 {
		opt.MaxCommits = 1000
	}
	if opt.MaxChanges <= 0 {
		opt.MaxChanges = 50
	}
	if opt.MaxValue <= 0 {
		opt.MaxValue = 160
	}
	var res Result
	if head.IsZero() {
		res.Complete = true
		return res, nil
	}
	w := walker{st: st, cache: map[lookupKey]entry{}}
	c, err := object.GetCommit(st, head)
	if err != nil {
		return res, fmt.Errorf("commit %s: %w", head, err)
	}
	blobs, err := w.blobs(c.TreeHash, paths)
	if err != nil {
		return res, err
	}
	for res.Scanned < opt.MaxCommits && len(res.Changes) < opt.MaxChanges {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Scanned++
		var parent *object.Commit
		parentBlobs := make([]plumbing.Hash, len(paths))
		if len(c.ParentHashes) > 0 {
			parent, err = object.GetCommit(st, c.ParentHashes[0])
			if errors.Is(err, plumbing.ErrObjectNotFound) {
				return res, nil // the shallow edge: what c changed is unknown
			}
			if err != nil {
				return res, fmt.Errorf("commit %s: %w", c.ParentHashes[0], err)
			}
			if parentBlobs, err = w.blobs(parent.TreeHash, paths); err != nil {
				return res, err
			}
		}
		if ch, ok, err := w.change(c, paths, parentBlobs, blobs, opt); err != nil {
			return res, err
		} else if ok {
			res.Changes = append(res.Changes, ch)
		}
		if parent == nil {
			res.Complete = true
			return res, nil
		}
		c, blobs = parent, parentBlobs
	}
	return res, nil
}

type lookupKey struct {
	tree plumbing.Hash
	name string
}

// walker looks paths up in trees, remembering each (tree, name) step:
// consecutive commits share most subtrees, so most lookups decode
// nothing.
type walker struct {
	st    storer.EncodedObjectStorer
	cache map[lookupKey]entry
}

type entry struct {
	hash plumbing.Hash
	dir  bool
}

// blobs returns the blob at each path of tree (zero where absent or not a
// regular file).
func (w *walker) blobs(tree plumbing.Hash, paths []string) ([]plumbing.Hash, error) {
	out := make([]plumbing.Hash, len(paths))
	for i, p := range paths {
		h, dir := tree, true
		for _, name := range strings.Split(p, "/") {
			if !dir {
				h = plumbing.ZeroHash // a file where a directory was expected
				break
			}
			e, err := w.step(h, name)
			if err != nil {
				return nil, err
			}
			if h, dir = e.hash, e.dir; h.IsZero() {
				break
			}
		}
		if dir {
			h = plumbing.ZeroHash // a directory where the file was expected
		}
		out[i] = h
	}
	return out, nil
}

func (w *walker) step(tree plumbing.Hash, name string) (entry, error) {
	k := lookupKey{tree, name}
	if e, ok := w.cache[k]; ok {
		return e, nil
	}
	t, err := object.GetTree(w.st, tree)
	if err != nil {
		return entry{}, fmt.Errorf("tree %s: %w", tree, err)
	}
	var found entry
	for _, e := range t.Entries {
		if e.Name == name && (e.Mode == filemode.Dir || e.Mode.IsFile()) {
			found = entry{hash: e.Hash, dir: e.Mode == filemode.Dir}
			break
		}
	}
	w.cache[k] = found
	return found, nil
}

func (w *walker) change(c *object.Commit, paths []string, before, after []plumbing.Hash, opt Options) (Change, bool, error) {
	var files []FileChange
	for i, p := range paths {
		if before[i] == after[i] {
			continue
		}
		fc := FileChange{Path: p, Created: before[i].IsZero(), Deleted: after[i].IsZero()}
		if fc.Created || fc.Deleted {
			files = append(files, fc)
			continue
		}
		old, err := w.document(before[i])
		if err != nil {
			return Change{}, false, fmt.Errorf("%s at %s: %w", p, c.Hash, err)
		}
		cur, err := w.document(after[i])
		if err != nil {
			return Change{}, false, fmt.Errorf("%s at %s: %w", p, c.Hash, err)
		}
		if old.unparsed || cur.unparsed {
			fc.Unparsed = true
		} else {
			fc.Fields = diffFields(old.leaves, cur.leaves, opt)
		}
		files = append(files, fc)
	}
	if len(files) == 0 {
		return Change{}, false, nil
	}
	subject, _, _ := strings.Cut(c.Message, "\n")
	return Change{
		Commit: c.Hash.String(), Author: c.Author.Name, Email: c.Author.Email,
		When: c.Author.When, Subject: subject, Files: files,
	}, true, nil
}

type document struct {
	leaves   map[string]string
	unparsed bool
}

// maxDocument bounds the YAML read per file version.
const maxDocument = 4 << 20

func (w *walker) document(h plumbing.Hash) (document, error) {
	if h.IsZero() {
		return document{leaves: map[string]string{}}, nil
	}
	b, err := object.GetBlob(w.st, h)
	if err != nil {
		return document{}, fmt.Errorf("blob %s: %w", h, err)
	}
	if b.Size > maxDocument {
		return document{unparsed: true}, nil
	}
	r, err := b.Reader()
	if err != nil {
		return document{}, fmt.Errorf("blob %s: %w", h, err)
	}
	defer r.Close()
	data := make([]byte, b.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		return document{}, fmt.Errorf("blob %s: %w", h, err)
	}
	return parseDocument(data), nil
}

// parseDocument reads a file version: whatever anyone committed, refused
// commits included.
func parseDocument(data []byte) document {
	// YAML 1.2, as the schema reads it: "on" is a string, not true.
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return document{unparsed: true}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return document{unparsed: true}
	}
	leaves := map[string]string{}
	flatten("", m, leaves)
	return document{leaves: leaves}
}

// flatten writes the leaves of a mapping by dotted path; lists are
// leaves, written as compact JSON.
func flatten(prefix string, m map[string]any, out map[string]string) {
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 {
				out[p] = "{}"
			}
			flatten(p, v, out)
		case string:
			out[p] = v
		default:
			b, err := json.Marshal(v)
			if err != nil {
				b = []byte(fmt.Sprint(v))
			}
			out[p] = string(b)
		}
	}
}

func diffFields(old, cur map[string]string, opt Options) []Field {
	var out []Field
	seen := map[string]bool{}
	add := func(p string) {
		if seen[p] || slices.Contains(opt.Ignore, p) {
			return
		}
		seen[p] = true
		if o, n := old[p], cur[p]; o != n {
			out = append(out, Field{Path: p, Old: shown(p, o, opt), New: shown(p, n, opt)})
		}
	}
	for p := range old {
		add(p)
	}
	for p := range cur {
		add(p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// shown is a value as the history shows it: redacted, or clipped; ""
// (absent) stays as it is.
func shown(path, v string, opt Options) string {
	if v != "" && opt.Redact != nil && opt.Redact(path, v) {
		return Redacted
	}
	return clip(v, opt.MaxValue)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
