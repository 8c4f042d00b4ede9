package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"metalsync": func() {
			os.Exit(Main(os.Args[1:], Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
		},
	})
}

// TestScripts runs the CLI scripts in testdata/script. Each holds an
// inventory tree and the exact output expected; METALSYNC_UPDATE=1 rewrites
// the expectations.
func TestScripts(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: os.Getenv("METALSYNC_UPDATE") == "1",
		Setup: func(e *testscript.Env) error {
			// Scripts may copy the example inventory with `cp`.
			e.Setenv("REPO_ROOT", root)
			// The validation cache lives in the script's own directory.
			e.Setenv("METALSYNC_CACHE_DIR", e.WorkDir+"/.cache")
			// Scripts needing a tool skip without it, but fail in CI.
			e.Setenv("CI", os.Getenv("CI"))
			return nil
		},
	})
}
