package schema

import (
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
