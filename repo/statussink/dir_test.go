package statussink

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/test/inventorygen"
)

func TestDirWritesAndForgets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "status")
	d := Dir{Dir: dir}
	st := schema.NodeStatusBody{ProvisionState: "active", Power: "on", Operation: &schema.Operation{Kind: "deploy", Step: 3, Steps: []string{"a", "b", "c", "d"}}}
	if err := d.WriteStatus("n1", st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "n1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: NodeStatus", "name: n1", "provisionState: active", "step: 3"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status file lacks %q:\n%s", want, b)
		}
	}
	if err := d.ForgetStatus("n1"); err != nil {
		t.Fatal(err)
	}
	if err := d.ForgetStatus("n1"); err != nil {
		t.Errorf("forgetting twice: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left files: %v", entries)
	}
}

// TestDirMirrorsNodes: with SubDir the status file goes to the node's
// sub-directory, and the copy Was names elsewhere is removed.
func TestDirMirrorsNodes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "n1.yaml"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := Dir{Dir: dir, SubDir: func(string) string { return "rack1" }, Was: func(string) string { return "n1.yaml" }}
	if err := d.WriteStatus("n1", schema.NodeStatusBody{ProvisionState: "manageable"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rack1", "n1.yaml")); err != nil {
		t.Errorf("status not in its sub-directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "n1.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old copy still there: %v", err)
	}
	d.Was = func(string) string { return "rack1/n1.yaml" }
	if err := d.ForgetStatus("n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rack1", "n1.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("forgotten status still there: %v", err)
	}
}

// TestDirFollowsLayout: a Dir placed by a Layout writes where the tracked
// revision says, and moves a status left in the flat layout.
func TestDirFollowsLayout(t *testing.T) {
	files := inventorygen.Files(inventorygen.Options{Nodes: 2, Driver: "fake", Status: true})
	root := t.TempDir()
	n0, n1 := inventorygen.NodeName(0, 40), inventorygen.NodeName(1, 40)
	// n1's status is still in the flat layout.
	files["status/"+n1+".yaml"] = files["status/rack0000/"+n1+".yaml"]
	delete(files, "status/rack0000/"+n1+".yaml")
	fsys := fstest.MapFS{}
	for p, b := range files {
		fsys[p] = &fstest.MapFile{Data: b}
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inv, diags := schema.Load(fsys)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	layout := &Layout{}
	d := Dir{Dir: filepath.Join(root, "status"), SubDir: layout.SubDir, Was: layout.Was}
	if got := layout.SubDir(n0); got != "" {
		t.Errorf("SubDir before any revision = %q, want \"\"", got)
	}
	layout.Track(inv)
	for _, n := range []string{n0, n1} {
		if err := d.WriteStatus(n, schema.NodeStatusBody{ProvisionState: "manageable"}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		file   string
		exists bool
	}{
		{"status/rack0000/" + n0 + ".yaml", true},
		{"status/rack0000/" + n1 + ".yaml", true},
		{"status/" + n1 + ".yaml", false},
	}
	for _, tt := range tests {
		_, err := os.Stat(filepath.Join(root, tt.file))
		if got := err == nil; got != tt.exists {
			t.Errorf("%s exists = %v, want %v (%v)", tt.file, got, tt.exists, err)
		}
	}
}

func TestDirUpdateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "status")
	d := Dir{Dir: dir}
	p := filepath.Join(dir, InvalidReportFile)
	if err := d.UpdateFile(InvalidReportFile, nil, "nothing to remove"); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}
	if err := d.UpdateFile(InvalidReportFile, []byte("bad\n"), "invalid"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "bad\n" {
		t.Errorf("report = %q, %v; want \"bad\\n\"", b, err)
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != 0o644 {
		t.Errorf("report mode = %v, want 0644", fi.Mode().Perm())
	}
	if err := d.UpdateFile(InvalidReportFile, nil, "valid again"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("report still there: %v", err)
	}
}
