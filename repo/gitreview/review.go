// Package gitreview reviews a range of inventory commits: for every commit
// on the first-parent path from base to head, who made it (the author's
// e-mail, trusted only with a verified SSH signature where one is due) and
// every changed field allowed or refused by the rights table. Both
// `metalsync review` and the daemon use it.
package gitreview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing/fstest"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"metalsync.dev/metalsync/rights"
	"metalsync.dev/metalsync/schema"
)

// SignatureNamespace is the SSHSIG namespace git signs commits in.
const SignatureNamespace = "git"

// Signature is what was found out about a commit's signature.
type Signature struct {
	Signed   bool `json:"signed"`
	Verified bool `json:"verified"`
	// Key is the fingerprint of the member key that verified it.
	Key string `json:"key,omitempty"`
	// Problem says why a signature that was due is not good.
	Problem string `json:"problem,omitempty"`
}

// Commit is the review of one commit.
type Commit struct {
	Hash      string             `json:"commit"`
	Parent    string             `json:"parent,omitempty"`
	Merge     bool               `json:"merge,omitempty"`
	Subject   string             `json:"subject"`
	Author    rights.Actor       `json:"author"`
	Signature Signature          `json:"signature"`
	Decisions []rights.Decision  `json:"changes"`
	Invalid   schema.Diagnostics `json:"invalid,omitempty"` // the commit's inventory is invalid; its changes count with the next valid commit
}

// Refused returns the refused decisions of c.
func (c Commit) Refused() []rights.Decision {
	var out []rights.Decision
	for _, d := range c.Decisions {
		if !d.Allowed {
			out = append(out, d)
		}
	}
	return out
}

// Template is a deploy template changed between base and head, with every
// node of head that uses it: the nodes its change redeploys.
type Template struct {
	Name  string    `json:"name"`
	Op    rights.Op `json:"op"`
	Nodes []string  `json:"nodes"`
}

// Report is the review of base..head.
type Report struct {
	Base    string     `json:"base"`
	Head    string     `json:"head"`
	Commits []Commit   `json:"commits"`
	Blast   []Template `json:"templates,omitempty"`
	// BaseInventory and HeadInventory are the inventories at base and head
	// (HeadInventory is nil when head is invalid).
	BaseInventory *schema.Inventory  `json:"-"`
	HeadInventory *schema.Inventory  `json:"-"`
	HeadInvalid   schema.Diagnostics `json:"headInvalid,omitempty"`
}

// Refused returns every refused decision, in commit order.
func (r *Report) Refused() []rights.Decision {
	var out []rights.Decision
	for _, c := range r.Commits {
		out = append(out, c.Refused()...)
	}
	return out
}

// Options tune a review.
type Options struct {
	// Loader loads each commit's inventory; sharing one with the caller
	// keeps its memory of validated files. Nil uses a private one.
	Loader *schema.Loader
}

// ErrNotAncestor is returned when base is not on head's first-parent path.
var ErrNotAncestor = errors.New("base is not an ancestor of head on its first-parent path")

// ErrBaseInvalid is returned when the base revision's inventory is invalid:
// there are no rights to check changes against.
var ErrBaseInvalid = errors.New("base inventory is invalid")

// Review reviews every commit on the first-parent path from base
// (excluded) to head (included), reading commits from objects (a
// repository's Storer).
func Review(ctx context.Context, objects storer.EncodedObjectStorer, base, head plumbing.Hash, opt Options) (*Report, error) {
	l := opt.Loader
	if l == nil {
		l = &schema.Loader{}
	}
	path, err := firstParents(ctx, objects, base, head)
	if err != nil {
		return nil, err
	}
	baseCommit, err := object.GetCommit(objects, base)
	if err != nil {
		return nil, fmt.Errorf("base commit %s: %w", base, err)
	}
	prev, diags, err := load(l, baseCommit)
	if err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		return nil, fmt.Errorf("%w at %s:\n%s", ErrBaseInvalid, base, diags.String())
	}
	rep := &Report{Base: base.String(), Head: head.String(), BaseInventory: prev, HeadInventory: prev}
	for _, c := range path {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rc := Commit{
			Hash:    c.Hash.String(),
			Merge:   c.NumParents() > 1,
			Subject: subject(c.Message),
			Author:  rights.Actor{Email: c.Author.Email},
		}
		if c.NumParents() > 0 {
			rc.Parent = c.ParentHashes[0].String()
		}
		inv, diags, err := load(l, c)
		if err != nil {
			return nil, err
		}
		if diags.HasErrors() {
			rc.Invalid = diags
			rep.Commits = append(rep.Commits, rc)
			rep.HeadInventory, rep.HeadInvalid = nil, diags
			continue
		}
		rc.Signature, rc.Author.Untrusted = checkSignature(c, prev)
		rc.Decisions = rights.Check(prev, inv, rc.Author)
		rep.Commits = append(rep.Commits, rc)
		prev = inv
		rep.HeadInventory, rep.HeadInvalid = inv, nil
	}
	if rep.HeadInventory != nil {
		rep.Blast = blastRadius(rep.BaseInventory, rep.HeadInventory)
	}
	return rep, nil
}

// firstParents returns the commits from head back to base (excluded) by
// first parents, oldest first.
func firstParents(ctx context.Context, objects storer.EncodedObjectStorer, base, head plumbing.Hash) ([]*object.Commit, error) {
	var path []*object.Commit
	h := head
	for h != base {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := object.GetCommit(objects, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) && len(path) > 0 {
			// A shallow or compacted history ends before base.
			return nil, fmt.Errorf("%s..%s: history ends at %s: %w", short(base.String()), short(head.String()), short(h.String()), ErrNotAncestor)
		}
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", h, err)
		}
		path = append(path, c)
		if c.NumParents() == 0 {
			return nil, fmt.Errorf("%s..%s: %w", short(base.String()), short(head.String()), ErrNotAncestor)
		}
		h = c.ParentHashes[0]
	}
	slices.Reverse(path)
	return path, nil
}

// load reads a commit's inventory. An error is a Git problem; an invalid
// inventory is reported in the diagnostics.
func load(l *schema.Loader, c *object.Commit) (*schema.Inventory, schema.Diagnostics, error) {
	fsys, err := TreeFS(c)
	if err != nil {
		return nil, nil, err
	}
	inv, diags := l.Load(fsys)
	return inv, diags, nil
}

// TreeFS returns the files of a commit as an fs.FS, with symbolic links
// kept as links (the loader refuses them) and submodules left out.
func TreeFS(c *object.Commit) (fs.FS, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("commit %s: tree: %w", c.Hash, err)
	}
	m := fstest.MapFS{}
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("commit %s: tree: %w", c.Hash, err)
		}
		var mode fs.FileMode
		switch e.Mode {
		case filemode.Dir:
			m[name] = &fstest.MapFile{Mode: fs.ModeDir | 0o755, ModTime: c.Committer.When}
			continue
		case filemode.Symlink:
			mode = fs.ModeSymlink | 0o777
		case filemode.Regular, filemode.Deprecated:
			mode = 0o644
		case filemode.Executable:
			mode = 0o755
		default: // submodules
			continue
		}
		f, err := tree.TreeEntryFile(&e)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %s: %w", c.Hash, name, err)
		}
		data, err := readBlob(&f.Blob)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %s: %w", c.Hash, name, err)
		}
		m[name] = &fstest.MapFile{Data: data, Mode: mode, ModTime: c.Committer.When}
	}
	return m, nil
}

func readBlob(b *object.Blob) ([]byte, error) {
	r, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// blastRadius lists the templates that differ between base and head and
// the nodes of head that use each.
func blastRadius(base, head *schema.Inventory) []Template {
	var out []Template
	for _, c := range rights.Diff(base, head) {
		if c.Kind != schema.KindDeployTemplate {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Name == c.Name {
			continue // one entry per template, however many fields changed
		}
		t := Template{Name: c.Name, Op: c.Op, Nodes: []string{}}
		for _, n := range head.Nodes {
			if slices.Contains(n.Spec.Provision.DeployTemplates, c.Name) {
				t.Nodes = append(t.Nodes, n.Name())
			}
		}
		out = append(out, t)
	}
	return out
}

func subject(msg string) string {
	s, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	return s
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
