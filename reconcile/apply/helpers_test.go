package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"metalsync.dev/metalsync/credentials"
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/fake"
	"metalsync.dev/metalsync/internal/backoff"
	"metalsync.dev/metalsync/internal/clock/clocktest"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

const testPassword = "fake-pass-Xy9"

var testImage = &schema.Image{URL: "https://images.example/os.raw", Checksum: "sha256:" + strings.Repeat("c", 64), Format: "raw"}

func newClock() *clocktest.Fake { return clocktest.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)) }

// recorder is an observer that keeps events and can cancel a run after a
// given number of finished steps.
type recorder struct {
	mu       sync.Mutex
	events   []Event
	finished atomic.Int64
	cancelAt int64
	cancel   context.CancelFunc
}

func (r *recorder) Event(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	if e.Kind == StepFinished {
		if n := r.finished.Add(1); r.cancel != nil && n == r.cancelAt {
			r.cancel()
		}
	}
}

func (r *recorder) count(k EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// rig is an executor over a fake fleet with a simulated agent.
type rig struct {
	fleet *fake.Fleet
	agent *recordingAgent
	sink  *MemorySink
	rec   *recorder
	ex    *Executor
}

func newRig(t testing.TB) *rig {
	f := fake.NewFleet()
	f.AutoCreate = true
	agent := &recordingAgent{}
	sink := &MemorySink{}
	rec := &recorder{}
	env := map[string]string{"BMC_USER": "admin", "BMC_PASS": testPassword}
	ex := &Executor{
		Registry:    drivers.Registry{"fake": f.Entry()},
		Credentials: credentials.Resolver{Getenv: func(k string) string { return env[k] }},
		AgentFor: func(driver string) Agent {
			if driver == "fake" {
				return agent
			}
			return nil
		},
		AgentImageURL: "http://127.0.0.1:9/agent.iso",
		Sink:          sink,
		Observer:      rec,
		Clock:         newClock(),
		Backoff:       backoff.Policy{Base: time.Second, Max: 10 * time.Second},
		Attempts:      4,
	}
	return &rig{fleet: f, agent: agent, sink: sink, rec: rec, ex: ex}
}

func fakeNode(name, state string, edit func(*schema.NodeSpec)) *schema.Node {
	n := &schema.Node{APIVersion: schema.APIVersion, Kind: schema.KindNode, Metadata: schema.Meta{Name: name},
		Spec: schema.NodeSpec{
			BMC:       schema.BMC{Address: "fake://" + name, CredentialsRef: schema.CredentialsRef{Set: "bmc"}},
			Owner:     "infra",
			Provision: schema.Provision{State: state},
		}}
	if state == "active" {
		n.Spec.Provision.Image = testImage
	}
	if edit != nil {
		edit(&n.Spec)
	}
	return n
}

// loaded gives a hand-made inventory the site schema.Load would: always
// one, with its defaults, and here with the credential sets fakeNode's
// nodes name (bmc, and unset whose variable is not set) and loopback as
// the BMC network, plain HTTP allowed (httptest's servers).
func loaded(inv *schema.Inventory) *schema.Inventory {
	if inv.Site == nil {
		inv.Site = &schema.Site{}
	}
	inv.Site.Spec = inv.Site.Spec.Defaults()
	if inv.Site.Spec.Credentials == nil {
		inv.Site.Spec.Credentials = &schema.CredentialSettings{Sets: map[string]schema.CredentialSet{
			"bmc":   {Env: &schema.EnvCredentials{Username: "BMC_USER", Password: "BMC_PASS"}},
			"unset": {Env: &schema.EnvCredentials{Username: "BMC_USER", Password: "UNSET_VAR"}},
		}}
	}
	if inv.Site.Spec.BMCNetworks == nil {
		inv.Site.Spec.BMCNetworks = []schema.BMCNetwork{{CIDR: "127.0.0.0/8", AllowPlainHTTP: true}}
	}
	return inv
}

// pass plans against the sink's status and applies the plan.
func (r *rig) pass(ctx context.Context, inv *schema.Inventory) (plan.Plan, Report) {
	inv = loaded(inv)
	obs := reconcile.Observed(r.sink.Snapshot())
	p := reconcile.Plan(inv, obs, r.ex.Capabilities(), r.ex.clock().Now())
	return p, r.ex.Apply(ctx, inv, p, obs)
}

func outcomes(rep Report) map[string]string {
	m := map[string]string{}
	for _, n := range rep.Nodes {
		s := n.Outcome.String()
		if n.Err != nil {
			s += ": " + n.Err.Error()
		}
		m[n.Node] = s
	}
	return m
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// recordingAgent succeeds at every in-band step and records it per node,
// so tests can count destructive steps. (sim/agentsim is the simulator the
// CLI uses; it imports this package, so these tests cannot.)
type recordingAgent struct {
	Latency time.Duration // how long each step takes

	mu   sync.Mutex
	ran  map[string][]string               // node -> steps run; guarded by mu
	done map[string]map[string]AgentResult // node -> command id -> result; guarded by mu
}

// Command reports whether the agent ran command id, as a real agent does.
func (a *recordingAgent) Command(_ context.Context, node, id string) (AgentResult, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	res, ok := a.done[node][id]
	return res, ok, nil
}

func (a *recordingAgent) RunStep(ctx context.Context, node, id string, step plan.Step) (AgentResult, error) {
	if step.Agent == nil {
		return AgentResult{}, fmt.Errorf("recording agent: step %s is not an agent step", step.Name())
	}
	if res, ok, _ := a.Command(ctx, node, id); ok {
		return res, nil
	}
	if a.Latency > 0 {
		t := time.NewTimer(a.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return AgentResult{}, ctx.Err()
		case <-t.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return AgentResult{}, err
	}
	res := AgentResult{Simulated: true}
	if step.Agent.Interface == "inspect" {
		res.Inventory = map[string]any{"simulated": true, "cpus": 2, "memoryMiB": 262144,
			"disks": []any{map[string]any{"id": "disk0", "sizeBytes": 960197124096}}}
	}
	a.mu.Lock()
	if a.ran == nil {
		a.ran, a.done = map[string][]string{}, map[string]map[string]AgentResult{}
	}
	a.ran[node] = append(a.ran[node], step.Agent.Interface+"."+step.Agent.Step)
	if a.done[node] == nil {
		a.done[node] = map[string]AgentResult{}
	}
	a.done[node][id] = res
	a.mu.Unlock()
	return res, nil
}

func (a *recordingAgent) Ran(node string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.ran[node])
}
