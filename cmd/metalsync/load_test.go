package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateCache: the second run reads the cache, and an edit between
// runs is validated again (a cache must never hide an error).
func TestValidateCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("METALSYNC_CACHE_DIR", cache)
	repo := filepath.Join(t.TempDir(), "inv")
	if out, err := exec.Command("cp", "-r", "../../inventory-example", repo).CombinedOutput(); err != nil {
		t.Fatalf("copy example: %v: %s", err, out)
	}
	run := func() (int, string) {
		var out, errb bytes.Buffer
		code := Main([]string{"validate", repo}, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
		return code, out.String() + errb.String()
	}
	for i := range 2 {
		if code, out := run(); code != 0 || !strings.Contains(out, "valid") {
			t.Fatalf("run %d: exit %d: %s", i+1, code, out)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(cache, "schema-*.json")); len(m) != 1 {
		t.Fatalf("cache files %v, want one", m)
	}
	p := filepath.Join(repo, "nodes/rack1/r1-n02.yaml")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte("state: active"), []byte("state: actve"), 1), 0o644)
	code, out := run()
	if code != 1 || !strings.Contains(out, `nodes/rack1/r1-n02.yaml:20:5: spec.provision.state: want one of "active", "available", "manageable"; got string "actve"`) {
		t.Errorf("after an edit: exit %d:\n%s", code, out)
	}
}
