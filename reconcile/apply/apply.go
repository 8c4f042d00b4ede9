// Package apply carries out plans: it is the only code that calls BMC
// drivers. An Executor runs each node's operations one at a time, many
// nodes at once within a global limit and a per-BMC limit, with per-step
// timeouts, retries with jittered backoff, re-observation after each act,
// automatic faults for nodes that keep failing, and status written as it
// goes so that a killed process resumes without repeating a destructive
// step. An Executor is meant to live as long as the process: the daemon
// calls Apply once per pass.
package apply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"metalsync.dev/metalsync/credentials"
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/internal/backoff"
	"metalsync.dev/metalsync/internal/clock"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

// CredentialSource returns a node's BMC credentials under the site's
// rules (credential sets, BMC networks, plain HTTP): the executor asks it
// before every BMC session, so no path reaches a BMC without the check.
type CredentialSource interface {
	Resolve(site *schema.Site, node *schema.Node) (credentials.Credentials, error)
}

// Executor runs plans. Set the exported fields before the first Apply and
// do not change them afterwards.
type Executor struct {
	Registry    drivers.Registry
	Credentials CredentialSource
	// AgentFor returns the deploy agent serving nodes of a driver, or nil.
	AgentFor func(driver string) Agent
	// Media publishes per-node boot media for nodes without DHCP and for
	// nodes whose agent is a NodeMediaAgent; nil skips publishing.
	Media Media
	// AgentImageURL is the generic agent boot image, inserted when a node
	// needs no per-node media (or Media is nil); "" inserts nothing.
	AgentImageURL string
	Sink          StatusSink
	// ReadFile reads a node's bmc.tls.caFile on the daemon's host
	// (os.ReadFile when nil).
	ReadFile func(name string) ([]byte, error)
	Observer Observer
	// Clock is the wall clock when nil.
	Clock clock.Clock
	// Backoff spaces out the tries of a step (1s doubling up to 30s when Base
	// is zero); Attempts bounds them, the first included (DefaultAttempts
	// when not positive).
	Backoff  backoff.Policy
	Attempts int
	// SyncTimeout bounds how long a step waits for its intent or result to
	// become durable (a push to a slow or hung remote); 0 means 2 minutes.
	SyncTimeout time.Duration
	// Concurrency, PerBMC and FaultThreshold override the site settings
	// when positive.
	Concurrency, PerBMC, FaultThreshold int

	mu       sync.Mutex
	busy     map[string]bool          // nodes being worked on; guarded by mu
	failures map[string]int           // consecutive health failures per node; guarded by mu
	slots    map[string]chan struct{} // per BMC host call slots; guarded by mu
}

// Outcome is how a node's work ended in one pass.
type Outcome int

// Outcomes.
const (
	Done         Outcome = iota + 1 // every operation finished
	Failed                          // a step failed for good; the node is in a failed state
	RetryLater                      // transient failure; the operation resumes next pass
	Faulted                         // the node failed repeatedly and is quarantined
	Canceled                        // the run was cancelled; it resumes from status
	Busy                            // another pass is working on the node
	PlanError                       // the plan refused the node; nothing ran
	Healthy                         // a faulted node answered again; fault cleared
	StillFaulted                    // a faulted node still does not answer
)

func (o Outcome) String() string {
	switch o {
	case Done:
		return "done"
	case Failed:
		return "failed"
	case RetryLater:
		return "retry later"
	case Faulted:
		return "fault"
	case Canceled:
		return "canceled"
	case Busy:
		return "busy"
	case PlanError:
		return "plan error"
	case Healthy:
		return "fault cleared"
	case StillFaulted:
		return "still faulted"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// NodeResult is the result of one node.
type NodeResult struct {
	Node     string
	From, To plan.State // planned provision states
	Reached  plan.State // provision state at the end
	Outcome  Outcome
	Duration time.Duration
	Err      error
	// Replan: the node's plan stopped after an inspection, to be planned
	// again with it recorded. Status is the node's status at the end.
	Replan bool
	Status schema.NodeStatusBody
}

// Report is the result of one Apply.
type Report struct {
	Nodes []NodeResult // sorted by node name
}

// OK reports whether every node finished without error.
func (r Report) OK() bool {
	for _, n := range r.Nodes {
		if n.Outcome != Done && n.Outcome != Healthy {
			return false
		}
	}
	return true
}

// ErrStale marks a saved plan whose inputs have moved.
var ErrStale = errors.New("plan is stale")

// CheckFresh refuses a saved plan when the inventory or the observed
// state it was made from has changed.
func CheckFresh(saved plan.Plan, inventoryCommit, inventoryDigest, observedDigest string) error {
	var moved []string
	if saved.InventoryCommit != inventoryCommit {
		moved = append(moved, fmt.Sprintf("inventory commit %q is now %q", saved.InventoryCommit, inventoryCommit))
	}
	if saved.InventoryDigest != inventoryDigest {
		moved = append(moved, "the inventory changed")
	}
	if saved.ObservedDigest != observedDigest {
		moved = append(moved, "the observed state (status) changed")
	}
	if len(moved) > 0 {
		return fmt.Errorf("%w: %s; plan again", ErrStale, strings.Join(moved, ", "))
	}
	return nil
}

// Capabilities returns what the planner needs to know about this
// executor: the registry's static capabilities and which drivers have an
// agent.
func (e *Executor) Capabilities() reconcile.Capabilities {
	return reconcile.Capabilities{Drivers: e.Registry, Agent: func(driver string) bool {
		return e.AgentFor != nil && e.AgentFor(driver) != nil
	}}
}

func (e *Executor) clock() clock.Clock { return clock.Or(e.Clock) }

// DefaultAttempts is how many times a step is tried by default.
const DefaultAttempts = 5

// retry returns the backoff and the number of tries of a step. The
// default backoff suits BMCs: 1s, 2s, 4s … capped at 30s.
func (e *Executor) retry() (backoff.Policy, int) {
	b, n := e.Backoff, e.Attempts
	if b.Base <= 0 {
		b = backoff.Policy{Base: time.Second, Max: 30 * time.Second}
	}
	if n <= 0 {
		n = DefaultAttempts
	}
	return b, n
}

func (e *Executor) emit(ev Event) {
	if e.Observer == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = e.clock().Now()
	}
	e.Observer.Event(ev)
}

// limits are the effective limits of one pass.
type limits struct {
	workers, perBMC, threshold int
	dhcp                       bool
}

func (e *Executor) limits(inv *schema.Inventory) limits {
	site := inv.Site.Spec
	l := limits{workers: site.Concurrency.Global, perBMC: site.Concurrency.PerBMC, threshold: site.Faults.Threshold, dhcp: site.DHCP}
	if e.Concurrency > 0 {
		l.workers = e.Concurrency
	}
	if e.PerBMC > 0 {
		l.perBMC = e.PerBMC
	}
	if e.FaultThreshold > 0 {
		l.threshold = e.FaultThreshold
	}
	return l
}

// claim marks node busy; false when another pass holds it.
func (e *Executor) claim(node string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.busy == nil {
		e.busy = map[string]bool{}
	}
	if e.busy[node] {
		return false
	}
	e.busy[node] = true
	return true
}

func (e *Executor) release(node string) {
	e.mu.Lock()
	delete(e.busy, node)
	e.mu.Unlock()
}

// slot returns the call-slot channel of a BMC host.
func (e *Executor) slot(host string, size int) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.slots == nil {
		e.slots = map[string]chan struct{}{}
	}
	c, ok := e.slots[host]
	if !ok {
		c = make(chan struct{}, size)
		e.slots[host] = c
	}
	return c
}

// Apply runs the plan. observed is the state the plan was made against;
// each node's status starts from it and is written through Sink as the
// work goes. Apply returns when every node is done or ctx ends; a
// cancelled run leaves status from which the next plan resumes.
func (e *Executor) Apply(ctx context.Context, inv *schema.Inventory, p plan.Plan, observed reconcile.Observed) Report {
	rep := e.applyOnce(ctx, inv, p, observed)
	// Nodes whose plan stopped after an inspection are planned again now,
	// with the hardware found, before anything boots them (MAC guard, root
	// disk hints). Each round needs one more inspection; three is plenty.
	for range 3 {
		again := map[string]bool{}
		next := observed.Clone()
		if next == nil {
			next = reconcile.Observed{}
		}
		for _, r := range rep.Nodes {
			if r.Replan && r.Outcome == Done {
				again[r.Node] = true
				next[r.Node] = r.Status
			}
		}
		if len(again) == 0 || ctx.Err() != nil {
			break
		}
		p2 := reconcile.Plan(inv, next, e.Capabilities(), e.clock().Now())
		p2.InventoryCommit = p.InventoryCommit
		p2.Nodes = slices.DeleteFunc(p2.Nodes, func(np plan.NodePlan) bool { return !again[np.Node] })
		rep = rep.merge(e.applyOnce(ctx, inv, p2, next))
		observed = next
	}
	return rep
}

// merge replaces r's results with later's for the nodes later ran, keeping
// where each node started.
func (r Report) merge(later Report) Report {
	idx := make(map[string]int, len(r.Nodes))
	for i, n := range r.Nodes {
		idx[n.Node] = i
	}
	for _, n := range later.Nodes {
		i, ok := idx[n.Node]
		if !ok {
			r.Nodes = append(r.Nodes, n)
			continue
		}
		first := r.Nodes[i]
		n.From = first.From
		n.Duration += first.Duration
		r.Nodes[i] = n
	}
	slices.SortFunc(r.Nodes, func(a, b NodeResult) int { return cmp.Compare(a.Node, b.Node) })
	return r
}

func (e *Executor) applyOnce(ctx context.Context, inv *schema.Inventory, p plan.Plan, observed reconcile.Observed) Report {
	lim := e.limits(inv)
	byName := make(map[string]*schema.Node, len(inv.Nodes))
	for _, n := range inv.Nodes {
		byName[n.Name()] = n
	}
	var results []NodeResult
	var jobs []*session
	for _, np := range p.Nodes {
		switch {
		case np.Error != "":
			results = append(results, NodeResult{Node: np.Node, From: np.From, To: np.To, Reached: np.From, Outcome: PlanError, Err: errors.New(np.Error)})
			continue
		case len(np.Operations) == 0 && !np.Probe:
			continue
		}
		jobs = append(jobs, e.newSession(inv.Site, byName[np.Node], np, observed[np.Node], p.InventoryCommit, lim))
	}
	// Interleave nodes across BMCs, so that consecutive jobs land on
	// different BMCs and workers do not queue on one BMC's slots while
	// other BMCs sit idle (blade chassis put several nodes behind one).
	perHost := map[string]int{}
	rank := make(map[*session]int, len(jobs))
	for _, j := range jobs {
		rank[j] = perHost[j.host]
		perHost[j.host]++
	}
	slices.SortStableFunc(jobs, func(a, b *session) int { return cmp.Compare(rank[a], rank[b]) })
	out := make([]NodeResult, len(jobs))
	if e.Sink == nil {
		// Without a sink progress cannot be recorded, and a destructive
		// step could be repeated after a restart: do nothing.
		for i, j := range jobs {
			out[i] = NodeResult{Node: j.name, From: j.np.From, To: j.np.To, Reached: j.np.From, Outcome: Failed, Err: errors.New("no status sink configured")}
		}
		jobs = nil
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(lim.workers, len(jobs)) {
		wg.Go(func() {
			for i := range next {
				out[i] = jobs[i].run(ctx)
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	results = append(results, out...)
	slices.SortFunc(results, func(a, b NodeResult) int {
		switch {
		case a.Node < b.Node:
			return -1
		case a.Node > b.Node:
			return 1
		}
		return 0
	})
	return Report{Nodes: results}
}

// Refresh reads every node's power (read-only) and returns the observed
// state with the live values; nodes whose BMC does not answer keep their
// recorded power, and their errors are returned.
func (e *Executor) Refresh(ctx context.Context, inv *schema.Inventory, observed reconcile.Observed) (reconcile.Observed, []error) {
	lim := e.limits(inv)
	out := observed.Clone()
	if out == nil {
		out = reconcile.Observed{}
	}
	type res struct {
		node  string
		power drivers.PowerState
		err   error
	}
	results := make([]res, len(inv.Nodes))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(lim.workers, len(inv.Nodes)) {
		wg.Go(func() {
			for i := range next {
				n := inv.Nodes[i]
				s := e.newSession(inv.Site, n, plan.NodePlan{Node: n.Name()}, observed[n.Name()], "", lim)
				p, err := s.readPower(ctx)
				s.close()
				results[i] = res{node: n.Name(), power: p, err: err}
			}
		})
	}
	for i := range inv.Nodes {
		next <- i
	}
	close(next)
	wg.Wait()
	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", r.node, r.err))
			continue
		}
		st := out[r.node]
		st.Power = string(r.power)
		out[r.node] = st
	}
	return out, errs
}

// RecordPlanErrors writes each node's plan error to its status when it
// changed, and clears it from nodes the plan accepts again, so that status
// never shows a stale reason. It returns observed with those changes.
func (e *Executor) RecordPlanErrors(inv *schema.Inventory, p plan.Plan, observed reconcile.Observed) (reconcile.Observed, error) {
	if e.Sink == nil {
		return observed, errors.New("no status sink configured")
	}
	known := make(map[string]bool, len(inv.Nodes))
	for _, n := range inv.Nodes {
		known[n.Name()] = true
	}
	out := observed
	cloned := false
	var errs []error
	for _, np := range p.Nodes {
		st, seen := observed[np.Node]
		if !known[np.Node] || st.PlanError == np.Error || !seen && np.Error == "" {
			continue
		}
		if !cloned {
			out, cloned = observed.Clone(), true
			if out == nil {
				out = reconcile.Observed{}
			}
		}
		st = cloneStatus(st)
		st.PlanError = np.Error
		st.Commit = p.InventoryCommit
		st.Updated = stamp(e.clock().Now())
		if err := e.Sink.WriteStatus(np.Node, st); err != nil {
			errs = append(errs, fmt.Errorf("status of %s: %w", np.Node, err))
			continue
		}
		out[np.Node] = st
	}
	return out, errors.Join(errs...)
}
