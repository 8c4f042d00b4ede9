package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the agent binary small (it is decompressed under
// emulation at every boot): the standard library, netlink and x/sys, and
// the leaf packages of metalsync it needs. Widen the list on purpose only.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{
		"github.com/vishvananda/netlink", "github.com/vishvananda/netns", "golang.org/x/sys/",
		"metalsync.dev/metalsync/agent/", "metalsync.dev/metalsync/agentapi",
		"metalsync.dev/metalsync/credentials/secret", "metalsync.dev/metalsync/internal/backoff",
		"metalsync.dev/metalsync/internal/clock", "metalsync.dev/metalsync/render/networkdata",
		"metalsync.dev/metalsync/cmd/metalsync-agent",
	}
	for _, p := range strings.Fields(string(out)) {
		ok := false
		for _, a := range allowed {
			ok = ok || p == a || strings.HasPrefix(p, a)
		}
		if !ok {
			t.Errorf("the agent imports %s", p)
		}
	}
}
