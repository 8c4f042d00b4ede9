package schema

import (
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/yaml"
)

// example returns inventory-example/ as an in-memory tree that tests may
// break without touching the real one.
func example(t testing.TB) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	root := os.DirFS("../inventory-example")
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExampleIsValid(t *testing.T) {
	inv, diags := Load(example(t))
	if len(diags) != 0 {
		t.Fatalf("inventory-example has diagnostics:\n%s", diags)
	}
	if got := len(inv.Nodes); got < 12 {
		t.Errorf("inventory-example has %d nodes, want at least 12", got)
	}
	var retired, quarantined, adopted int
	for _, n := range inv.Nodes {
		if n.Spec.Retired != nil {
			retired++
		}
		if n.Spec.Quarantine != nil {
			quarantined++
		}
		if n.Spec.Provision.Adopt {
			adopted++
		}
	}
	if retired == 0 || quarantined == 0 || adopted == 0 {
		t.Errorf("inventory-example must show a retired (%d), a quarantined (%d) and an adopted (%d) node", retired, quarantined, adopted)
	}
	if len(inv.Owners) != 3 || len(inv.Templates) != 3 {
		t.Errorf("got %d owners and %d templates, want 3 and 3", len(inv.Owners), len(inv.Templates))
	}
}

// TestRoundTrip decodes the example, writes every resource back as YAML
// and loads it again: the Go types and the CUE schema must agree on every
// field.
func TestRoundTrip(t *testing.T) {
	inv, diags := Load(example(t))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	out := fstest.MapFS{}
	put := func(path string, v any) {
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out[path] = &fstest.MapFile{Data: b}
	}
	put(SiteFile, inv.Site)
	for _, n := range inv.Nodes {
		put(n.Source.File, n)
	}
	for _, o := range inv.Owners {
		put(o.Source.File, o)
	}
	for _, tm := range inv.Templates {
		put(tm.Source.File, tm)
	}
	inv2, diags := Load(out)
	if len(diags) != 0 {
		t.Fatalf("round-tripped inventory has diagnostics:\n%s", diags)
	}
	if d := cmp.Diff(inv, inv2, cmpopts.IgnoreTypes(Source{})); d != "" {
		t.Errorf("round trip changed the inventory (-first +second):\n%s", d)
	}
}

func TestStatusRoundTrip(t *testing.T) {
	st := &NodeStatus{Metadata: Meta{Name: "r1-n01"}, Status: NodeStatusBody{
		Commit: "abc", Power: "on", ProvisionState: "active",
		Operation: &Operation{Kind: "deploy", Step: 2, Steps: []string{"a", "b", "c"}},
		Fault:     &Fault{Reason: "power failure", Failures: 3},
		Inspect: &Inspected{Token: "t1", Warnings: []string{"memory: not read: GET /redfish/v1/Systems/1/Memory: 404 not found", "network: not read"},
			Inventory: map[string]any{"cpus": float64(2), "nicsUnknown": true}},
		Deployed: &Deployed{Image: "https://x/y.raw", Simulated: true},
	}}
	b, err := MarshalStatus(st)
	if err != nil {
		t.Fatal(err)
	}
	fsys := example(t)
	fsys["status/r1-n01.yaml"] = &fstest.MapFile{Data: b}
	inv, diags := Load(fsys)
	if len(diags) != 0 {
		t.Fatalf("diagnostics:\n%s", diags)
	}
	got := inv.Status["r1-n01"]
	want := *st
	want.APIVersion, want.Kind = APIVersion, KindNodeStatus
	if d := cmp.Diff(&want, got, cmpopts.IgnoreTypes(Source{})); d != "" {
		t.Errorf("status round trip (-want +got):\n%s", d)
	}
	b2, _ := MarshalStatus(got)
	if string(b) != string(b2) {
		t.Errorf("MarshalStatus is not stable:\n%s\n---\n%s", b, b2)
	}
}

func TestLoadDirErrors(t *testing.T) {
	_, diags := LoadDir("testdata/does-not-exist")
	if !diags.HasErrors() || !strings.Contains(diags.String(), "cannot read inventory directory") {
		t.Errorf("got %q", diags.String())
	}
}
