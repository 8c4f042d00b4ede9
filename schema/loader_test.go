package schema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestLoaderReusesUnchangedFiles: a reload gives the same inventory and
// diagnostics as a fresh load, reusing the decoded value of every file
// whose content did not change.
func TestLoaderReusesUnchangedFiles(t *testing.T) {
	var l Loader
	fsys := example(t)
	first, diags := l.Load(fsys)
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	n1 := "nodes/rack1/r1-n01.yaml"
	n2 := "nodes/rack1/r1-n02.yaml"
	changed := fstest.MapFS{}
	for k, v := range fsys {
		changed[k] = v
	}
	changed[n2] = &fstest.MapFile{Data: []byte(strings.Replace(string(fsys[n2].Data), "power: on", "power: off", 1))}
	second, diags := l.Load(changed)
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	if first.Node("r1-n01") != second.Node("r1-n01") {
		t.Error("unchanged node was decoded again")
	}
	if first.Node("r1-n02") == second.Node("r1-n02") || second.Node("r1-n02").Spec.Power != "off" {
		t.Error("changed node was not reloaded")
	}
	fresh, freshDiags := Load(changed)
	if d := cmp.Diff(fresh, second, cmpopts.IgnoreTypes(Source{})); d != "" {
		t.Errorf("reload differs from a fresh load (-fresh +reload):\n%s", d)
	}

	// A broken file is reported on reload as on a fresh load, and the
	// cross-file rules still see every file.
	changed[n1] = &fstest.MapFile{Data: []byte(strings.Replace(string(fsys[n1].Data), "owner: platform", "owner: nobody", 1))}
	_, diags = l.Load(changed)
	_, freshDiags = Load(changed)
	if d := cmp.Diff(freshDiags, diags); d != "" || len(diags) != 1 {
		t.Errorf("reload diagnostics (-fresh +reload):\n%s\n%s", d, diags)
	}
}

// TestLoaderCache: a saved cache lets a new process load without
// validating anything again, with the same result; a damaged or foreign
// cache is ignored.
func TestLoaderCache(t *testing.T) {
	fsys := example(t)
	n2 := "nodes/rack1/r1-n02.yaml"
	fsys[n2] = &fstest.MapFile{Data: []byte(strings.Replace(string(fsys[n2].Data), "owner: platform", "owner: nobody", 1))}
	path := filepath.Join(t.TempDir(), "cache.json")

	var first Loader
	want, wantDiags := first.Load(fsys)
	if err := first.SaveCache(path); err != nil {
		t.Fatal(err)
	}
	var second Loader
	if err := second.LoadCache(path); err != nil {
		t.Fatal(err)
	}
	got, gotDiags := second.Load(fsys)
	if second.Dirty() {
		t.Error("a load from a complete cache validated files again")
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("inventory from the cache (-fresh +cached):\n%s", d)
	}
	if d := cmp.Diff(wantDiags, gotDiags); d != "" || len(gotDiags) != 1 {
		t.Errorf("diagnostics from the cache (-fresh +cached):\n%s", d)
	}

	for name, content := range map[string]string{"damaged": "{not json", "foreign": `{"format":"metalsync-schema-cache/1","schema":"other","entries":[]}`} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		var l Loader
		if err := l.LoadCache(path); err != nil {
			t.Errorf("%s cache: %v", name, err)
		}
		if _, diags := l.Load(fsys); !l.Dirty() || len(diags) != 1 {
			t.Errorf("%s cache: want a full validation, got dirty=%v diags=%v", name, l.Dirty(), diags)
		}
	}
}
