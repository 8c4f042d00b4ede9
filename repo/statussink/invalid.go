package statussink

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"metalsync.dev/metalsync/schema"
)

// InvalidReportFile is the file of the status directory that explains why
// the newest inventory revision was refused; it is removed when a valid
// revision arrives. It is not .yaml, so no loader takes it for a node.
const InvalidReportFile = "inventory-errors.txt"

// FileUpdater takes a file of the status directory that is not a node's
// status (nil data deletes it), with a summary for the commit message;
// *gitstatus.Writer and Dir are ones.
type FileUpdater interface {
	UpdateFile(name string, data []byte, summary string) error
}

// refusedRights reports whether diags refuse changes by the rights table
// (rights.DiagnosticCode; not imported, so status writing stays a leaf).
func refusedRights(diags schema.Diagnostics) bool {
	for _, d := range diags {
		if d.Code == "rights" {
			return true
		}
	}
	return false
}

// InvalidReport reports refused revisions in InvalidReportFile: it is the
// daemon's InvalidReporter.
type InvalidReport struct {
	Files FileUpdater
	Log   *slog.Logger

	mu    sync.Mutex
	clean bool // no report is known to be on file; guarded by mu
}

// ReportInvalid writes the report for a refused revision, or asks for its
// removal when diags is nil. Removing the report is asked for once after
// each refused revision (and once at start, when a report from an earlier
// run may be on file), not on every valid revision.
func (r *InvalidReport) ReportInvalid(rev string, diags schema.Diagnostics) {
	r.mu.Lock()
	if diags == nil && r.clean {
		r.mu.Unlock()
		return
	}
	r.clean = diags == nil
	r.mu.Unlock()
	var data []byte
	summary := "inventory valid again"
	if diags != nil {
		var b strings.Builder
		if refusedRights(diags) {
			fmt.Fprintf(&b, "metalsync refused revision %s: it holds changes their authors may not make (see the rights table), so no hardware was changed for it.\n", rev)
			b.WriteString("The last good revision is still being reconciled. Revert these, or have an admin approve them with a signed merge commit:\n\n")
		} else {
			fmt.Fprintf(&b, "metalsync refused revision %s: the inventory is invalid, so no hardware was changed for it.\n", rev)
			b.WriteString("The last valid revision is still being reconciled. Fix these and push again:\n\n")
		}
		b.WriteString(diags.String())
		data = []byte(b.String())
		summary = fmt.Sprintf("inventory %s invalid: %d errors", short(rev), diags.Errors())
	}
	if err := r.Files.UpdateFile(InvalidReportFile, data, summary); err != nil && r.Log != nil {
		r.Log.Warn("write invalid-inventory report", "err", err)
	}
}

// short is the abbreviated form of a revision for commit messages.
func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
