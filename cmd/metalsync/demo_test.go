package main

import (
	"bytes"
	"strings"
	"testing"

	"metalsync.dev/metalsync/test/tools"
)

// TestDemo runs `metalsync demo` (what `make demo` runs) end to end: it
// must converge, act on the pushed change, print the remote's log and exit
// 0.
func TestDemo(t *testing.T) {
	tools.Require(t, "git")
	var out, errb bytes.Buffer
	code := Main([]string{"demo", "--dir", t.TempDir()}, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{
		"== Plan of the first commit",
		"r1-n04   active → manageable: done",
		"status/rack1/r1-n02.yaml",
		"Retire r1-n04, roll Ubuntu 24.04.1 to r1-n02",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
