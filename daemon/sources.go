package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"

	"metalsync.dev/metalsync/schema"
)

// StatusUpdater takes a node's status file in a sub-directory of the
// status directory (nil data deletes it), with a summary for the commit
// message; *gitstatus.Writer is one.
type StatusUpdater interface {
	UpdateAt(dir, node string, data []byte, summary string) error
	// Sync returns once every update so far is committed and pushed.
	Sync(ctx context.Context) error
}

// GitSink writes status files through a coalescing Git writer. It is the
// executor's status sink in daemon mode. A node's status goes to the
// sub-directory of status/ that mirrors its file under nodes/
// (nodes/rack1/r1-n01.yaml → status/rack1/r1-n01.yaml), so that a status
// commit rewrites small trees, not one tree as large as the fleet.
type GitSink struct {
	W StatusUpdater

	mu    sync.Mutex
	last  map[string]string // node -> last written provision state; guarded by mu
	want  map[string]string // node -> status sub-directory its spec asks for; guarded by mu
	where map[string]string // node -> sub-directory its status file is in now; guarded by mu
}

// Track records, for each revision, where each node's status belongs and
// (from the status files the revision holds) where it is now.
func (g *GitSink) Track(inv *schema.Inventory) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.where == nil {
		g.where = map[string]string{}
	}
	g.want = map[string]string{}
	for _, n := range inv.Nodes {
		g.want[n.Name()] = inv.StatusSubDir(n.Name())
	}
	for name := range inv.Status {
		if _, known := g.where[name]; !known {
			g.where[name] = path.Dir(inv.StatusPath(name))
			if g.where[name] == "." {
				g.where[name] = ""
			}
		}
	}
}

// WriteStatus implements apply.StatusSink.
func (g *GitSink) WriteStatus(node string, st schema.NodeStatusBody) error {
	b, err := schema.MarshalStatus(&schema.NodeStatus{Metadata: schema.Meta{Name: node}, Status: st})
	if err != nil {
		return err
	}
	g.mu.Lock()
	if g.last == nil {
		g.last = map[string]string{}
	}
	if g.where == nil {
		g.where = map[string]string{}
	}
	prev := g.last[node]
	g.last[node] = st.ProvisionState
	dir := g.want[node]
	old, had := g.where[node]
	g.where[node] = dir
	g.mu.Unlock()
	summary := st.ProvisionState
	if prev != "" && prev != st.ProvisionState {
		summary = prev + "→" + st.ProvisionState
	}
	if st.Fault != nil {
		summary += " (fault: " + st.Fault.Reason + ")"
	}
	if had && old != dir {
		if err := g.W.UpdateAt(old, node, nil, "moved to "+path.Join(dir, node+".yaml")); err != nil {
			return fmt.Errorf("status of %s: %w", node, err)
		}
	}
	if err := g.W.UpdateAt(dir, node, b, summary); err != nil {
		return fmt.Errorf("status of %s: %w", node, err)
	}
	return nil
}

// Sync implements apply.Syncer: every status written so far is pushed.
func (g *GitSink) Sync(ctx context.Context) error { return g.W.Sync(ctx) }

// ForgetStatus implements apply.StatusSink.
func (g *GitSink) ForgetStatus(node string) error {
	g.mu.Lock()
	delete(g.last, node)
	dir := g.where[node]
	delete(g.where, node)
	g.mu.Unlock()
	if err := g.W.UpdateAt(dir, node, nil, "forgotten"); err != nil {
		return fmt.Errorf("status of %s: %w", node, err)
	}
	return nil
}

// InvalidReportFile is the file of the status directory that explains why
// the newest inventory revision was refused; it is removed when a valid
// revision arrives. It is not .yaml, so no loader takes it for a node.
const InvalidReportFile = "inventory-errors.txt"

// FileWriter writes one file of the status directory (nil data deletes it).
type FileWriter func(name string, data []byte, summary string) error

// FileReporter reports refused revisions in InvalidReportFile.
type FileReporter struct {
	Write FileWriter
	Log   *slog.Logger

	mu    sync.Mutex
	clean bool // no report is known to be on file; guarded by mu
}

// ReportInvalid implements InvalidReporter. Removing the report is asked
// for once after each refused revision (and once at start, when a report
// from an earlier run may be on file), not on every valid revision.
func (r *FileReporter) ReportInvalid(rev string, diags schema.Diagnostics) {
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
		fmt.Fprintf(&b, "metalsync refused revision %s: the inventory is invalid, so no hardware was changed for it.\n", rev)
		b.WriteString("The last valid revision is still being reconciled. Fix these and push again:\n\n")
		b.WriteString(diags.String())
		data = []byte(b.String())
		summary = fmt.Sprintf("inventory %s invalid: %d errors", short(rev), diags.Errors())
	}
	if err := r.Write(InvalidReportFile, data, summary); err != nil && r.Log != nil {
		r.Log.Warn("write invalid-inventory report", "err", err)
	}
}
