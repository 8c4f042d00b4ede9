package daemon

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/memfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/repo/gitreview"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/test/inventorygen"
)

// gitHistory commits to an in-memory repository with go-git.
type gitHistory struct {
	t    *testing.T
	repo *git.Repository
	wt   *git.Worktree
}

func newGitHistory(t *testing.T) *gitHistory {
	repo, err := git.Init(memory.NewStorage(), memfs.New())
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	return &gitHistory{t: t, repo: repo, wt: wt}
}

// commit writes files and commits them as email, with parents when given
// (a merge), and returns the commit and its tree as a revision.
func (h *gitHistory) commit(email string, files map[string][]byte, parents ...plumbing.Hash) rev {
	h.t.Helper()
	for p, data := range files {
		f, err := h.wt.Filesystem.Create(p)
		if err == nil {
			_, err = f.Write(data)
		}
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			h.t.Fatal(err)
		}
	}
	if err := h.wt.AddGlob("."); err != nil {
		h.t.Fatal(err)
	}
	sig := &object.Signature{Name: email, Email: email, When: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	hash, err := h.wt.Commit("change by "+email, &git.CommitOptions{Author: sig, Committer: sig, Parents: parents, AllowEmptyCommits: true})
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := h.repo.CommitObject(hash)
	if err != nil {
		h.t.Fatal(err)
	}
	fsys, err := gitreview.TreeFS(c)
	if err != nil {
		h.t.Fatal(err)
	}
	return rev{hash.String(), fsys}
}

// diagReports records the diagnostics of refused revisions.
type diagReports chan schema.Diagnostics

func (r diagReports) ReportInvalid(_ string, diags schema.Diagnostics) {
	if diags != nil {
		r <- diags
	}
}

// TestDaemonRefusesChangesAgainstRights: a tenant's change to a node it
// does not own is not acted on; an admin's merge commit on the last good
// revision approves it.
func TestDaemonRefusesChangesAgainstRights(t *testing.T) {
	h := newGitHistory(t)
	reports := make(diagReports, 4)
	r := newRigWith(t, func(c *Config) {
		c.Gate = &gitreview.Gate{Objects: h.repo.Storer}
		c.Invalid = reports
	})
	ctx := t.Context()
	done := make(chan error, 1)
	go func() { done <- r.d.Run(ctx) }()

	files := inventorygen.Files(inventorygen.Options{Nodes: 10, Driver: "fake"})
	files["owners/platform.yaml"] = []byte("apiVersion: metalsync.dev/v1alpha1\nkind: Owner\nmetadata: {name: platform}\nspec:\n  admin: true\n  members: [{email: platform@example.net}]\n")
	name := inventorygen.NodeName(4, 40)
	p := "nodes/rack0000/" + name + ".yaml"
	owner := regexp.MustCompile(`(?m)^  owner: (\S+)$`).FindSubmatch(files[p])
	if owner == nil {
		t.Fatalf("no owner in %s", p)
	}
	stranger := "tenant-a@example.net"
	if string(owner[1]) == "tenant-a" {
		stranger = "tenant-b@example.net"
	}

	c1 := h.commit("platform@example.net", files)
	r.src.revs <- c1
	r.waitFor(t, "the first revision loaded", func() bool { rv, _ := r.d.Revision(); return rv == c1.id })

	// Someone who neither owns nor leases the node powers it off.
	off := map[string][]byte{p: []byte(strings.Replace(string(files[p]), `power: "on"`, `power: "off"`, 1))}
	c2 := h.commit(stranger, off)
	r.src.revs <- c2
	select {
	case diags := <-reports:
		if len(diags) != 1 || diags[0].Code != "rights" || !strings.Contains(diags[0].Message, "spec.power of Node "+name+" by "+stranger) {
			t.Errorf("refusal = %v, want spec.power of %s refused", diags, name)
		}
	case <-time.After(hung):
		t.Fatal("timed out waiting for the refusal")
	}
	if rv, _ := r.d.Revision(); rv != c1.id {
		t.Errorf("last good revision = %s, want %s", rv, c1.id)
	}

	// An admin merges it onto the last good revision: acted on.
	merge := h.commit("platform@example.net", nil, plumbing.NewHash(c1.id), plumbing.NewHash(c2.id))
	r.src.revs <- merge
	r.waitFor(t, "node powered off after the admin's merge", func() bool {
		return r.fleet.System(name).PowerState() == drivers.PowerOff
	})
	if passed := r.ex.passed(); slices.Contains(passed, c2.id) {
		t.Errorf("a pass ran the refused revision %s", c2.id)
	}
}
