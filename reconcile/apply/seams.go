package apply

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

// Agent runs in-band steps (write the image, erase disks, software RAID,
// in-band inspection) in the deploy agent booted on the node.
type Agent interface {
	RunStep(ctx context.Context, node string, step plan.Step) (AgentResult, error)
}

// AgentResult is what an in-band step reports.
type AgentResult struct {
	// Simulated marks a result no real agent produced; it is recorded in
	// status so nobody mistakes it for a real deployment.
	Simulated bool
	// Inventory is the hardware an inspection found.
	Inventory map[string]any
}

// Media publishes per-node boot media (the agent image plus the node's
// network configuration) for nodes without DHCP.
type Media interface {
	Publish(ctx context.Context, node *schema.Node) (url, sha256 string, err error)
	Unpublish(ctx context.Context, node string) error
}

// StatusSink stores node status as the executor goes. A write must be
// durable when it returns: the executor relies on it to never repeat a
// completed destructive step after a restart. It takes no ctx on purpose:
// progress is recorded even while the run is being cancelled.
type StatusSink interface {
	WriteStatus(node string, st schema.NodeStatusBody) error
	ForgetStatus(node string) error
}

// DirSink writes status files (status/<node>.yaml) into a directory.
type DirSink struct {
	Dir string
	// SubDir, when set, names the sub-directory of Dir for a node's status
	// (mirroring its place under nodes/); nil keeps every file in Dir.
	SubDir func(node string) string
	// Was, when set, returns where the node's status file is now, relative
	// to Dir ("" for none), so that a node whose place changed leaves no
	// stale copy behind.
	Was func(node string) string
}

func (d DirSink) path(node string) string {
	if d.SubDir == nil {
		return filepath.Join(d.Dir, node+".yaml")
	}
	return filepath.Join(d.Dir, filepath.FromSlash(d.SubDir(node)), node+".yaml")
}

// WriteStatus writes the node's status file atomically.
func (d DirSink) WriteStatus(node string, st schema.NodeStatusBody) error {
	b, err := schema.MarshalStatus(&schema.NodeStatus{Metadata: schema.Meta{Name: node}, Status: st})
	if err != nil {
		return err
	}
	target := d.path(node)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("status %s: %w", node, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+node+".*.tmp")
	if err != nil {
		return fmt.Errorf("status %s: %w", node, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("status %s: %w", node, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("status %s: %w", node, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("status %s: %w", node, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("status %s: %w", node, err)
	}
	if d.Was != nil {
		if was := d.Was(node); was != "" && filepath.Join(d.Dir, filepath.FromSlash(was)) != target {
			if err := os.Remove(filepath.Join(d.Dir, filepath.FromSlash(was))); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("status %s: remove old copy: %w", node, err)
			}
		}
	}
	return nil
}

// ForgetStatus removes the node's status file.
func (d DirSink) ForgetStatus(node string) error {
	p := d.path(node)
	if d.Was != nil {
		if was := d.Was(node); was != "" {
			p = filepath.Join(d.Dir, filepath.FromSlash(was))
		}
	}
	err := os.Remove(p)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("status %s: %w", node, err)
	}
	return nil
}

// MemorySink keeps status in memory, for tests (this package's and the
// daemon's); nothing outside tests writes status through it.
type MemorySink struct {
	mu     sync.Mutex
	status map[string]schema.NodeStatusBody // guarded by mu
	writes int                              // guarded by mu
}

// WriteStatus stores the status.
func (m *MemorySink) WriteStatus(node string, st schema.NodeStatusBody) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.status == nil {
		m.status = map[string]schema.NodeStatusBody{}
	}
	m.status[node] = st
	m.writes++
	return nil
}

// ForgetStatus drops the status.
func (m *MemorySink) ForgetStatus(node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.status, node)
	return nil
}

// Snapshot returns a copy of every status.
func (m *MemorySink) Snapshot() map[string]schema.NodeStatusBody {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.status)
}

// EventKind says what happened.
type EventKind int

// Event kinds.
const (
	NodeStarted EventKind = iota + 1
	StepStarted
	StepRetry
	StepFinished
	StepFailed
	StatusWritten
	FaultSet
	FaultCleared
	NodeFinished
)

func (k EventKind) String() string {
	switch k {
	case NodeStarted:
		return "node started"
	case StepStarted:
		return "step started"
	case StepRetry:
		return "step retry"
	case StepFinished:
		return "step finished"
	case StepFailed:
		return "step failed"
	case StatusWritten:
		return "status written"
	case FaultSet:
		return "fault set"
	case FaultCleared:
		return "fault cleared"
	case NodeFinished:
		return "node finished"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one thing the executor did.
type Event struct {
	Time time.Time
	Kind EventKind
	Node string
	Op   plan.Kind
	// Step is the step's index in its operation, Steps their number.
	Step, Steps int
	StepName    string
	Attempt     int
	Err         error
	// Result is set on NodeFinished.
	Result *NodeResult
}

// Observer receives events. Calls come from many goroutines at once; an
// observer must be safe for that and must not block for long.
type Observer interface {
	Event(e Event)
}

// Observers fans events out to several observers.
type Observers []Observer

// Event passes e to every observer.
func (os Observers) Event(e Event) {
	for _, o := range os {
		o.Event(e)
	}
}

// LogObserver logs events with slog.
type LogObserver struct {
	Logger *slog.Logger
}

// Event logs e.
func (l LogObserver) Event(e Event) {
	attrs := []any{"node", e.Node}
	if e.Op != 0 {
		attrs = append(attrs, "op", e.Op.String())
	}
	if e.StepName != "" {
		attrs = append(attrs, "step", e.StepName, "index", e.Step+1, "of", e.Steps)
	}
	if e.Attempt > 0 {
		attrs = append(attrs, "attempt", e.Attempt+1)
	}
	level := slog.LevelDebug
	switch e.Kind {
	case StepFailed, FaultSet:
		level = slog.LevelWarn
	case NodeFinished, FaultCleared, StepRetry:
		level = slog.LevelInfo
	case NodeStarted, StepStarted, StepFinished, StatusWritten:
	}
	if e.Err != nil {
		attrs = append(attrs, "err", Sanitize(e.Err))
	}
	if e.Result != nil {
		attrs = append(attrs, "result", e.Result.Outcome.String(), "state", e.Result.Reached, "duration", e.Result.Duration)
	}
	l.Logger.Log(context.Background(), level, e.Kind.String(), attrs...)
}
