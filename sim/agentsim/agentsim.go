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
// steps. The zero value is ready to use.
type Agent struct {
	// Latency is how long each step takes.
	Latency time.Duration

	mu  sync.Mutex
	ran map[string][]string // node -> steps run; guarded by mu
}

// RunStep simulates an in-band step.
func (a *Agent) RunStep(ctx context.Context, node string, step plan.Step) (apply.AgentResult, error) {
	if step.Agent == nil {
		return apply.AgentResult{}, fmt.Errorf("simulated agent: step %s is not an agent step", step.Name())
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
	a.mu.Lock()
	if a.ran == nil {
		a.ran = map[string][]string{}
	}
	a.ran[node] = append(a.ran[node], step.Agent.Interface+"."+step.Agent.Step)
	a.mu.Unlock()
	res := apply.AgentResult{Simulated: true}
	if step.Agent.Interface == "inspect" {
		res.Inventory = map[string]any{"simulated": true, "cpus": 2, "memoryMiB": 262144,
			"disks": []any{map[string]any{"id": "disk0", "sizeBytes": 960197124096}}}
	}
	return res, nil
}

// Ran returns the steps run on node, in order.
func (a *Agent) Ran(node string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.ran[node])
}
