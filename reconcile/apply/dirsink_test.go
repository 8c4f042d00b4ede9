package apply

import (
	"os"
	"path/filepath"
	"testing"

	"metalsync.dev/metalsync/schema"
)

// TestDirSinkMirrorsNodes: with SubDir the status file goes to the node's
// sub-directory, and the copy Was names elsewhere is removed.
func TestDirSinkMirrorsNodes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "n1.yaml"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := DirSink{Dir: dir, SubDir: func(string) string { return "rack1" }, Was: func(string) string { return "n1.yaml" }}
	if err := d.WriteStatus("n1", schema.NodeStatusBody{ProvisionState: "manageable"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rack1", "n1.yaml")); err != nil {
		t.Errorf("status not in its sub-directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "n1.yaml")); !os.IsNotExist(err) {
		t.Errorf("old copy still there: %v", err)
	}
	d.Was = func(string) string { return "rack1/n1.yaml" }
	if err := d.ForgetStatus("n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rack1", "n1.yaml")); !os.IsNotExist(err) {
		t.Errorf("forgotten status still there: %v", err)
	}
}
