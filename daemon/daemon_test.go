package daemon

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
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

// chanSource delivers revisions pushed by the test.
type chanSource struct{ revs chan rev }

type rev struct {
	id   string
	fsys fs.FS
}

func (c chanSource) Run(ctx context.Context, _ <-chan struct{}, on func(context.Context, string, fs.FS)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-c.revs:
			on(ctx, r.id, r.fsys)
		}
	}
}

func mapFS(files map[string][]byte) fstest.MapFS {
	m := fstest.MapFS{}
	for p, b := range files {
		m[p] = &fstest.MapFile{Data: b}
	}
	return m
}

type rig struct {
	d       *Daemon
	fleet   *fake.Fleet
	sink    *apply.MemorySink
	src     chanSource
	ex      *passRecorder
	refused chan string // revisions the daemon refused, in order
}

// passRecorder is the executor as the daemon sees it: it records the
// revision of every pass and signals the end of each, so that tests wait
// for passes instead of sleeping.
type passRecorder struct {
	*apply.Executor
	ended chan struct{} // buffered 1: a pass ended

	mu   sync.Mutex
	revs []string // InventoryCommit of every pass, in order; guarded by mu
}

func (p *passRecorder) Apply(ctx context.Context, inv *schema.Inventory, pl plan.Plan, obs reconcile.Observed) apply.Report {
	rep := p.Executor.Apply(ctx, inv, pl, obs)
	p.mu.Lock()
	p.revs = append(p.revs, pl.InventoryCommit)
	p.mu.Unlock()
	select {
	case p.ended <- struct{}{}:
	default:
	}
	return rep
}

// passed returns the revisions of the passes run so far.
func (p *passRecorder) passed() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.revs)
}

// refusals reports refused revisions on a channel.
type refusals chan string

func (r refusals) ReportInvalid(rev string, diags schema.Diagnostics) {
	if diags != nil {
		r <- rev
	}
}

func newRig(t *testing.T) *rig { return newRigWith(t, nil) }

// newRigWith is newRig with cfg changed by with before the daemon is made.
func newRigWith(t *testing.T, with func(*Config)) *rig {
	fleet := fake.NewFleet()
	fleet.AutoCreate = true
	sink := &apply.MemorySink{}
	agent := &agentsim.Agent{}
	env := map[string]string{"BMC_USERNAME": "admin", "BMC_PASSWORD": "pw-Secret-123"}
	ex := &passRecorder{Executor: &apply.Executor{
		Registry:      drivers.Registry{"fake": fleet.Entry()},
		Credentials:   credentials.Resolver{Getenv: func(k string) string { return env[k] }},
		AgentFor:      func(string) apply.Agent { return agent },
		AgentImageURL: "http://127.0.0.1:9/agent.iso",
	}, ended: make(chan struct{}, 1)}
	src := chanSource{revs: make(chan rev, 4)}
	refused := make(chan string, 4)
	cfg := Config{Source: src, Executor: ex, Invalid: refusals(refused), RetryDelay: 50 * time.Millisecond, ResyncInterval: time.Hour}
	if with != nil {
		with(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ex.Sink = d.Sink(sink)
	return &rig{d: d, fleet: fleet, sink: sink, src: src, ex: ex, refused: refused}
}

// hung bounds a wait that should end; it asserts nothing about speed.
const hung = 60 * time.Second

// waitFor checks cond now and after every pass (only passes act on the
// fleet and the observed state) until it holds.
func (r *rig) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(hung)
	defer timeout.Stop()
	for !cond() {
		select {
		case <-r.ex.ended:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestDaemonReconcilesAndRefusesInvalidRevisions(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.d.Run(ctx) }()

	files := inventorygen.Files(inventorygen.Options{Nodes: 10, Driver: "fake"})
	r.src.revs <- rev{"c1", mapFS(files)}
	r.waitFor(t, "every node at its target state", func() bool {
		obs := r.d.Observed()
		if len(obs) != 10 {
			return false
		}
		for i := range 10 {
			name := inventorygen.NodeName(i, 40)
			want := []string{"active", "active", "active", "available", "manageable"}[i%5]
			if obs[name].ProvisionState != want {
				return false
			}
		}
		return true
	})
	if err := r.d.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}

	// An invalid revision changes no hardware: no pass runs it.
	bad := mapFS(files)
	p := "nodes/rack0000/" + inventorygen.NodeName(3, 40) + ".yaml"
	bad[p] = &fstest.MapFile{Data: []byte(strings.Replace(string(files[p]), "state: available", "state: active", 1))} // active without image
	bad["nodes/rack0000/"+inventorygen.NodeName(0, 40)+".yaml"] = &fstest.MapFile{Data: []byte("kind: [")}
	r.src.revs <- rev{"c2", bad}
	select {
	case got := <-r.refused:
		if got != "c2" {
			t.Errorf("refused %s, want c2", got)
		}
	case <-time.After(hung):
		t.Fatal("timed out waiting for the invalid revision to be refused")
	}
	if err := r.d.Ready(); err != nil {
		t.Errorf("Ready after an invalid revision: %v", err)
	}
	if rv, _ := r.d.Revision(); rv != "c1" {
		t.Errorf("last good revision = %s, want c1", rv)
	}
	// The fleet page's view says the same, and why c2 was refused.
	snap := r.d.Snapshot()
	if snap.Revision != "c1" || snap.Invalid != "c2" || !snap.InvalidDiagnostics.HasErrors() || len(snap.Observed) != 10 {
		t.Errorf("Snapshot: revision %q invalid %q diagnostics %v, %d observed", snap.Revision, snap.Invalid, snap.InvalidDiagnostics, len(snap.Observed))
	}
	if g := r.d.Generation(); g != snap.Generation {
		t.Errorf("Generation() = %d, Snapshot's %d, with nothing changed between", g, snap.Generation)
	}

	// The next valid revision is acted on: power a node off.
	good := mapFS(files)
	p = "nodes/rack0000/" + inventorygen.NodeName(4, 40) + ".yaml"
	good[p] = &fstest.MapFile{Data: []byte(strings.Replace(string(files[p]), `power: "on"`, `power: "off"`, 1))}
	r.src.revs <- rev{"c3", good}
	r.waitFor(t, "node 4 powered off", func() bool {
		return r.fleet.System(inventorygen.NodeName(4, 40)).PowerState() == drivers.PowerOff
	})
	if later := r.d.Snapshot(); later.Invalid != "" || later.InvalidDiagnostics != nil || later.Generation <= snap.Generation {
		t.Errorf("after c3: invalid %q %v, generation %d after %d", later.Invalid, later.InvalidDiagnostics, later.Generation, snap.Generation)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(hung):
		t.Fatal("Run did not return after cancel")
	}
	// Run has waited for every pass, so this is all the daemon ran.
	if passed := r.ex.passed(); slices.Contains(passed, "c2") {
		t.Errorf("passes ran revisions %v; c2 was invalid", passed)
	}
	for name, st := range r.sink.Snapshot() {
		if strings.Contains(fmt.Sprint(st), "pw-Secret-123") {
			t.Errorf("status of %s contains the BMC password", name)
		}
	}
}
