package inventorygen_test

import (
	"fmt"
	"strconv"
	"testing"
	"testing/fstest"

	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/test/inventorygen"
)

// TestGeneratedIsValid: the benchmarks measure valid inventories only.
func TestGeneratedIsValid(t *testing.T) {
	for _, driver := range []string{"redfish", "ipmi", "fake"} {
		fsys := fstest.MapFS{}
		for p, b := range inventorygen.Files(inventorygen.Options{Nodes: 300, PerRack: 40, Driver: driver}) {
			fsys[p] = &fstest.MapFile{Data: b}
		}
		inv, diags := schema.Load(fsys)
		if len(diags) != 0 {
			t.Fatalf("%s: generated inventory has diagnostics:\n%s", driver, diags)
		}
		if len(inv.Nodes) != 300 {
			t.Errorf("%s: got %d nodes", driver, len(inv.Nodes))
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{1000} {
		fsys := fstest.MapFS{}
		for p, d := range inventorygen.Files(inventorygen.Options{Nodes: n}) {
			fsys[p] = &fstest.MapFile{Data: d}
		}
		b.Run("nodes="+strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				if _, diags := schema.Load(fsys); diags.HasErrors() {
					b.Fatal(diags)
				}
			}
		})
	}
}

// BenchmarkReload is the daemon's case: the same 10,000-node inventory
// again with one node changed, through a schema.Loader.
func BenchmarkReload(b *testing.B) {
	files := inventorygen.Files(inventorygen.Options{Nodes: 10000})
	fsys := fstest.MapFS{}
	for p, d := range files {
		fsys[p] = &fstest.MapFile{Data: d}
	}
	var l schema.Loader
	if _, diags := l.Load(fsys); diags.HasErrors() {
		b.Fatal(diags)
	}
	p := "nodes/rack0000/" + inventorygen.NodeName(0, 40) + ".yaml"
	for i := 0; b.Loop(); i++ {
		fsys[p] = &fstest.MapFile{Data: append(append([]byte(nil), files[p]...), fmt.Sprintf("# edit %d\n", i)...)}
		if _, diags := l.Load(fsys); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}

// TestGeneratedStatus: with status, a settled fleet plans nothing except
// the drifting share.
func TestGeneratedStatus(t *testing.T) {
	fsys := fstest.MapFS{}
	for p, b := range inventorygen.Files(inventorygen.Options{Nodes: 200, Driver: "fake", Status: true, Drift: 0.1}) {
		fsys[p] = &fstest.MapFile{Data: b}
	}
	inv, diags := schema.Load(fsys)
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	if len(inv.Status) != 200 {
		t.Fatalf("%d status files", len(inv.Status))
	}
	off := 0
	for _, st := range inv.Status {
		if st.Status.Power == "off" {
			off++
		}
	}
	if off != 20 {
		t.Errorf("%d nodes drift, want 20", off)
	}
}
