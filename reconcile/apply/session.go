package apply

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

// session is the work on one node in one pass. It is used by one
// goroutine only.
type session struct {
	e      *Executor
	np     plan.NodePlan
	node   *schema.Node // nil for a forgotten node
	site   *schema.Site // whose credential sets and BMC networks apply
	name   string
	driver string
	host   string
	lim    limits
	commit string
	st     schema.NodeStatusBody
	bmc    drivers.BMC // opened on first use
	cmdID  string      // command id of the destructive step running, for the agent
}

// newSession prepares the work on one node; node is nil for a node that
// is no longer in the inventory.
func (e *Executor) newSession(site *schema.Site, node *schema.Node, np plan.NodePlan, st schema.NodeStatusBody, commit string, lim limits) *session {
	s := &session{e: e, np: np, name: np.Node, lim: lim, commit: commit, st: cloneStatus(st), node: node, site: site}
	if s.node != nil {
		if addr, err := schema.ParseBMCAddress(s.node.Spec.BMC.Address); err == nil {
			s.driver, s.host = addr.Driver, addr.Driver+"://"+addr.Endpoint.Host
		}
	}
	return s
}

// run carries out the node's plan.
func (s *session) run(ctx context.Context) NodeResult {
	e := s.e
	start := e.clock().Now()
	res := NodeResult{Node: s.name, From: s.np.From, To: s.np.To}
	finish := func(o Outcome, err error) NodeResult {
		res.Outcome, res.Err = o, err
		res.Reached = plan.State(s.st.ProvisionState)
		res.Status = cloneStatus(s.st)
		res.Duration = e.clock().Now().Sub(start)
		e.emit(Event{Kind: NodeFinished, Node: s.name, Err: err, Result: &res})
		return res
	}
	if !e.claim(s.name) {
		return finish(Busy, fmt.Errorf("node %s: another pass is working on it", s.name))
	}
	defer e.release(s.name)
	defer s.close()
	e.emit(Event{Kind: NodeStarted, Node: s.name})
	if s.np.Probe {
		return s.probe(ctx, finish)
	}
	ops := s.np.Operations
	if s.np.ReplanFrom > 0 && s.np.ReplanFrom < len(ops) {
		// The rest is planned again with the inspection recorded.
		ops = ops[:s.np.ReplanFrom]
		res.Replan = true
	}
	for _, op := range ops {
		if err := ctx.Err(); err != nil {
			return finish(Canceled, err)
		}
		if o, err := s.runOp(ctx, op); err != nil {
			return finish(o, fmt.Errorf("node %s: %s: %w", s.name, op.Kind, err))
		}
	}
	return finish(Done, nil)
}

// probe reads power of a faulted node; an answer clears the fault.
func (s *session) probe(ctx context.Context, finish func(Outcome, error) NodeResult) NodeResult {
	p, err := s.readPower(ctx)
	if err != nil {
		return finish(StillFaulted, fmt.Errorf("node %s: probe: %w", s.name, err))
	}
	s.healthy()
	s.st.Power = string(p)
	s.st.Fault = nil
	s.st.LastError = ""
	if err := s.write(); err != nil {
		return finish(Failed, err)
	}
	s.e.emit(Event{Kind: FaultCleared, Node: s.name})
	return finish(Healthy, nil)
}

// runOp runs one operation from its resume point.
func (s *session) runOp(ctx context.Context, op plan.Operation) (Outcome, error) {
	e := s.e
	if op.Kind == plan.KindForget {
		if err := e.Sink.ForgetStatus(s.name); err != nil {
			return Failed, err
		}
		return Done, nil
	}
	if s.node == nil {
		return Failed, errors.New("not in the inventory")
	}
	names := op.StepNames()
	if prev := s.st.Operation; prev == nil || prev.Kind != op.Kind.String() {
		s.st.Operation = &schema.Operation{Kind: op.Kind.String(), Started: stamp(e.clock().Now())}
	}
	// An intent recorded for the step this operation resumes at means the
	// step may have run before the process stopped.
	pending := s.st.Operation.Intent
	s.st.Operation.Intent = nil
	s.st.Operation.Steps = names
	s.st.Target = string(op.To)
	for i := op.Resume; i < len(op.Steps); i++ {
		step := op.Steps[i]
		if err := ctx.Err(); err != nil {
			return Canceled, err
		}
		s.st.ProvisionState = string(step.State)
		s.st.Operation.Step = i
		var resumed *schema.Intent
		if pending != nil && i == op.Resume && pending.Step == step.Name() {
			resumed = pending
		}
		if err := s.begin(ctx, op, i, step, resumed); err != nil {
			return RetryLater, err
		}
		ev := Event{Node: s.name, Op: op.Kind, Step: i, Steps: len(op.Steps), StepName: step.Name()}
		ev.Kind = StepStarted
		e.emit(ev)
		err := s.runOrRecover(ctx, op, step, ev, resumed)
		if err != nil {
			ev.Kind, ev.Err = StepFailed, err
			e.emit(ev)
			return s.failed(ctx, step, err)
		}
		// Recorded whether or not ctx has ended since: the step is done,
		// and a resumed run must not repeat it.
		s.st.Operation.Step = i + 1
		s.st.Operation.Intent = nil
		s.st.LastError = ""
		if err := s.write(); err != nil {
			return Failed, err
		}
		if step.Destructive {
			// The result is durable before the node is touched again.
			if err := s.sync(context.WithoutCancel(ctx)); err != nil { // recorded even while cancelling
				return RetryLater, err
			}
		}
		ev.Kind = StepFinished
		e.emit(ev)
	}
	s.finishOp(op)
	if err := s.write(); err != nil {
		return Failed, err
	}
	return Done, nil
}

// begin records that step i is about to run. For a destructive step the
// record is a write-ahead intent, durable before the step starts: a step
// whose intent cannot be made durable does not run.
func (s *session) begin(ctx context.Context, op plan.Operation, i int, step plan.Step, resumed *schema.Intent) error {
	s.cmdID = ""
	if step.Destructive {
		in := resumed
		if in == nil {
			in = &schema.Intent{Step: step.Name(), ID: commandID(s.name, s.st.Operation.Started, op.Kind.String(), i, step.Name()),
				Started: stamp(s.e.clock().Now())}
		}
		s.st.Operation.Intent = in
		s.cmdID = in.ID
	}
	if err := s.write(); err != nil {
		return err
	}
	if !step.Destructive {
		return nil
	}
	if err := s.sync(ctx); err != nil {
		return fmt.Errorf("step %s not started: its intent is not durable: %w", step.Name(), err)
	}
	return nil
}

// sync makes every status write so far durable, when the sink batches.
// It is bounded: a remote that hangs must not hold the node, or a
// shutdown, forever.
func (s *session) sync(ctx context.Context) error {
	if sy, ok := s.e.Sink.(Syncer); ok {
		ctx, cancel := context.WithTimeout(ctx, cmp.Or(s.e.SyncTimeout, 2*time.Minute))
		defer cancel()
		if err := sy.Sync(ctx); err != nil {
			return fmt.Errorf("sync status: %w", err)
		}
	}
	return nil
}

// commandID names one run of a step: the same for every attempt of that
// step in that operation, different for the next operation.
func commandID(node, started, kind string, i int, step string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%d\x00%s", node, started, kind, i, step))
	return hex.EncodeToString(h[:12])
}

// runOrRecover runs the step, unless a restart found its intent: then a
// repeatable step runs again, and any other is first checked on the
// machine (the agent by command id, the BMC's volumes), and runs only if
// the machine says it did not.
func (s *session) runOrRecover(ctx context.Context, op plan.Operation, step plan.Step, ev Event, resumed *schema.Intent) error {
	if resumed == nil || step.Repeatable() {
		if resumed != nil {
			s.e.emit(Event{Kind: StepRecovered, Node: s.name, Op: op.Kind, StepName: step.Name(), Err: errors.New("repeatable; running it again")})
		}
		return s.runStep(ctx, op, step, ev)
	}
	ran, err := s.check(ctx, step)
	if err != nil {
		return err
	}
	if ran {
		s.e.emit(Event{Kind: StepRecovered, Node: s.name, Op: op.Kind, StepName: step.Name(), Err: errors.New("the machine says it ran; not repeated")})
		return nil
	}
	s.e.emit(Event{Kind: StepRecovered, Node: s.name, Op: op.Kind, StepName: step.Name(), Err: errors.New("the machine says it did not run; running it")})
	return s.runStep(ctx, op, step, ev)
}

// failed records a failed step and says how the node's work ended.
func (s *session) failed(ctx context.Context, step plan.Step, err error) (Outcome, error) {
	s.st.LastError = Sanitize(err)
	outcome := RetryLater
	switch {
	case ctx.Err() != nil:
		// Progress is already recorded; the next run resumes.
		outcome = Canceled
		s.st.LastError = ""
	case errors.Is(err, ErrFault):
		outcome = Faulted
	case Classify(err) == Stalled:
		// Like Ironic: the operation ends in its failed state and a
		// person (or a new plan) takes it from there.
		if fs, ok := reconcile.FailedState(step.State); ok {
			s.st.ProvisionState = string(fs)
		}
		s.st.Operation = nil
		s.st.Target = ""
		outcome = Failed
	}
	if werr := s.write(); werr != nil {
		return Failed, errors.Join(err, werr)
	}
	return outcome, err
}

// finishOp records the end of an operation.
func (s *session) finishOp(op plan.Operation) {
	now := stamp(s.e.clock().Now())
	s.st.ProvisionState = string(op.To)
	s.st.Target = ""
	s.st.Operation = nil
	s.st.LastError = ""
	switch op.Kind {
	case plan.KindDeploy, plan.KindRedeploy:
		if s.st.Deployed != nil {
			d := *s.st.Deployed
			d.Steps = op.StepNames()
			s.st.Deployed = &d
		}
	case plan.KindAdopt:
		d := &schema.Deployed{At: now, Steps: []string{"adopted"}}
		if img := s.node.Spec.Provision.Image; img != nil {
			d.Image, d.Checksum = img.URL, img.Checksum
		}
		s.st.Deployed = d
	case plan.KindUndeploy:
		s.st.Deployed = nil
	case plan.KindEnroll, plan.KindInspect, plan.KindClean, plan.KindManage, plan.KindPower, plan.KindForget:
	}
	s.st.Retired = ""
	if r := s.node.Spec.Retired; r != nil {
		s.st.Retired = r.Reason
	}
}

// runStep runs one step with its timeout, retrying transient failures
// with backoff and polling while the step is waiting.
func (s *session) runStep(ctx context.Context, op plan.Operation, step plan.Step, ev Event) error {
	e := s.e
	stepCtx, cancel := context.WithTimeout(ctx, time.Duration(step.Timeout))
	defer cancel()
	b, attempts := e.retry()
	for attempt := 0; ; attempt++ {
		err := s.do(stepCtx, step)
		if err == nil {
			s.healthy()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if reason, bad := unhealthy(err); bad {
			if s.countFailure(reason) {
				return fmt.Errorf("%s: %w: %s: %w", step.Name(), ErrFault, reason, err)
			}
		}
		var wait time.Duration
		switch Classify(err) {
		case Stalled:
			return fmt.Errorf("%s: %w", step.Name(), err)
		case Waiting:
			var w *WaitingError
			errors.As(err, &w)
			wait = w.After
		case Transient:
			if attempt+1 >= attempts {
				return inspectFailed(step, fmt.Errorf("%s: %d attempts: %w", step.Name(), attempt+1, err))
			}
			wait = b.Jittered(attempt)
			if after, ok := drivers.RetryAfter(err); ok {
				wait = max(wait, after) // the BMC's Retry-After is the least pause
			}
		}
		ev.Kind, ev.Attempt, ev.Err = StepRetry, attempt, err
		e.emit(ev)
		if serr := e.clock().Sleep(stepCtx, wait); serr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return inspectFailed(step, fmt.Errorf("%s: no success within %s: %w", step.Name(), time.Duration(step.Timeout), err))
		}
	}
}

// countFailure counts a health failure; at the site's threshold it sets
// an automatic fault and reports true.
func (s *session) countFailure(reason string) bool {
	e := s.e
	e.mu.Lock()
	if e.failures == nil {
		e.failures = map[string]int{}
	}
	e.failures[s.name]++
	n := e.failures[s.name]
	e.mu.Unlock()
	if n < s.lim.threshold {
		return false
	}
	s.st.Fault = &schema.Fault{Reason: "power failure: " + reason, Since: stamp(e.clock().Now()), Failures: n}
	e.emit(Event{Kind: FaultSet, Node: s.name, Err: errors.New(s.st.Fault.Reason)})
	return true
}

// healthy resets the node's failure count after a BMC answered.
func (s *session) healthy() {
	e := s.e
	e.mu.Lock()
	delete(e.failures, s.name)
	e.mu.Unlock()
}

// write records the node's status through the sink.
func (s *session) write() error {
	s.st.Commit = s.commit
	s.st.Updated = stamp(s.e.clock().Now())
	// Keep the retirement reason with the node's history (DESIGN:
	// "the reason is kept in status").
	s.st.Retired = ""
	if s.node != nil && s.node.Spec.Retired != nil {
		s.st.Retired = s.node.Spec.Retired.Reason
	}
	if err := s.e.Sink.WriteStatus(s.name, cloneStatus(s.st)); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	s.e.emit(Event{Kind: StatusWritten, Node: s.name})
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// cloneStatus copies the parts of a status the executor changes in place.
func cloneStatus(st schema.NodeStatusBody) schema.NodeStatusBody {
	if st.Operation != nil {
		op := *st.Operation
		op.Steps = append([]string(nil), op.Steps...)
		if op.Intent != nil {
			in := *op.Intent
			op.Intent = &in
		}
		st.Operation = &op
	}
	if st.Fault != nil {
		f := *st.Fault
		st.Fault = &f
	}
	if st.Inspect != nil {
		i := *st.Inspect
		st.Inspect = &i
	}
	if st.Deployed != nil {
		d := *st.Deployed
		d.Steps = append([]string(nil), d.Steps...)
		st.Deployed = &d
	}
	if st.Media != nil {
		m := *st.Media
		st.Media = &m
	}
	return st
}
