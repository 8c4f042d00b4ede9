package daemon

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"metalsync.dev/metalsync/credentials"
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/fake"
	"metalsync.dev/metalsync/reconcile/apply"
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
	d     *Daemon
	fleet *fake.Fleet
	sink  *apply.MemorySink
	src   chanSource
}

func newRig(t *testing.T) *rig {
	fleet := fake.NewFleet()
	fleet.AutoCreate = true
	sink := &apply.MemorySink{}
	agent := &agentsim.Agent{}
	env := map[string]string{"BMC_USERNAME": "admin", "BMC_PASSWORD": "pw-Secret-123"}
	ex := &apply.Executor{
		Registry:      drivers.Registry{"fake": fleet.Entry()},
		Credentials:   credentials.Resolver{Getenv: func(k string) string { return env[k] }},
		AgentFor:      func(string) apply.Agent { return agent },
		AgentImageURL: "http://127.0.0.1:9/agent.iso",
	}
	src := chanSource{revs: make(chan rev, 4)}
	d, err := New(Config{Source: src, Executor: ex, RetryDelay: 50 * time.Millisecond, ResyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ex.Sink = d.Sink(sink)
	return &rig{d: d, fleet: fleet, sink: sink, src: src}
}

// waitFor polls cond; the deadline only bounds a hung test, it asserts
// nothing about speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDaemonReconcilesAndRefusesInvalidRevisions(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.d.Run(ctx) }()

	files := inventorygen.Files(inventorygen.Options{Nodes: 10, Driver: "fake"})
	r.src.revs <- rev{"c1", mapFS(files)}
	waitFor(t, "every node at its target state", func() bool {
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

	// An invalid revision changes no hardware: count BMC calls across it.
	calls := func() int {
		n := 0
		for _, name := range r.fleet.Names() {
			n += r.fleet.System(name).Counts().Calls
		}
		return n
	}
	before := calls()
	bad := mapFS(files)
	p := "nodes/rack0000/" + inventorygen.NodeName(3, 40) + ".yaml"
	bad[p] = &fstest.MapFile{Data: []byte(strings.Replace(string(files[p]), "state: available", "state: active", 1))} // active without image
	bad["nodes/rack0000/"+inventorygen.NodeName(0, 40)+".yaml"] = &fstest.MapFile{Data: []byte("kind: [")}
	r.src.revs <- rev{"c2", bad}
	waitFor(t, "the invalid revision to be seen", func() bool { return r.d.Ready() == nil && r.d.invalidRev() == "c2" })
	time.Sleep(200 * time.Millisecond)
	if got := calls(); got != before {
		t.Errorf("invalid revision made %d BMC calls", got-before)
	}
	if rv, _ := r.d.Revision(); rv != "c1" {
		t.Errorf("last good revision = %s, want c1", rv)
	}

	// The next valid revision is acted on: power a node off.
	good := mapFS(files)
	p = "nodes/rack0000/" + inventorygen.NodeName(4, 40) + ".yaml"
	good[p] = &fstest.MapFile{Data: []byte(strings.Replace(string(files[p]), `power: "on"`, `power: "off"`, 1))}
	r.src.revs <- rev{"c3", good}
	waitFor(t, "node 4 powered off", func() bool {
		return r.fleet.System(inventorygen.NodeName(4, 40)).PowerState() == drivers.PowerOff
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for name, st := range r.sink.Snapshot() {
		if strings.Contains(fmt.Sprint(st), "pw-Secret-123") {
			t.Errorf("status of %s contains the BMC password", name)
		}
	}
}

func (d *Daemon) invalidRev() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.invalid
}
