package daemon

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"metalsync.dev/metalsync/credentials"
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/fake"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/sim/agentsim"
	"metalsync.dev/metalsync/test/inventorygen"
)

// gatedExecutor holds the first Apply until released, and records how many
// Applies ran at once and which revision each was planned from.
type gatedExecutor struct {
	*apply.Executor
	gate     chan struct{} // closed to release the first Apply
	started  chan struct{} // closed when the first Apply starts
	ended    chan struct{} // buffered 1: a pass ended
	once     sync.Once
	inflight atomic.Int32
	maxIn    atomic.Int32

	mu      sync.Mutex
	commits []string // guarded by mu
}

func (g *gatedExecutor) Apply(ctx context.Context, inv *schema.Inventory, p plan.Plan, obs reconcile.Observed) apply.Report {
	n := g.inflight.Add(1)
	defer g.inflight.Add(-1)
	for {
		m := g.maxIn.Load()
		if n <= m || g.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	g.mu.Lock()
	g.commits = append(g.commits, p.InventoryCommit)
	g.mu.Unlock()
	first := false
	g.once.Do(func() { first = true; close(g.started) })
	if first {
		<-g.gate
	}
	rep := g.Executor.Apply(ctx, inv, p, obs)
	select {
	case g.ended <- struct{}{}:
	default:
	}
	return rep
}

// waitPasses checks cond now and after every pass until it holds.
func waitPasses(t *testing.T, ended <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(hung)
	defer timeout.Stop()
	for !cond() {
		select {
		case <-ended:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRevisionsDuringAPass pushes 2, then 10, revisions while a pass is
// running: passes never overlap, the next pass plans from the newest
// revision, and every destructive step runs once per node.
func TestRevisionsDuringAPass(t *testing.T) {
	for _, pushed := range []int{2, 10} {
		t.Run(fmt.Sprintf("%d revisions", pushed), func(t *testing.T) {
			fleet := fake.NewFleet()
			fleet.AutoCreate = true
			agent := &agentsim.Agent{}
			env := map[string]string{"BMC_USERNAME": "admin", "BMC_PASSWORD": "pw-Secret-123"}
			inner := &apply.Executor{
				Registry:      drivers.Registry{"fake": fleet.Entry()},
				Credentials:   credentials.Resolver{Getenv: func(k string) string { return env[k] }},
				AgentFor:      func(string) apply.Agent { return agent },
				AgentImageURL: "http://127.0.0.1:9/agent.iso",
			}
			ex := &gatedExecutor{Executor: inner, gate: make(chan struct{}), started: make(chan struct{}), ended: make(chan struct{}, 1)}
			src := chanSource{revs: make(chan rev)} // unbuffered: a send returns once the previous revision is loaded
			d, err := New(Config{Source: src, Executor: ex, RetryDelay: 50 * time.Millisecond, ResyncInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			inner.Sink = d.Sink(&apply.MemorySink{})
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()

			files := inventorygen.Files(inventorygen.Options{Nodes: 10, Driver: "fake"})
			src.revs <- rev{"c0", mapFS(files)}
			<-ex.started
			// Each revision powers off one more node: the newest asks for
			// the most, and only a plan made from it does all of it.
			newest := ""
			changed := maps.Clone(files)
			for i := 1; i <= pushed; i++ {
				newest = fmt.Sprintf("c%d", i)
				node := inventorygen.NodeName(i-1, 40)
				for p, b := range changed {
					if strings.HasSuffix(p, "/"+node+".yaml") {
						changed[p] = bytes.Replace(b, []byte(`power: "on"`), []byte(`power: "off"`), 1)
					}
				}
				src.revs <- rev{newest, mapFS(maps.Clone(changed))}
			}
			// Sent once more: this send returns only once the newest was
			// loaded, all while the first pass is held.
			src.revs <- rev{newest, mapFS(maps.Clone(changed))}
			if r, _ := d.Revision(); r != newest {
				t.Fatalf("revision %s loaded; want %s", r, newest)
			}
			close(ex.gate)
			waitPasses(t, ex.ended, "every node at its target state", func() bool {
				obs := d.Observed()
				for i := range 10 {
					st := obs[inventorygen.NodeName(i, 40)]
					want := []string{"active", "active", "active", "available", "manageable"}[i%5]
					if st.ProvisionState != want || st.Operation != nil || i < pushed && st.Power != "off" {
						return false
					}
				}
				return true
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if m := ex.maxIn.Load(); m != 1 {
				t.Errorf("%d passes applied at once; want 1", m)
			}
			ex.mu.Lock()
			commits := ex.commits
			ex.mu.Unlock()
			if len(commits) < 2 || commits[0] != "c0" || commits[1] != newest {
				t.Errorf("passes planned from %v; want c0, then %s (the newest when the pass started)", commits, newest)
			}
			for _, c := range commits[1:] {
				if c != newest {
					t.Errorf("a pass after the first planned from %s, not the newest %s: %v", c, newest, commits)
				}
			}
			for i := range 10 {
				name := inventorygen.NodeName(i, 40)
				ran := agent.Ran(name)
				seen := map[string]int{}
				for _, step := range ran {
					seen[step]++
				}
				for step, n := range seen {
					if n != 1 {
						t.Errorf("%s: %s ran %d times (all: %v)", name, step, n, ran)
					}
				}
				if want := []string{"active", "active", "active", "available", "manageable"}[i%5]; want == "active" && seen["deploy.write_image"] != 1 {
					t.Errorf("%s: deployed without writing the image: %v", name, ran)
				}
			}
		})
	}
}
