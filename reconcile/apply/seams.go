package apply

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/repo/statussink"
	"metalsync.dev/metalsync/schema"
)

// Agent runs in-band steps (write the image, erase disks, software RAID,
// in-band inspection) in the deploy agent booted on the node.
//
// Every step is a command with an id that stays the same across attempts
// and restarts (it is recorded in status before the step starts). An agent
// that already ran a command returns that run's result and runs nothing,
// so a restarted executor never makes the machine run a step twice.
type Agent interface {
	RunStep(ctx context.Context, node, id string, step plan.Step) (AgentResult, error)
	// Command reports what the agent knows of command id: its result and
	// true when it ran; false when the agent never ran it (or no longer
	// knows, after the agent itself restarted).
	Command(ctx context.Context, node, id string) (AgentResult, bool, error)
}

// NodeMediaAgent is an Agent that runs on the node, booted from the node's
// own media: the token it calls back with is derived from that media's
// epoch and reaches the node on nothing else. Every node such an agent
// serves gets per-node media, with DHCP or without; an agent that is not
// one (the simulated agent) needs per-node media only for a node's
// static network.
type NodeMediaAgent interface {
	Agent
	// BootsFromNodeMedia reports whether the agent needs the node's media.
	BootsFromNodeMedia() bool
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
// network configuration and, for a NodeMediaAgent, its token) for nodes
// without DHCP and for every node a NodeMediaAgent serves.
type Media interface {
	// Publish renders and publishes node's media. epoch names this
	// publication (it is recorded in status); the agent's token is
	// derived from it, so a restarted daemon still knows the token.
	Publish(ctx context.Context, node *schema.Node, epoch string) (url, sha256 string, err error)
	Unpublish(ctx context.Context, node string) error
}

// StatusSink stores node status as the executor goes. It takes no ctx on
// purpose: progress is recorded even while the run is being cancelled.
//
// A sink that batches writes implements Syncer; one that does not must be
// durable when WriteStatus returns. The executor syncs before a destructive
// step starts (its intent) and after it ends (its result), so that a
// restart never finds a destructive step done without knowing it.
type StatusSink interface {
	WriteStatus(node string, st schema.NodeStatusBody) error
	ForgetStatus(node string) error
}

// Syncer is a StatusSink that batches: Sync returns once every write made
// before the call is durable (for Git: committed and pushed).
type Syncer interface {
	Sync(ctx context.Context) error
}

// DirSink writes status files (status/<node>.yaml) into a directory, for
// `metalsync apply`. It is statussink.Dir, which the daemon's local mode
// shares; status I/O lives in repo/statussink.
type DirSink = statussink.Dir

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
	// StepRecovered: a restart found the step's intent without a result;
	// Err says what was decided.
	StepRecovered
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
	case StepRecovered:
		return "step recovered"
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
