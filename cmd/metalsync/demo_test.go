package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/apply"
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
	// Piped output keeps its order: the daemon's line right after the
	// progress header, then the first pass's lines, then the status.
	o := out.String()
	prog, daemonLine, first, status := strings.Index(o, "== Progress"), strings.Index(o, "(daemon following"),
		strings.Index(o, " → "), strings.Index(o, "== Status after the first commit")
	if !(prog >= 0 && prog < daemonLine && daemonLine < first && first < status) {
		t.Errorf("demo output out of order (progress header %d, daemon line %d, first pass line %d, status header %d):\n%s", prog, daemonLine, first, status, o)
	}
	for _, want := range []string{
		"== Plan of the first commit",
		"r1-n04   active → manageable: done",
		"status/rack1/r1-n02.yaml",
		"Retire r1-n04, roll Ubuntu 24.04.1 to r1-n02",
		// The fleet page's history, read from the daemon's Git store.
		"== History of r1-n02 on the fleet page",
		"Bob <bob@example.net>: Retire r1-n04, roll Ubuntu 24.04.1 to r1-n02\n    spec.provision.image.checksum: sha256:84f8",
		"    spec.provision.image.url: http://",
		"status commits by metalsync <",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDemoProgressOrder checks the demo's output order when its output is
// a pipe: a pass that ends before the daemon's own line is printed after
// it, and a header printed once the waited-for state is reached comes after
// the lines of the pass that reached it.
func TestDemoProgressOrder(t *testing.T) {
	var buf bytes.Buffer
	env := &Env{Stdio: Stdio{Out: &lockedWriter{w: &buf}, Err: &bytes.Buffer{}}}
	ready := make(chan struct{})
	hook, passes := passHook(t.Context(), env, ready)
	dd := &demoDaemon{passes: passes}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The daemon's first pass ends before the demo printed its line.
		hook(apply.Report{Nodes: []apply.NodeResult{{Node: "n1", From: "enroll", Reached: "manageable", Outcome: apply.Done}}},
			reconcile.Observed{"n1": {ProvisionState: "manageable"}})
		hook(apply.Report{Nodes: []apply.NodeResult{{Node: "n1", From: "manageable", Reached: "available", Outcome: apply.Done}}},
			reconcile.Observed{"n1": {ProvisionState: "available"}})
	}()
	say(env, "   (daemon following the remote)")
	close(ready)
	err := dd.waitPasses(t.Context(), time.Minute, func(obs reconcile.Observed) bool { return obs["n1"].ProvisionState == "available" })
	if err != nil {
		t.Fatal(err)
	}
	say(env, "\n== Status")
	<-done
	got := buf.String()
	order := []string{"(daemon following", "n1       enroll → manageable", "n1       manageable → available", "== Status"}
	at := 0
	for _, want := range order {
		i := strings.Index(got[at:], want)
		if i < 0 {
			t.Fatalf("output lacks %q after offset %d, or has it out of order:\n%s", want, at, got)
		}
		at += i + len(want)
	}
	if dd.last["n1"].ProvisionState != "available" {
		t.Errorf("dd.last = %v, want the state the second pass left", dd.last)
	}
}
