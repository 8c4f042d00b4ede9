package daemon

import (
	"fmt"
	"sync"

	"metalsync.dev/metalsync/schema"
)

// StatusUpdater takes a node's status file (nil deletes it) with a summary
// for the commit message; *gitstatus.Writer is one.
type StatusUpdater interface {
	Update(node string, data []byte, summary string) error
}

// GitSink writes status files through a coalescing Git writer. It is the
// executor's status sink in daemon mode.
type GitSink struct {
	W StatusUpdater

	mu   sync.Mutex
	last map[string]string // node -> last written provision state; guarded by mu
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
	prev := g.last[node]
	g.last[node] = st.ProvisionState
	g.mu.Unlock()
	summary := st.ProvisionState
	if prev != "" && prev != st.ProvisionState {
		summary = prev + "→" + st.ProvisionState
	}
	if st.Fault != nil {
		summary += " (fault: " + st.Fault.Reason + ")"
	}
	if err := g.W.Update(node, b, summary); err != nil {
		return fmt.Errorf("status of %s: %w", node, err)
	}
	return nil
}

// ForgetStatus implements apply.StatusSink.
func (g *GitSink) ForgetStatus(node string) error {
	g.mu.Lock()
	delete(g.last, node)
	g.mu.Unlock()
	if err := g.W.Update(node, nil, "forgotten"); err != nil {
		return fmt.Errorf("status of %s: %w", node, err)
	}
	return nil
}
