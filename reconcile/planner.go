package reconcile

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

// Capabilities is what the planner knows about what can be done, without
// opening anything.
type Capabilities struct {
	// Drivers says which drivers this build has and what each can do; a
	// drivers.Registry fits.
	Drivers interface {
		Known(driver string) bool
		Has(driver string, c drivers.Capability) bool
	}
	// Agent reports whether a deploy agent serves nodes of the driver;
	// nil means no agent at all, so in-band steps are plan errors.
	Agent func(driver string) bool
}

// Plan computes what to do to bring the observed state to the desired
// one. It is pure: no I/O, no clock (now is given), output sorted by node
// name. Nodes it cannot plan for get an Error in their NodePlan; other
// nodes are not affected. InventoryCommit is left for the caller, who
// knows where the inventory came from.
func Plan(desired *schema.Inventory, observed Observed, caps Capabilities, now time.Time) plan.Plan {
	site := desired.Site.Spec
	templates := make(map[string]*schema.DeployTemplate, len(desired.Templates))
	for _, t := range desired.Templates {
		templates[t.Metadata.Name] = t
	}
	p := plan.Plan{
		FormatVersion:   plan.FormatVersion,
		InventoryDigest: InventoryDigest(desired),
		ObservedDigest:  observed.Digest(),
		Time:            now.UTC(),
		Nodes:           make([]plan.NodePlan, 0, len(desired.Nodes)),
	}
	known := make(map[string]bool, len(desired.Nodes))
	for _, n := range desired.Nodes {
		known[n.Name()] = true
		st, seen := observed[n.Name()]
		p.Nodes = append(p.Nodes, planNode(n, st, seen, site, templates, caps))
	}
	for name, st := range observed {
		if !known[name] {
			p.Nodes = append(p.Nodes, forget(name, st))
		}
	}
	slices.SortFunc(p.Nodes, func(a, b plan.NodePlan) int {
		switch {
		case a.Node < b.Node:
			return -1
		case a.Node > b.Node:
			return 1
		}
		return 0
	})
	return p
}

// forget plans a node that is in status but no longer in the inventory:
// its status is dropped and nothing else happens; its power is left as
// it is, because the machine may now be someone else's.
func forget(name string, st schema.NodeStatusBody) plan.NodePlan {
	state, power := plan.State(st.ProvisionState), plan.PowerState(st.Power)
	return plan.NodePlan{
		Node: name, From: state, To: state, PowerFrom: power, PowerTo: power,
		Operations: []plan.Operation{{Kind: plan.KindForget, Reason: plan.ReasonRemoved, From: state, To: state}},
		Notes: []plan.Note{{Reason: plan.ReasonRemoved, Message: fmt.Sprintf(
			"removed from the inventory: status forgotten, power left %s", cmp.Or(power, plan.PowerUnknown))}},
	}
}

// nodePlanner plans one node.
type nodePlanner struct {
	n         *schema.Node
	st        schema.NodeStatusBody
	site      schema.SiteSpec
	templates map[string]*schema.DeployTemplate
	b         *builder
	np        plan.NodePlan
	inspected bool // an inspection is already in the plan, or not wanted
	// cut is the number of operations up to and including the plan's
	// inspection (0: none).
	cut int
}

func planNode(n *schema.Node, st schema.NodeStatusBody, seen bool, site schema.SiteSpec, templates map[string]*schema.DeployTemplate, caps Capabilities) plan.NodePlan {
	from := plan.State(st.ProvisionState)
	if !seen || from == "" {
		from = plan.StateEnroll
	}
	power := cmp.Or(plan.PowerState(st.Power), plan.PowerUnknown)
	np := plan.NodePlan{Node: n.Name(), From: from, To: from, PowerFrom: power, PowerTo: power}
	addr, err := schema.ParseBMCAddress(n.Spec.BMC.Address)
	if err != nil {
		np.Error = fmt.Sprintf("bmc.address: %v", err)
		return np
	}
	np.Driver = addr.Driver
	if !Known(from) {
		np.Error = fmt.Sprintf("status: unknown provision state %q", from)
		return np
	}
	if q := n.Spec.Quarantine; q != nil {
		np.Notes = append(np.Notes, plan.Note{Reason: plan.ReasonQuarantined, Message: "quarantined: " + q.Reason + paused(st)})
		return np
	}
	if f := st.Fault; f != nil {
		np.Notes = append(np.Notes, plan.Note{Reason: plan.ReasonFault, Message: fmt.Sprintf(
			"fault: %s (%d failures); no action until the node is healthy again%s", f.Reason, f.Failures, paused(st))})
		np.Probe = true
		return np
	}
	p := &nodePlanner{n: n, st: st, site: site, templates: templates, np: np,
		b: &builder{node: n, driver: addr.Driver, caps: caps, power: power, macs: inspectedMACs(st.Inspect), nicsUnknown: inspectedNICsUnknown(st.Inspect)}}
	p.plan(from)
	if p.b.err != nil {
		p.np.Operations = nil
		p.np.To, p.np.PowerTo = p.np.From, p.np.PowerFrom
		p.np.Error = p.b.err.Error()
		return p.np
	}
	if p.b.guardOff != "" {
		p.note(plan.ReasonCapability, "%s", p.b.guardOff)
	}
	for _, op := range p.np.Operations {
		if err := checkOperation(op); err != nil {
			p.np.Operations = nil
			p.np.Error = "internal: " + err.Error()
			return p.np
		}
	}
	p.stopAfterInspection()
	return p.np
}

// paused describes an operation interrupted by a quarantine or fault.
func paused(st schema.NodeStatusBody) string {
	if op := st.Operation; op != nil {
		return fmt.Sprintf("; operation %s paused at step %d of %d", op.Kind, op.Step+1, len(op.Steps))
	}
	return ""
}

// target is the provision state the node should reach. A retired node is
// never deployed again: it keeps an active workload only while its spec
// still asks for active, and otherwise ends in manageable.
func (p *nodePlanner) target(cur plan.State) plan.State {
	want := plan.State(p.n.Spec.Provision.State)
	if p.n.Spec.Retired != nil {
		if want == plan.StateActive && cur == plan.StateActive {
			return plan.StateActive
		}
		return plan.StateManageable
	}
	return want
}

func (p *nodePlanner) add(op plan.Operation) {
	p.np.Operations = append(p.np.Operations, op)
	p.np.To = op.To
}

func (p *nodePlanner) note(r plan.Reason, format string, args ...any) {
	p.np.Notes = append(p.np.Notes, plan.Note{Reason: r, Message: fmt.Sprintf(format, args...)})
}

// needsInspect reports whether the node should be inspected, and why.
func (p *nodePlanner) needsInspect() (plan.Reason, bool) {
	if p.inspected || p.n.Spec.Retired != nil {
		return 0, false
	}
	last := p.st.Inspect
	switch {
	case last == nil:
		if !p.b.canInspect() {
			p.inspected = true
			p.note(plan.ReasonNotInspected, "not inspected: driver %s reads no inventory and no deploy agent is available", p.b.driver)
			return 0, false
		}
		return plan.ReasonNotInspected, true
	case p.n.Spec.Inspect != "" && last.Token != p.n.Spec.Inspect:
		return plan.ReasonInspectRequested, true
	}
	return 0, false
}

// plan walks the state machine from the observed state towards the
// target, adding one operation per stable state it passes.
//
// The walk stops after an inspection: what follows (booting the agent
// with the node's network, choosing disks) depends on the hardware found,
// so the node is planned again once the inspection is recorded (Replan).
func (p *nodePlanner) plan(cur plan.State) {
	cur = p.resume(cur)
	for range 12 { // more than the longest path; guards against a cycle
		if p.b.err != nil {
			return
		}
		next, done := p.advance(cur)
		if done {
			break
		}
		cur = next
		if n := len(p.np.Operations); p.cut == 0 && n > 0 && p.np.Operations[n-1].Kind == plan.KindInspect {
			p.cut = n
		}
	}
	p.finalPower(cur)
}

// stopAfterInspection marks the operations after the plan's inspection as
// provisional: shown, so that a reader sees the whole way, but run only
// once the node is planned again with the inspection recorded.
func (p *nodePlanner) stopAfterInspection() {
	if p.cut == 0 || p.cut >= len(p.np.Operations) {
		return
	}
	p.np.ReplanFrom = p.cut
	p.note(p.np.Operations[p.cut-1].Reason, "operations after the inspection are planned again once it is recorded (they depend on the hardware found)")
}

// resume continues an operation recorded in status: the same operation is
// planned again and starts at the recorded step, so that completed steps,
// destructive ones above all, are not repeated. A busy state without a
// recorded operation (the process died before recording it) is treated as
// a failure of that operation, as Ironic's conductor does on restart.
func (p *nodePlanner) resume(cur plan.State) plan.State {
	rec := p.st.Operation
	if Stable(cur) {
		return cur
	}
	if rec == nil {
		failed, ok := FailedState(cur)
		if !ok {
			failed = plan.StateEnroll // verifying without a record: verify again
			if cur != plan.StateVerifying {
				failed = plan.StateError
			}
		}
		p.note(plan.ReasonRetryFailed, "status says %s with no operation recorded; treated as %s", cur, failed)
		p.np.From = failed
		return failed
	}
	kind, ok := kindByName(rec.Kind)
	if !ok {
		p.b.fail(fmt.Errorf("status: unknown operation %q", rec.Kind))
		return cur
	}
	// The steps depend on the power state the operation started in, which
	// status does not keep: rebuild the operation from each possible start
	// and take the one that matches the recorded steps.
	observed := p.b.power
	var op plan.Operation
	matched := false
	for _, start := range []plan.PowerState{observed, plan.PowerOff, plan.PowerOn, plan.PowerUnknown} {
		p.b.power, p.b.err, p.b.errWrapped = start, nil, false
		op = p.operation(kind, cur)
		if p.b.err == nil && slices.Equal(op.StepNames(), rec.Steps) && rec.Step >= 0 && rec.Step <= len(op.Steps) {
			matched = true
			op.Resume = rec.Step
			break
		}
	}
	if !matched {
		p.b.power, p.b.err, p.b.errWrapped = observed, nil, false
		op = p.operation(kind, cur)
		if p.b.err != nil {
			return cur
		}
		p.note(plan.ReasonResume, "operation %s changed since it started (spec edited); starting it over", rec.Kind)
	}
	op.Reason = plan.ReasonResume
	op.From = cur
	p.add(op)
	return op.To
}

func kindByName(name string) (plan.Kind, bool) {
	var k plan.Kind
	if err := k.UnmarshalText([]byte(name)); err != nil {
		return 0, false
	}
	return k, true
}

// operation builds an operation of the given kind starting in state from.
func (p *nodePlanner) operation(kind plan.Kind, from plan.State) plan.Operation {
	b := p.b
	op := plan.Operation{Kind: kind, From: from}
	switch kind {
	case plan.KindEnroll:
		op.To = plan.StateManageable
		op.Steps = []plan.Step{b.verify(plan.StateVerifying)}
	case plan.KindInspect:
		op.To = plan.StateManageable
		op.Steps = b.inspectSteps(plan.StateInspecting, p.n.Spec.Inspect)
		p.inspected = true
	case plan.KindClean:
		op.To = plan.StateAvailable
		if p.n.Spec.Retired != nil {
			op.To = plan.StateManageable
		}
		op.Steps = b.cleanSteps(plan.StateCleaning)
	case plan.KindDeploy, plan.KindRedeploy:
		op.To = plan.StateActive
		op.Steps = b.deploySteps(plan.StateDeploying, p.templates)
	case plan.KindUndeploy:
		op.To = plan.StateAvailable
		if p.n.Spec.Retired != nil || p.target(plan.StateActive) == plan.StateManageable {
			op.To = plan.StateManageable
		}
		if s, ok := b.powerStep(plan.StateDeleting, plan.PowerActionOff); ok {
			op.Steps = append(op.Steps, s)
		}
		op.Steps = append(op.Steps, b.cleanSteps(plan.StateCleaning)...)
		// Ironic passes through deleting even when there is no power to
		// turn off (already off, or disablePowerOff).
		if len(op.Steps) > 0 && op.Steps[0].State != plan.StateDeleting {
			op.Steps[0].State = plan.StateDeleting
		}
	case plan.KindAdopt:
		op.To = plan.StateActive
		op.Steps = []plan.Step{b.verify(plan.StateAdopting)}
	case plan.KindManage:
		op.To = plan.StateManageable
	case plan.KindPower, plan.KindForget:
		op.To = from
	}
	if b.err != nil && !b.errWrapped {
		b.err, b.errWrapped = fmt.Errorf("%s: %w", kind, b.err), true
	}
	return op
}

// advance adds the operation that leaves state cur, if any, and returns
// the state it leads to, or done when the node has arrived.
func (p *nodePlanner) advance(cur plan.State) (plan.State, bool) {
	n := p.n
	target := p.target(cur)
	adopt := n.Spec.Provision.Adopt && target == plan.StateActive
	addOp := func(kind plan.Kind, reason plan.Reason) plan.State {
		op := p.operation(kind, cur)
		op.Reason = reason
		p.add(op)
		return op.To
	}
	switch cur {
	case plan.StateEnroll:
		return addOp(plan.KindEnroll, plan.ReasonNewNode), false
	case plan.StateManageable:
		if r, ok := p.needsInspect(); ok {
			if !adopt || p.b.caps.Drivers != nil && p.b.caps.Drivers.Has(p.b.driver, drivers.CapInventory) {
				return addOp(plan.KindInspect, r), false
			}
			// In-band inspection would reboot a running workload.
			p.inspected = true
			p.note(plan.ReasonAdopt, "not inspected: adopting a running machine, and driver %s reads no inventory out of band", p.b.driver)
		}
		switch target {
		case plan.StateManageable:
			return cur, true
		case plan.StateActive:
			if adopt {
				return addOp(plan.KindAdopt, plan.ReasonAdopt), false
			}
		}
		return addOp(plan.KindClean, plan.ReasonProvisionChanged), false
	case plan.StateAvailable:
		if r, ok := p.needsInspect(); ok && r == plan.ReasonInspectRequested {
			// Ironic inspects only in manageable. A node that merely was
			// never inspected is not taken back for it.
			return addOp(plan.KindManage, plan.ReasonInspectRequested), false
		}
		switch target {
		case plan.StateManageable:
			reason := plan.ReasonProvisionChanged
			if n.Spec.Retired != nil {
				reason = plan.ReasonRetired
			}
			return addOp(plan.KindManage, reason), false
		case plan.StateActive:
			return addOp(plan.KindDeploy, plan.ReasonProvisionChanged), false
		}
		return cur, true
	case plan.StateActive:
		if r, ok := p.needsInspect(); ok && r == plan.ReasonInspectRequested {
			p.note(plan.ReasonInspectRequested, "inspection requested; it runs when the node is next manageable (an active node is not inspected)")
		}
		if target == plan.StateActive {
			p.checkImage()
			return cur, true
		}
		if prot := n.Spec.Protected; prot != nil {
			p.note(plan.ReasonProtected, "protected: %s; not undeployed (provision.state is %s)", prot.Reason, n.Spec.Provision.State)
			return cur, true
		}
		reason := plan.ReasonProvisionChanged
		if n.Spec.Retired != nil {
			reason = plan.ReasonRetired
		}
		return addOp(plan.KindUndeploy, reason), false
	case plan.StateInspectFailed:
		if _, ok := p.needsInspect(); ok {
			p.powerBeforeRetry(cur)
			return addOp(plan.KindInspect, plan.ReasonRetryFailed), false
		}
		return addOp(plan.KindManage, plan.ReasonRetryFailed), false
	case plan.StateCleanFailed:
		return addOp(plan.KindManage, plan.ReasonRetryFailed), false
	case plan.StateDeployFailed, plan.StateError:
		if target == plan.StateActive {
			return addOp(plan.KindRedeploy, plan.ReasonRetryFailed), false
		}
		return addOp(plan.KindUndeploy, plan.ReasonRetryFailed), false
	case plan.StateAdoptFailed:
		if adopt {
			return addOp(plan.KindAdopt, plan.ReasonRetryFailed), false
		}
		return addOp(plan.KindManage, plan.ReasonRetryFailed), false
	case plan.StateVerifying, plan.StateInspecting, plan.StateInspectWait, plan.StateCleaning, plan.StateCleanWait, plan.StateDeploying, plan.StateWaitCallBack, plan.StateDeleting, plan.StateAdopting:
		// Busy states are resolved by resume before the walk starts; an
		// operation that resumes ends in a stable state.
		p.b.fail(fmt.Errorf("internal: walk reached busy state %s", cur))
	}
	return cur, true
}

// checkImage plans a redeploy of an active node whose image changed,
// unless the node is protected or retired.
func (p *nodePlanner) checkImage() {
	img := p.n.Spec.Provision.Image
	dep := p.st.Deployed
	if img == nil || dep == nil || (dep.Image == img.URL && dep.Checksum == img.Checksum) {
		if p.n.Spec.Retired != nil {
			p.note(plan.ReasonRetired, "retired: %s; keeps its workload until provision.state leaves active", p.n.Spec.Retired.Reason)
		}
		return
	}
	switch {
	case p.n.Spec.Retired != nil:
		p.note(plan.ReasonRetired, "retired: %s; image changed but a retired node is never deployed again", p.n.Spec.Retired.Reason)
	case p.n.Spec.Protected != nil:
		p.note(plan.ReasonProtected, "protected: %s; image changed but not redeployed", p.n.Spec.Protected.Reason)
	default:
		op := p.operation(plan.KindRedeploy, plan.StateActive)
		op.Reason = plan.ReasonImageChanged
		p.add(op)
	}
}

// finalPower brings power to spec.power (or off for a parked retired
// node) once the operations are done. Unknown power counts as different:
// the executor reads power before changing it and leaves it alone when it
// is already right. Without operations a difference is
// drift, handled by the site's powerSync policy: enforce changes power,
// report only shows it.
func (p *nodePlanner) finalPower(cur plan.State) {
	want := plan.PowerState(p.n.Spec.Power)
	// A retired node is parked powered off once it is back in manageable,
	// whatever power its spec still says from its working life.
	parking := p.n.Spec.Retired != nil && cur == plan.StateManageable
	if parking {
		if want == plan.PowerOn {
			p.note(plan.ReasonRetired, "retired: parked powered off (spec power: on is ignored)")
		}
		want = plan.PowerOff
	}
	have := p.b.power
	p.np.PowerTo = have
	if want == "" || have == want {
		return
	}
	if want == plan.PowerOff && p.n.Spec.DisablePowerOff {
		p.note(plan.ReasonDisablePowerOff, "power is %s, spec says off, but disablePowerOff is set", have)
		return
	}
	reason := plan.ReasonPowerDrift
	switch {
	case parking:
		reason = plan.ReasonRetired
	case len(p.np.Operations) == 0:
		if p.site.PowerSync == "report" {
			p.note(plan.ReasonPowerDrift, "power drift: observed %s, spec says %s (powerSync: report, no action)", have, want)
			return
		}
	default:
		reason = plan.ReasonProvisionChanged
	}
	action := plan.PowerActionOn
	if want == plan.PowerOff {
		action = plan.PowerActionOff
	}
	s, ok := p.b.powerStep(cur, action)
	if !ok {
		return
	}
	p.add(plan.Operation{Kind: plan.KindPower, Reason: reason, From: cur, To: cur, Steps: []plan.Step{s}})
	p.np.PowerTo = p.b.power
}

// powerBeforeRetry enforces power drift (powerSync: enforce) of a node in
// inspect failed before its inspection is tried again: an inspection that
// keeps failing would otherwise hold back the power operation planned
// after it (operations after an inspection wait for it to be recorded),
// and inspection failure must never block power enforcement.
func (p *nodePlanner) powerBeforeRetry(cur plan.State) {
	want := plan.PowerState(p.n.Spec.Power)
	if want == "" || p.b.power == want || p.site.PowerSync == "report" || (want == plan.PowerOff && p.n.Spec.DisablePowerOff) {
		return
	}
	action := plan.PowerActionOn
	if want == plan.PowerOff {
		action = plan.PowerActionOff
	}
	s, ok := p.b.powerStep(cur, action)
	if !ok {
		return
	}
	p.add(plan.Operation{Kind: plan.KindPower, Reason: plan.ReasonPowerDrift, From: cur, To: cur, Steps: []plan.Step{s}})
}

// checkOperation verifies an operation against the state machine: every
// state change between steps must be an allowed transition.
func checkOperation(op plan.Operation) error {
	cur := op.From
	for i, s := range op.Steps[op.Resume:] {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("%s step %d: %w", op.Kind, i, err)
		}
		next := s.State
		if next != cur && !Allowed(cur, next) {
			return fmt.Errorf("%s: %s -> %s is not a transition", op.Kind, cur, next)
		}
		cur = next
	}
	to := op.To
	if to != cur && !Allowed(cur, to) {
		return fmt.Errorf("%s: %s -> %s is not a transition", op.Kind, cur, to)
	}
	return nil
}
