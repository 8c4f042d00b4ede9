// Package statussink stores what the daemon and `metalsync apply` observed:
// node status files and the invalid-inventory report, either through the
// coalescing Git writer (repo/gitstatus) or straight into a directory.
//
// A node's status mirrors its file under nodes/ (nodes/rack1/r1-n01.yaml →
// status/rack1/r1-n01.yaml), so that a status commit rewrites small trees,
// not one tree as large as the fleet; a status found elsewhere (an older
// flat layout, or a node that moved racks) is removed as the new one is
// written.
package statussink

import (
	"context"
	"fmt"
	"path"
	"sync"

	"metalsync.dev/metalsync/schema"
)

// Updater takes a node's status file in a sub-directory of the status
// directory (nil data deletes it), with a summary for the commit message;
// *gitstatus.Writer is one.
type Updater interface {
	UpdateAt(dir, node string, data []byte, summary string) error
	// Sync returns once every update so far is committed and pushed.
	Sync(ctx context.Context) error
}

// Git writes status files through a coalescing Git writer. It is the
// executor's status sink in daemon mode with a Git remote; call Track with
// every revision the daemon loads.
type Git struct {
	W Updater

	mu    sync.Mutex
	last  map[string]string // node -> last written provision state; guarded by mu
	want  map[string]string // node -> status sub-directory its spec asks for; guarded by mu
	where map[string]string // node -> sub-directory its status file is in now; guarded by mu
}

// Track records, for each revision, where each node's status belongs and
// (from the status files the revision holds) where it is now.
func (g *Git) Track(inv *schema.Inventory) {
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
func (g *Git) WriteStatus(node string, st schema.NodeStatusBody) error {
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

// Sync implements apply.Syncer: every status written so far is pushed
// (one commit shared by every sync waiting at the time).
func (g *Git) Sync(ctx context.Context) error { return g.W.Sync(ctx) }

// ForgetStatus implements apply.StatusSink.
func (g *Git) ForgetStatus(node string) error {
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
