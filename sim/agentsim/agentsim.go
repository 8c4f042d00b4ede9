// Package agentsim simulates the deploy agent for nodes whose BMC is
// simulated: in-band steps succeed without touching a disk, and results
// are marked simulated so that status never passes them off as real.
package agentsim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/reconcile/plan"
)

// Agent stands in for the deploy agent on simulated BMCs (fake:// nodes,
// the demo, --simulate-agent). It does nothing to any disk; it records
// what it was asked to do, per node, so tests can count destructive
// steps, and remembers command ids as a real agent does, so a repeated
// command returns its earlier result. The zero value is ready to use.
type Agent struct {
	// Latency is how long each step takes.
	Latency time.Duration

	mu   sync.Mutex
	ran  map[string][]string                     // node -> steps run; guarded by mu
	done map[string]map[string]apply.AgentResult // node -> command id -> result; guarded by mu
}

// RunStep simulates an in-band step; a command id it ran before returns
// the earlier result and runs nothing.
func (a *Agent) RunStep(ctx context.Context, node, id string, step plan.Step) (apply.AgentResult, error) {
	if step.Agent == nil {
		return apply.AgentResult{}, fmt.Errorf("simulated agent: step %s is not an agent step", step.Name())
	}
	if res, ok, _ := a.Command(ctx, node, id); ok {
		return res, nil
	}
	if a.Latency > 0 {
		t := time.NewTimer(a.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return apply.AgentResult{}, ctx.Err()
		case <-t.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return apply.AgentResult{}, err
	}
	res := apply.AgentResult{Simulated: true}
	if step.Agent.Interface == "inspect" {
		res.Inventory = map[string]any{"simulated": true, "cpus": 2, "memoryMiB": 262144,
			"disks": []any{map[string]any{"id": "disk0", "sizeBytes": 960197124096}}}
	}
	a.mu.Lock()
	if a.ran == nil {
		a.ran, a.done = map[string][]string{}, map[string]map[string]apply.AgentResult{}
	}
	a.ran[node] = append(a.ran[node], step.Agent.Interface+"."+step.Agent.Step)
	if id != "" {
		if a.done[node] == nil {
			a.done[node] = map[string]apply.AgentResult{}
		}
		a.done[node][id] = res
	}
	a.mu.Unlock()
	return res, nil
}

// Command reports whether the agent ran command id, with its result.
func (a *Agent) Command(_ context.Context, node, id string) (apply.AgentResult, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	res, ok := a.done[node][id]
	return res, ok, nil
}

// Ran returns the steps run on node, in order.
func (a *Agent) Ran(node string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.ran[node])
}
