package schema

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestTypeErrorsReadWantGot checks that a value of the wrong type is
// reported as what the schema wants, then what the file has, whichever
// order CUE names the two sides in.
func TestTypeErrorsReadWantGot(t *testing.T) {
	tests := []struct {
		name, file, from, to, want string
	}{
		{"bool given a string", "owners/edge-retail.yaml", "  members:", "  admin: \"yes\"\n  members:", `spec.admin: want bool, got string "yes"`},
		{"bool given an int", "owners/edge-retail.yaml", "  members:", "  admin: 3\n  members:", `spec.admin: want bool, got int 3`},
		{"string given a bool", "owners/edge-retail.yaml", "  description: Retail", "  description: true\n  x: Retail", `spec.description: want string, got bool true`},
		{"enum given an int", "nodes/rack2/r2-n04.yaml", "  power: on", "  power: 5", `spec.power: want "off" or "on", got int 5`},
		{"enum given a string", "nodes/rack2/r2-n04.yaml", "  power: on", "  power: \"yes\"", `spec.power: want "off" or "on", got string "yes"`},
		{"enum given a list", "nodes/rack2/r2-n04.yaml", "  power: on", "  power: [on]", `spec.power: want "off" or "on", got list ["on"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := example(t)
			src := string(fsys[tt.file].Data)
			if !strings.Contains(src, tt.from) {
				t.Fatalf("%s lacks %q", tt.file, tt.from)
			}
			fsys[tt.file] = &fstest.MapFile{Data: []byte(strings.Replace(src, tt.from, tt.to, 1))}
			_, diags := Load(fsys)
			if !strings.Contains(diags.String(), tt.file) || !strings.Contains(diags.String(), tt.want) {
				t.Errorf("diagnostics lack %q in %s:\n%s", tt.want, tt.file, diags)
			}
			for _, bad := range []string{"must be", "is not one of"} {
				if strings.Contains(diags.String(), bad) {
					t.Errorf("diagnostics still say %q:\n%s", bad, diags)
				}
			}
		})
	}
}

// TestUpperCaseExtensionWarns checks that a resource file whose extension
// differs from .yaml only in case is named in a warning, not left out
// silently, and that .yml files load.
func TestUpperCaseExtensionWarns(t *testing.T) {
	fsys := example(t)
	data := fsys["nodes/rack2/r2-n04.yaml"].Data
	delete(fsys, "nodes/rack2/r2-n04.yaml")
	fsys["nodes/rack2/r2-n04.YAML"] = &fstest.MapFile{Data: data}
	owner := fsys["owners/platform.yaml"].Data
	delete(fsys, "owners/platform.yaml")
	fsys["owners/platform.yml"] = &fstest.MapFile{Data: owner}
	inv, diags := Load(fsys)
	if diags.HasErrors() {
		t.Fatalf("errors:\n%s", diags)
	}
	want := "nodes/rack2/r2-n04.YAML: warning: not loaded: the extension .YAML is not .yaml or .yml"
	if !strings.Contains(diags.String(), want) || !strings.Contains(diags.String(), "rename it to r2-n04.yaml") {
		t.Errorf("diagnostics lack %q and its hint:\n%s", want, diags)
	}
	for _, n := range inv.Nodes {
		if n.Metadata.Name == "r2-n04" {
			t.Errorf("r2-n04.YAML was loaded")
		}
	}
	found := false
	for _, o := range inv.Owners {
		found = found || o.Metadata.Name == "platform"
	}
	if !found {
		t.Errorf("owners/platform.yml was not loaded")
	}
}
