package githistory

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// BenchmarkWalk reads one node's history through 2,000 status commits of
// a 10,000-node repository (250 racks of 40), each commit changing one
// node's status; one commit in 40 is the node's own, so the walk stops
// at 30 changes after ~1,200 commits, as the node page asks.
//
//	go test ./repo/githistory -run '^$' -bench Walk -benchmem
func BenchmarkWalk(b *testing.B) {
	st := memory.NewStorage()
	put := func(o interface {
		Encode(plumbing.EncodedObject) error
	}) plumbing.Hash {
		obj := st.NewEncodedObject()
		if err := o.Encode(obj); err != nil {
			b.Fatal(err)
		}
		h, err := st.SetEncodedObject(obj)
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	blob := func(s string) plumbing.Hash {
		obj := st.NewEncodedObject()
		obj.SetType(plumbing.BlobObject)
		w, _ := obj.Writer()
		w.Write([]byte(s))
		w.Close()
		h, _ := st.SetEncodedObject(obj)
		return h
	}
	const racks, perRack = 250, 40
	rackTrees := make([][]object.TreeEntry, racks)
	for r := range racks {
		for n := range perRack {
			rackTrees[r] = append(rackTrees[r], object.TreeEntry{Name: fmt.Sprintf("n%05d.yaml", r*perRack+n), Mode: filemode.Regular, Hash: blob(fmt.Sprintf("status:\n  power: \"on\"\n  n: %d\n", n))})
		}
	}
	rackHashes := make([]plumbing.Hash, racks)
	for r := range racks {
		rackHashes[r] = put(&object.Tree{Entries: rackTrees[r]})
	}
	var parent plumbing.Hash
	when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2000 {
		r, n := 0, i%perRack // rack 0, node n: node 0 changes every 40th commit
		rackTrees[r][n].Hash = blob(fmt.Sprintf("status:\n  power: \"on\"\n  updated: %d\n", i))
		rackHashes[r] = put(&object.Tree{Entries: rackTrees[r]})
		var entries []object.TreeEntry
		for r := range racks {
			entries = append(entries, object.TreeEntry{Name: fmt.Sprintf("rack%04d", r), Mode: filemode.Dir, Hash: rackHashes[r]})
		}
		status := put(&object.Tree{Entries: entries})
		root := put(&object.Tree{Entries: []object.TreeEntry{{Name: "status", Mode: filemode.Dir, Hash: status}}})
		c := &object.Commit{Author: object.Signature{Name: "metalsync", When: when}, Committer: object.Signature{Name: "metalsync", When: when}, Message: "status", TreeHash: root}
		if !parent.IsZero() {
			c.ParentHashes = []plumbing.Hash{parent}
		}
		parent = put(c)
	}
	paths := []string{"nodes/rack0000/n00000.yaml", "status/rack0000/n00000.yaml"}
	var res Result
	for b.Loop() {
		var err error
		if res, err = Walk(b.Context(), st, parent, paths, Options{MaxChanges: 30, MaxCommits: 2000}); err != nil {
			b.Fatal(err)
		}
	}
	if len(res.Changes) != 30 {
		b.Fatalf("%d changes", len(res.Changes))
	}
	b.ReportMetric(float64(res.Scanned), "commits")
}
