package schema

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// TestLoadWorkersDeterministic: the inventory and every diagnostic are the
// same whatever the number of workers validating files, on an inventory
// with many valid and invalid files of every kind.
func TestLoadWorkersDeterministic(t *testing.T) {
	fsys := example(t)
	base := string(fsys["nodes/rack2/r2-n04.yaml"].Data)
	if !strings.Contains(base, "name: r2-n04\n") {
		t.Fatalf("nodes/rack2/r2-n04.yaml changed; this test derives nodes from it:\n%s", base)
	}
	// Each broken variant gives a different diagnostic; a quarter of the
	// generated nodes are broken.
	breaks := []func(string) string{
		func(s string) string {
			return strings.Replace(s, "  owner: edge-retail\n", "  owner: edge-retail\n  colour: blue\n", 1)
		}, // unknown field
		func(s string) string { return strings.Replace(s, "  power: on\n", "  power: 42\n", 1) },              // wrong type
		func(s string) string { return strings.Replace(s, "  owner: edge-retail\n", "  owner: nobody\n", 1) }, // cross-file rule
		func(s string) string { return s + "  : [\n" },                                                        // invalid YAML
		func(s string) string { return strings.Replace(s, "kind: Node\n", "kind: Owner\n", 1) },               // wrong kind
	}
	for i := range 200 {
		name := fmt.Sprintf("r9-n%03d", i)
		doc := strings.Replace(base, "name: r2-n04\n", "name: "+name+"\n", 1)
		if i%4 == 3 {
			doc = breaks[(i/4)%len(breaks)](doc)
		}
		file := fmt.Sprintf("nodes/rack9/%s.yaml", name)
		if i%50 == 7 {
			file = fmt.Sprintf("nodes/rack9/%s-renamed.yaml", name) // name does not match the file
		}
		fsys[file] = &fstest.MapFile{Data: []byte(doc)}
	}
	fsys["owners/broken.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: metalsync.dev/v1alpha1\nkind: Owner\nmetadata: {name: broken}\nspec: {members: 3}\n")}

	wantInv, wantDiags := load(fsys, nil, 1)
	if len(wantInv.Nodes) < 150 || len(wantDiags) < 50 {
		t.Fatalf("fixture too small to prove anything: %d nodes, %d diagnostics", len(wantInv.Nodes), len(wantDiags))
	}
	for _, workers := range []int{2, 3, 8} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			inv, diags := load(fsys, nil, workers)
			if diff := cmp.Diff(wantDiags.String(), diags.String()); diff != "" {
				t.Errorf("diagnostics differ from one worker's (-1 worker +%d):\n%s", workers, diff)
			}
			if diff := cmp.Diff(wantInv, inv); diff != "" {
				t.Errorf("inventory differs from one worker's (-1 worker +%d):\n%s", workers, diff)
			}
		})
	}
	// The automatic choice gives the same too.
	inv, diags := Load(fsys)
	if diff := cmp.Diff(wantDiags, diags); diff != "" {
		t.Errorf("Load: diagnostics differ (-1 worker +automatic):\n%s", diff)
	}
	if diff := cmp.Diff(wantInv, inv); diff != "" {
		t.Errorf("Load: inventory differs (-1 worker +automatic):\n%s", diff)
	}
}
