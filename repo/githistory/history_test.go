package githistory

import (
	"context"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"metalsync.dev/metalsync/repo/gitsource/gittest"
)

func walk(t *testing.T, dir string, paths []string, opt Options) Result {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	res, err := Walk(context.Background(), repo.Storer, head.Hash(), paths, opt)
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return res
}

const (
	spec   = "nodes/rack1/n1.yaml"
	status = "status/rack1/n1.yaml"
)

func TestWalk(t *testing.T) {
	r := gittest.NewRepo(t)
	c1 := r.Commit("alice", "enroll n1", map[string]string{spec: "kind: Node\nspec:\n  power: \"off\"\n  labels: {rack: rack1}\n", "nodes/rack1/n2.yaml": "kind: Node\n"})
	r.Commit("bob", "n2 only", map[string]string{"nodes/rack1/n2.yaml": "kind: Node\nspec: {}\n"})
	c3 := r.Commit("metalsync", "status: n1 enroll -> manageable\n\nbody", map[string]string{status: "status:\n  provisionState: manageable\n  updated: t1\n"})
	c4 := r.Commit("alice", "power n1 on, drop label", map[string]string{spec: "kind: Node\nspec:\n  power: on\n  traits: [A, B]\n"})
	c5 := r.Commit("metalsync", "status: n1 gone", map[string]string{status: ""})
	r.Commit("carol", "nothing of n1", map[string]string{"README": "x\n"})

	res := walk(t, r.Dir, []string{spec, status}, Options{Ignore: []string{"status.updated"}})
	want := []Change{
		{Commit: c5, Author: "metalsync", Subject: "status: n1 gone", Files: []FileChange{{Path: status, Deleted: true}}},
		{Commit: c4, Author: "alice", Subject: "power n1 on, drop label", Files: []FileChange{{Path: spec, Fields: []Field{
			{Path: "spec.labels.rack", Old: "rack1"}, {Path: "spec.power", Old: "off", New: "on"}, {Path: "spec.traits", New: `["A","B"]`},
		}}}},
		{Commit: c3, Author: "metalsync", Subject: "status: n1 enroll -> manageable", Files: []FileChange{{Path: status, Created: true}}},
		{Commit: c1, Author: "alice", Subject: "enroll n1", Files: []FileChange{{Path: spec, Created: true}}},
	}
	if d := cmp.Diff(want, res.Changes, cmpopts.IgnoreFields(Change{}, "Email", "When")); d != "" {
		t.Errorf("changes (-want +got):\n%s", d)
	}
	if !res.Complete || res.Scanned != 6 {
		t.Errorf("Complete %v Scanned %d, want true 6", res.Complete, res.Scanned)
	}
	if res.Changes[0].Email != "metalsync@example.net" || res.Changes[0].When.IsZero() {
		t.Errorf("author of newest: %q at %v", res.Changes[0].Email, res.Changes[0].When)
	}

	// Bounds: the newest change only, or the newest two commits only.
	if res := walk(t, r.Dir, []string{spec, status}, Options{MaxChanges: 1}); len(res.Changes) != 1 || res.Complete {
		t.Errorf("MaxChanges 1: %d changes, complete %v", len(res.Changes), res.Complete)
	}
	if res := walk(t, r.Dir, []string{spec, status}, Options{MaxCommits: 2}); len(res.Changes) != 1 || res.Scanned != 2 || res.Complete {
		t.Errorf("MaxCommits 2: %d changes, %d scanned, complete %v", len(res.Changes), res.Scanned, res.Complete)
	}
}

// TestWalkShallow: a daemon's store starts at a shallow fetch; the walk
// stops at its edge, says the history is incomplete, and claims nothing
// about the edge commit.
func TestWalkShallow(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Commit("alice", "enroll", map[string]string{spec: "spec: {power: \"off\"}\n"})
	r.Commit("alice", "power on", map[string]string{spec: "spec: {power: \"on\"}\n"})
	c3 := r.Commit("bob", "power off", map[string]string{spec: "spec: {power: \"off\"}\n"})
	clone := t.TempDir()
	gittest.Git(t, r.Dir, "clone", "-q", "--depth", "2", "file://"+r.Dir, clone)
	res := walk(t, clone, []string{spec}, Options{})
	if res.Complete || res.Scanned != 2 || len(res.Changes) != 1 || res.Changes[0].Commit != c3 {
		t.Errorf("shallow: complete %v, scanned %d, changes %+v", res.Complete, res.Scanned, res.Changes)
	}
}

// TestWalkOddFiles: a path that is a directory, a file where a directory
// should be, and a file that is not YAML do not fail the walk.
func TestWalkOddFiles(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Commit("alice", "odd", map[string]string{"status/x/y.yaml": "a: 1\n", "nodes": "not a dir\n", "n.yaml": "[1, 2]\n"})
	r.Commit("alice", "odder", map[string]string{"n.yaml": "key: [unclosed\n"})
	r.Commit("alice", "oddest", map[string]string{"n.yaml": "1: 2\n"})
	res := walk(t, r.Dir, []string{"status/x", "nodes/n1.yaml", "n.yaml"}, Options{})
	if len(res.Changes) != 3 {
		t.Fatalf("changes: %+v", res.Changes)
	}
	for i, c := range res.Changes {
		created := i == 2 // creating a file lists no fields
		if len(c.Files) != 1 || c.Files[0].Path != "n.yaml" || c.Files[0].Unparsed == created || c.Files[0].Created != created {
			t.Errorf("%s: %+v", c.Subject, c.Files)
		}
	}
}

func TestClip(t *testing.T) {
	if got := clip("héllo", 2); got != "h…" {
		t.Errorf("clip = %q", got)
	}
	if got := clip("abc", 3); got != "abc" {
		t.Errorf("clip = %q", got)
	}
}

func TestWalkRedacts(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Commit("alice", "add", map[string]string{spec: "spec:\n  power: \"off\"\n"})
	r.Commit("alice", "oops", map[string]string{spec: "spec:\n  power: \"on\"\n  password: hunter2\n"})
	res := walk(t, r.Dir, []string{spec}, Options{Redact: func(path, _ string) bool { return path == "spec.password" }})
	want := []Field{{Path: "spec.password", New: Redacted}, {Path: "spec.power", Old: "off", New: "on"}}
	if d := cmp.Diff(want, res.Changes[0].Files[0].Fields); d != "" {
		t.Errorf("fields (-want +got):\n%s", d)
	}
}
