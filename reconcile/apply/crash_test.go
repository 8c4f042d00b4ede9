package apply

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/credentials"
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/fake"
	"metalsync.dev/metalsync/internal/backoff"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/schema"
)

// crashSink models a batching status store (the Git writer) in a process
// that dies: writes land in memory, Sync makes them durable, and at a
// chosen sink call the process "dies" (its context is cancelled and every
// later call fails) or, in push-failure mode, that one Sync fails.
type crashSink struct {
	mu       sync.Mutex
	volatile map[string]schema.NodeStatusBody
	durable  map[string]schema.NodeStatusBody
	calls    int // sink calls so far
	crashAt  int // 0: never
	failAt   int // a Sync that fails (push rejected); 0: never
	dead     bool
	kill     context.CancelFunc
}

var errDead = errors.New("process is dead")

func newCrashSink(durable map[string]schema.NodeStatusBody) *crashSink {
	if durable == nil {
		durable = map[string]schema.NodeStatusBody{}
	}
	return &crashSink{volatile: maps.Clone(durable), durable: maps.Clone(durable)}
}

// boundary counts one sink call and dies there if asked.
func (c *crashSink) boundary() error {
	c.calls++
	if c.dead {
		return errDead
	}
	if c.crashAt != 0 && c.calls == c.crashAt {
		c.dead = true
		c.kill()
		return errDead
	}
	return nil
}

func (c *crashSink) WriteStatus(node string, st schema.NodeStatusBody) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.boundary(); err != nil {
		return err
	}
	c.volatile[node] = st
	return nil
}

func (c *crashSink) ForgetStatus(node string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.boundary(); err != nil {
		return err
	}
	delete(c.volatile, node)
	return nil
}

func (c *crashSink) Sync(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.boundary(); err != nil {
		return err
	}
	if c.failAt != 0 && c.calls == c.failAt {
		return errors.New("push rejected: remote unreachable")
	}
	c.durable = maps.Clone(c.volatile)
	return nil
}

// flushAll is the batching writer's own periodic commit, which a live
// process makes between passes.
func (c *crashSink) flushAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dead {
		c.durable = maps.Clone(c.volatile)
	}
}

// crashWorld is the machines and their agents, which outlive the daemon.
type crashWorld struct {
	fleet *fake.Fleet
	agent *recordingAgent
	inv   *schema.Inventory
	nodes []string
}

func newCrashWorld(n int) *crashWorld {
	w := &crashWorld{fleet: fake.NewFleet(), agent: &recordingAgent{}}
	w.fleet.AutoCreate = true
	raid1 := &schema.DeployTemplate{Metadata: schema.Meta{Name: "raid1"}, Spec: schema.DeployTemplateSpec{Steps: []schema.Step{
		{Interface: "raid", Step: "create_configuration", Priority: 105, Args: &schema.RAIDArgs{LogicalDisks: []schema.LogicalDisk{{Name: "os", RAIDLevel: "1"}}}},
	}}}
	w.inv = &schema.Inventory{Templates: []*schema.DeployTemplate{raid1},
		Site: &schema.Site{Spec: schema.SiteSpec{Concurrency: &schema.Concurrency{Global: 4}}}}
	for i := range n {
		name := fmt.Sprintf("n%02d", i)
		w.fleet.Add(name)
		w.nodes = append(w.nodes, name)
		w.inv.Nodes = append(w.inv.Nodes, fakeNode(name, "active", func(s *schema.NodeSpec) { s.Provision.DeployTemplates = []string{"raid1"} }))
	}
	w.inv = loaded(w.inv)
	return w
}

// daemon is one process's executor over the world, starting from the
// durable status.
func (w *crashWorld) daemon(sink *crashSink) *Executor {
	env := map[string]string{"BMC_USER": "admin", "BMC_PASS": testPassword}
	return &Executor{
		Registry:      drivers.Registry{"fake": w.fleet.Entry()},
		Credentials:   credentials.Resolver{Getenv: func(k string) string { return env[k] }},
		AgentFor:      func(string) Agent { return w.agent },
		AgentImageURL: "http://127.0.0.1:9/agent.iso",
		Sink:          sink,
		Clock:         newClock(),
		Backoff:       backoff.Policy{Base: time.Second, Max: 10 * time.Second},
		Attempts:      4,
	}
}

// run passes until nothing is left to do or the process dies; it reports
// whether the process died.
func (w *crashWorld) run(t *testing.T, sink *crashSink) bool {
	t.Helper()
	ex := w.daemon(sink)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sink.kill = cancel
	for round := range 50 {
		sink.mu.Lock()
		obs := reconcile.Observed(maps.Clone(sink.volatile))
		sink.mu.Unlock()
		p := reconcile.Plan(w.inv, obs, ex.Capabilities(), ex.clock().Now())
		if !p.HasChanges() {
			return false
		}
		ex.Apply(ctx, w.inv, p, obs)
		if ctx.Err() != nil {
			return true
		}
		sink.flushAll()
		if round == 49 {
			t.Fatal("no convergence after 50 passes")
		}
	}
	return false
}

// check asserts every node is active and every destructive step ran once.
func (w *crashWorld) check(t *testing.T, sink *crashSink, label string) {
	t.Helper()
	for _, name := range w.nodes {
		st := sink.durable[name]
		if st.ProvisionState != "active" || st.Operation != nil {
			t.Errorf("%s: %s: %s op %+v lastError %q", label, name, st.ProvisionState, st.Operation, st.LastError)
		}
		if diff := cmp.Diff([]string{"deploy.erase_devices_metadata", "deploy.write_image"}, w.agent.Ran(name)); diff != "" {
			t.Errorf("%s: %s: in-band destructive steps (-want +got):\n%s", label, name, diff)
		}
		if ops := w.fleet.System(name).Counts().Ops; ops["create-volume"] != 1 {
			t.Errorf("%s: %s: %d RAID volumes created, want 1", label, name, ops["create-volume"])
		}
	}
}

// TestCrashAtEveryBoundary kills the daemon at every status write and sync
// of a deploy with a RAID template, in turn, then restarts it from what was
// durable: every destructive step runs exactly once and the node converges.
// The same runs with the push of each sync failing instead.
func TestCrashAtEveryBoundary(t *testing.T) {
	// How many sink calls an undisturbed deploy makes.
	w := newCrashWorld(1)
	sink := newCrashSink(nil)
	if w.run(t, sink) {
		t.Fatal("died without a crash point")
	}
	w.check(t, sink, "undisturbed")
	total := sink.calls
	if total < 10 {
		t.Fatalf("only %d sink calls in a deploy", total)
	}
	for _, mode := range []string{"kill", "push failure"} {
		for k := 1; k <= total; k++ {
			w := newCrashWorld(1)
			sink := newCrashSink(nil)
			if mode == "kill" {
				sink.crashAt = k
			} else {
				sink.failAt = k
			}
			died := w.run(t, sink)
			if died {
				// A new process, from what was durable.
				sink = newCrashSink(sink.durable)
				if w.run(t, sink) {
					t.Fatalf("%s at %d: the restarted daemon died", mode, k)
				}
			}
			w.check(t, sink, fmt.Sprintf("%s at boundary %d of %d", mode, k, total))
		}
	}
}

// TestCrashRandomized: 100 runs of a small fleet, each killed at random
// points (several times in a row) and with random push failures.
func TestCrashRandomized(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for run := range 100 {
		w := newCrashWorld(3)
		sink := newCrashSink(nil)
		for life := 0; ; life++ {
			if life < 4 {
				sink.crashAt = 1 + rng.IntN(60)
				sink.failAt = 1 + rng.IntN(60)
			}
			if !w.run(t, sink) {
				break
			}
			if life > 10 {
				t.Fatalf("run %d: still dying after %d lives", run, life)
			}
			sink = newCrashSink(sink.durable)
		}
		w.check(t, sink, fmt.Sprintf("run %d", run))
		if t.Failed() {
			return
		}
	}
}

// hungSink's pushes never finish: Sync waits for its context.
type hungSink struct{ MemorySink }

func (h *hungSink) Sync(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestHungRemoteHoldsNothing: when the push of an intent hangs, the
// destructive step does not start and the node is left to retry later,
// instead of waiting on the remote forever.
func TestHungRemoteHoldsNothing(t *testing.T) {
	w := newCrashWorld(1)
	ex := w.daemon(nil)
	ex.Sink = &hungSink{}
	ex.SyncTimeout = 50 * time.Millisecond
	p := reconcile.Plan(w.inv, nil, ex.Capabilities(), ex.clock().Now())
	rep := ex.Apply(t.Context(), w.inv, p, nil)
	res := rep.Nodes[0]
	if res.Outcome != RetryLater || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("outcome %v (%v); want retry later after the sync deadline", res.Outcome, res.Err)
	}
	if ran := w.agent.Ran(w.nodes[0]); len(ran) != 0 {
		t.Errorf("destructive steps ran without a durable intent: %v", ran)
	}
}
