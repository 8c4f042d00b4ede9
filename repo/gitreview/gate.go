package gitreview

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"metalsync.dev/metalsync/rights"
	"metalsync.dev/metalsync/schema"
)

// Gate is the daemon's rights check (daemon.Gate) over a repository that
// holds the history from the last good revision to the new one.
//
// Every commit on the first-parent path is checked against its author's
// rights, so an admin's signed merge commit approves whatever it merges.
// When the last good revision is not on that path (history rewritten),
// the whole change is checked against the new head's author alone: only
// an admin's signed commit lets it through.
type Gate struct {
	Objects storer.EncodedObjectStorer // a repository's Storer
	Loader  *schema.Loader
}

// Check returns the refused changes from goodRev to rev as diagnostics.
func (g *Gate) Check(ctx context.Context, goodRev string, good *schema.Inventory, rev string, inv *schema.Inventory) (schema.Diagnostics, error) {
	base, head := plumbing.NewHash(goodRev), plumbing.NewHash(rev)
	rep, err := Review(ctx, g.Objects, base, head, Options{Loader: g.Loader})
	switch {
	case errors.Is(err, ErrNotAncestor):
		c, err := object.GetCommit(g.Objects, head)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", rev, err)
		}
		rc := Commit{Hash: rev, Author: rights.Actor{Email: c.Author.Email}}
		rc.Signature, rc.Author.Untrusted = checkSignature(c, good)
		rc.Decisions = rights.Check(good, inv, rc.Author)
		rep = &Report{Commits: []Commit{rc}}
	case err != nil:
		return nil, err
	}
	return Diagnostics(rep), nil
}

// Diagnostics turns the refused changes of a review into error
// diagnostics, one per refused field.
func Diagnostics(rep *Report) schema.Diagnostics {
	var out schema.Diagnostics
	for _, c := range rep.Commits {
		for _, d := range c.Refused() {
			what := d.Kind + " " + d.Name
			if d.Path != "" {
				what = d.Path + " of " + what
			} else {
				what = string(d.Op) + " of " + what
			}
			out = append(out, schema.Diagnostic{
				File: d.File, Severity: schema.SevError, Code: rights.DiagnosticCode,
				Message: fmt.Sprintf("%s by %s in %s refused (%s: %s; author is %s)", what, c.Author.Email, short(c.Hash), d.Rule, d.Why, d.Role),
				Hint:    "revert it, or have an admin approve it with a signed merge commit",
			})
		}
	}
	return out
}
