package tools

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// UpdateEnv set to 1 makes Golden rewrite golden files from what the
// tests got.
const UpdateEnv = "METALSYNC_UPDATE"

// Golden compares got with the golden file at path, or rewrites the file
// when METALSYNC_UPDATE=1.
func Golden(tb testing.TB, path string, got []byte) {
	tb.Helper()
	if os.Getenv(UpdateEnv) == "1" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run with %s=1 to create it)", err, UpdateEnv)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		tb.Errorf("%s differs (-want +got; %s=1 rewrites it):\n%s", path, UpdateEnv, diff)
	}
}
