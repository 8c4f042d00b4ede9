package statussink

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/test/inventorygen"
)

type call struct {
	Dir, Node string
	Deleted   bool
}

type recordingUpdater struct{ calls []call }

func (r *recordingUpdater) Sync(context.Context) error { return nil }

func (r *recordingUpdater) UpdateAt(dir, node string, data []byte, _ string) error {
	r.calls = append(r.calls, call{Dir: dir, Node: node, Deleted: data == nil})
	return nil
}

// TestGitMirrorsNodes: status goes to the sub-directory mirroring the
// node's file; a status found elsewhere (an older flat layout, or a node
// that moved racks) is removed as the new one is written.
func TestGitMirrorsNodes(t *testing.T) {
	files := inventorygen.Files(inventorygen.Options{Nodes: 2, Driver: "fake", Status: true})
	fsys := fstest.MapFS{}
	for p, b := range files {
		fsys[p] = &fstest.MapFile{Data: b}
	}
	n0, n1 := inventorygen.NodeName(0, 40), inventorygen.NodeName(1, 40)
	// n1's status is still in the flat layout.
	fsys["status/"+n1+".yaml"] = fsys["status/rack0000/"+n1+".yaml"]
	delete(fsys, "status/rack0000/"+n1+".yaml")
	inv, diags := schema.Load(fsys)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rec := &recordingUpdater{}
	g := &Git{W: rec}
	g.Track(inv)
	for _, n := range []string{n0, n1} {
		if err := g.WriteStatus(n, schema.NodeStatusBody{ProvisionState: "manageable"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.ForgetStatus(n0); err != nil {
		t.Fatal(err)
	}
	want := []call{
		{Dir: "rack0000", Node: n0},
		{Dir: "", Node: n1, Deleted: true},
		{Dir: "rack0000", Node: n1},
		{Dir: "rack0000", Node: n0, Deleted: true},
	}
	if d := cmp.Diff(want, rec.calls); d != "" {
		t.Errorf("updates (-want +got):\n%s", d)
	}
}
