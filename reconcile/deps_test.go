package reconcile

import (
	"os/exec"
	"strings"
	"testing"

	"metalsync.dev/metalsync/test/tools"
)

// The planner may use these packages of metalsync and no others: the
// schema it reads, the plan types it writes, and the driver contract
// (capability names only; a leaf with no I/O of its own). Driver
// implementations stay behind the Capabilities interface the planner owns.
var plannerInternal = map[string]bool{
	"metalsync.dev/metalsync/schema":             true,
	"metalsync.dev/metalsync/reconcile/plan":     true,
	"metalsync.dev/metalsync/drivers":            true,
	"metalsync.dev/metalsync/credentials/secret": true, // a value type of the driver contract
	"metalsync.dev/metalsync/internal/spelling":  true, // the schema's did-you-mean: pure string math
	"metalsync.dev/metalsync/reconcile":          true,
}

// forbidden reports why a package may not be a dependency of the pure
// planner, or "" when it may.
func forbidden(pkg string) string {
	switch {
	case strings.HasPrefix(pkg, "metalsync.dev/metalsync/drivers/"):
		return "a driver implementation"
	case strings.HasPrefix(pkg, "metalsync.dev/") && !plannerInternal[pkg]:
		return "not the schema, the plan types or the driver contract"
	case strings.HasPrefix(pkg, "github.com/go-git/"):
		return "go-git"
	case pkg == "os/exec":
		return "os/exec"
	case pkg == "net", strings.HasPrefix(pkg, "net/") && pkg != "net/url" && pkg != "net/netip":
		return "networking"
	}
	return ""
}

// forbiddenImport is forbidden for what the planner imports itself: it
// does no I/O at all, though schema (which reads files) may.
func forbiddenImport(pkg string) string {
	switch pkg {
	case "os", "io/fs", "syscall", "log":
		return "I/O"
	}
	return forbidden(pkg)
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
// is checked with all its dependencies. reconcile is checked on its own
// imports, and on all its dependencies but the standard library ones
// that schema's CUE loader brings along (CUE can fetch modules, so
// net/http and os/exec are among them). Driver implementations, other
// metalsync packages and go-git are refused at any depth, through schema
// too.
func TestDependencies(t *testing.T) {
	for _, dep := range goList(t, "-deps", "metalsync.dev/metalsync/reconcile/plan") {
		if why := forbidden(dep); why != "" || strings.HasPrefix(dep, "metalsync.dev/") && dep != "metalsync.dev/metalsync/reconcile/plan" {
			t.Errorf("reconcile/plan depends on %s; it must stay a leaf", dep)
		}
	}
	for _, dep := range goList(t, "-f", `{{join .Imports " "}}`, "metalsync.dev/metalsync/reconcile") {
		if why := forbiddenImport(dep); why != "" {
			t.Errorf("reconcile imports %s (%s)", dep, why)
		}
	}
	schemaStd := map[string]bool{}
	for _, dep := range goList(t, "-f", `{{if .Standard}}{{.ImportPath}}{{end}}`, "-deps", "metalsync.dev/metalsync/schema") {
		schemaStd[dep] = true
	}
	for _, dep := range goList(t, "-deps", "metalsync.dev/metalsync/reconcile") {
		if schemaStd[dep] {
			continue
		}
		if why := forbidden(dep); why != "" {
			t.Errorf("reconcile depends on %s (%s)", dep, why)
		}
	}
}
