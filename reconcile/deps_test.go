package reconcile

import (
	"os/exec"
	"strings"
	"testing"

	"metalsync.dev/metalsync/test/tools"
)

// forbidden reports why a package may not be a dependency of the pure
// planner, or "" when it may.
func forbidden(pkg string) string {
	switch {
	case strings.HasPrefix(pkg, "metalsync.dev/metalsync/drivers/"):
		return "a driver implementation"
	case strings.HasPrefix(pkg, "github.com/go-git/"):
		return "go-git"
	case pkg == "os/exec":
		return "os/exec"
	case strings.HasPrefix(pkg, "net/") && pkg != "net/url" && pkg != "net/netip":
		return "networking"
	}
	return ""
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	gobin := tools.Require(t, "go")
	out, err := exec.Command(gobin, append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

// TestDependencies keeps the planner pure. reconcile/plan is a leaf and
// is checked with all its dependencies. reconcile needs schema, whose CUE
// loader brings net/http along (CUE can fetch modules); reconcile is
// checked on its own imports and on every dependency it adds on top of
// schema's.
func TestDependencies(t *testing.T) {
	for _, dep := range goList(t, "-deps", "metalsync.dev/metalsync/reconcile/plan") {
		if why := forbidden(dep); why != "" || dep == "net" || strings.HasPrefix(dep, "metalsync.dev/") && dep != "metalsync.dev/metalsync/reconcile/plan" {
			t.Errorf("reconcile/plan depends on %s; it must stay a leaf", dep)
		}
	}
	schemaDeps := map[string]bool{}
	for _, dep := range goList(t, "-deps", "metalsync.dev/metalsync/schema") {
		schemaDeps[dep] = true
	}
	direct := goList(t, "-f", `{{join .Imports " "}}`, "metalsync.dev/metalsync/reconcile")
	for _, dep := range direct {
		if why := forbidden(dep); why != "" || dep == "net" || dep == "os" {
			t.Errorf("reconcile imports %s (%s)", dep, why)
		}
	}
	for _, dep := range goList(t, "-deps", "metalsync.dev/metalsync/reconcile") {
		if schemaDeps[dep] {
			continue
		}
		if why := forbidden(dep); why != "" {
			t.Errorf("reconcile depends on %s (%s)", dep, why)
		}
	}
}
