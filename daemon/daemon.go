// Package daemon is metalsync's long-running reconciler: it follows the
// inventory (a Git branch, or a local directory), acts on every valid
// revision through the executor, and writes observed status back.
//
// Data flows one way: source → inventory → plan → executor → status sink.
// Git is the source of truth for desired and observed state: on start the
// daemon reads status from the first valid revision and resumes from it;
// afterwards the status it writes itself is authoritative in memory, and
// the daemon's own status commits arriving from the remote do not trigger
// a re-plan.
package daemon

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/rights"
	"metalsync.dev/metalsync/schema"
)

// Source delivers inventory revisions: a Git commit, or a snapshot of a
// local directory. Run calls onRevision with the newest revision whenever
// it changes (and once at start), fetching at once when trigger fires.
type Source interface {
	Run(ctx context.Context, trigger <-chan struct{}, onRevision func(ctx context.Context, rev string, fsys fs.FS)) error
}

// Executor runs plans; *apply.Executor is the implementation.
type Executor interface {
	Apply(ctx context.Context, inv *schema.Inventory, p plan.Plan, observed reconcile.Observed) apply.Report
	// RecordPlanErrors writes each refused node's plan error to its status,
	// and clears it from nodes planned again.
	// It returns observed with those changes.
	RecordPlanErrors(inv *schema.Inventory, p plan.Plan, observed reconcile.Observed) (reconcile.Observed, error)
	Refresh(ctx context.Context, inv *schema.Inventory, observed reconcile.Observed) (reconcile.Observed, []error)
	Capabilities() reconcile.Capabilities
}

// InvalidReporter records that a revision was refused, for example in the
// status the daemon commits; nil diagnostics clear the report.
type InvalidReporter interface {
	ReportInvalid(rev string, diags schema.Diagnostics)
}

// Gate decides whether the change from the last good revision to a new,
// valid one may be acted on: gitreview.Gate checks who made each commit
// against the rights table. Refused changes come back as error
// diagnostics; a revision with any is refused like an invalid one. An
// error (the history cannot be read) refuses the revision too: the
// daemon acts on no change it could not check.
type Gate interface {
	Check(ctx context.Context, goodRev string, good *schema.Inventory, rev string, inv *schema.Inventory) (schema.Diagnostics, error)
}

// Config wires a Daemon.
type Config struct {
	Source   Source
	Executor Executor
	Metrics  *Metrics
	Logger   *slog.Logger
	// Invalid, when set, is told about refused revisions.
	Invalid InvalidReporter
	// Gate, when set, checks every revision after the first against the
	// last good one; nil acts on every valid revision.
	Gate Gate
	// Trigger, when set, fetches at once (the webhook fires it).
	Trigger <-chan struct{}
	// ResyncInterval re-reads live power state and re-plans; 0 uses the
	// site's sync.powerInterval (default 5m).
	ResyncInterval time.Duration
	// Grace bounds how long running steps may take to reach a safe point
	// after shutdown begins.
	Grace time.Duration
	// RetryDelay is the pause before re-planning nodes that asked to be
	// retried later.
	RetryDelay time.Duration
	Now        func() time.Time
	// OnLoad, when set, sees every valid revision (and its files) before
	// it is planned: the Git status sink learns where status files belong,
	// and ageFile credentials are read from the same revision.
	OnLoad func(rev string, inv *schema.Inventory, fsys fs.FS)
	// Loader loads revisions; sharing one with the caller lets a file read
	// before Run be validated once. Nil uses a private one.
	Loader *schema.Loader
}

// Daemon is one reconciler. Create it with New and start it with Run.
type Daemon struct {
	cfg Config
	log *slog.Logger

	wake chan struct{} // buffered 1: re-plan now

	mu       sync.Mutex
	good     *revision          // last valid revision; guarded by mu
	observed reconcile.Observed // authoritative observed state; guarded by mu
	invalid  string             // newest refused revision, "" when the newest is good; guarded by mu
	// invalidDiags is why invalid was refused; guarded by mu.
	invalidDiags schema.Diagnostics
	// generation counts changes to good, observed and invalid, so that
	// readers can tell cheaply that nothing changed; guarded by mu.
	generation uint64
	passes     int                  // passes run; guarded by mu
	onPass     []func(apply.Report) // test hooks; guarded by mu
	// planErrors are the nodes the last plan refused, with why; guarded by mu.
	planErrors map[string]string
}

type revision struct {
	rev string
	inv *schema.Inventory
}

// New checks cfg and returns a Daemon.
func New(cfg Config) (*Daemon, error) {
	if cfg.Source == nil || cfg.Executor == nil {
		return nil, fmt.Errorf("daemon: source and executor are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 15 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Loader == nil {
		cfg.Loader = &schema.Loader{}
	}
	return &Daemon{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1)}, nil
}

// Ready returns nil once a valid revision has been loaded.
func (d *Daemon) Ready() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.good == nil {
		if d.invalid != "" {
			return fmt.Errorf("revision %s is invalid and no valid revision was seen yet", short(d.invalid))
		}
		return fmt.Errorf("no inventory revision loaded yet")
	}
	return nil
}

// Observed returns a copy of the observed state.
func (d *Daemon) Observed() reconcile.Observed {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.observed.Clone()
}

// Revision returns the last valid revision and its inventory.
func (d *Daemon) Revision() (string, *schema.Inventory) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.good == nil {
		return "", nil
	}
	return d.good.rev, d.good.inv
}

// Snapshot is the daemon's view at one instant: what the fleet page and
// /api/v1/nodes show.
type Snapshot struct {
	// Revision and Inventory are the last valid revision ("" and nil
	// before the first).
	Revision  string
	Inventory *schema.Inventory
	Observed  reconcile.Observed
	// Invalid is the newest revision when it was refused, and why.
	Invalid            string
	InvalidDiagnostics schema.Diagnostics
	// Generation changes whenever anything above does.
	Generation uint64
}

// Snapshot returns a consistent copy of the daemon's view.
func (d *Daemon) Snapshot() Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Snapshot{Observed: d.observed.Clone(), Invalid: d.invalid, InvalidDiagnostics: d.invalidDiags, Generation: d.generation}
	if d.good != nil {
		s.Revision, s.Inventory = d.good.rev, d.good.inv
	}
	return s
}

// Generation changes whenever Snapshot would return something new.
func (d *Daemon) Generation() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.generation
}

// OnPass registers fn to be called after every pass (for the demo's
// progress view and tests).
func (d *Daemon) OnPass(fn func(apply.Report)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.onPass = append(d.onPass, fn)
}

// Sink wraps the status sink the executor writes through, so that the
// daemon's observed state follows every write.
func (d *Daemon) Sink(next apply.StatusSink) apply.StatusSink {
	return &observingSink{d: d, next: next}
}

type observingSink struct {
	d    *Daemon
	next apply.StatusSink
}

func (s *observingSink) WriteStatus(node string, st schema.NodeStatusBody) error {
	s.d.mu.Lock()
	if s.d.observed == nil {
		s.d.observed = reconcile.Observed{}
	}
	s.d.observed[node] = st
	s.d.generation++
	s.d.mu.Unlock()
	return s.next.WriteStatus(node, st)
}

// Sync passes the executor's sync through to the sink, when it batches.
func (s *observingSink) Sync(ctx context.Context) error {
	if sy, ok := s.next.(apply.Syncer); ok {
		return sy.Sync(ctx)
	}
	return nil
}

func (s *observingSink) ForgetStatus(node string) error {
	s.d.mu.Lock()
	delete(s.d.observed, node)
	s.d.generation++
	s.d.mu.Unlock()
	return s.next.ForgetStatus(node)
}

func (d *Daemon) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// onRevision loads a revision; only a wholly valid one replaces the last
// good one, so an invalid commit changes no hardware.
func (d *Daemon) onRevision(ctx context.Context, rev string, fsys fs.FS) {
	start := time.Now()
	// Only files that changed since the last revision are validated again.
	inv, diags := d.cfg.Loader.Load(fsys)
	m := d.cfg.Metrics
	if diags.HasErrors() {
		d.refuse(rev, diags, "inventory revision is invalid; still reconciling the last valid one")
		return
	}
	if refused := d.checkRights(ctx, rev, inv); refused.HasErrors() {
		m.RefusedChanges.Add(float64(refused.Errors()))
		d.refuse(rev, refused, "inventory revision holds changes its authors may not make; still reconciling the last good one")
		return
	}
	m.InventoryErrors.Set(0)
	if d.cfg.OnLoad != nil {
		d.cfg.OnLoad(rev, inv, fsys)
	}
	d.mu.Lock()
	first := d.good == nil
	d.good = &revision{rev: rev, inv: inv}
	d.invalid, d.invalidDiags = "", nil
	d.generation++
	if first {
		// Git is the truth at start: resume from the committed status.
		d.observed = reconcile.ObservedFromStatus(inv.Status)
	}
	d.mu.Unlock()
	if d.cfg.Invalid != nil {
		d.cfg.Invalid.ReportInvalid(rev, nil)
	}
	m.LastGoodCommit.Reset()
	m.LastGoodCommit.WithLabelValues(rev).SetToCurrentTime()
	d.log.Info("inventory revision loaded", "revision", short(rev), "nodes", len(inv.Nodes), "took", time.Since(start).Round(time.Millisecond))
	d.kick()
}

// refuse keeps the last good revision and reports why rev is not acted on.
func (d *Daemon) refuse(rev string, diags schema.Diagnostics, msg string) {
	m := d.cfg.Metrics
	m.InvalidCommits.Inc()
	m.InventoryErrors.Set(float64(diags.Errors()))
	d.mu.Lock()
	d.invalid, d.invalidDiags = rev, diags
	d.generation++
	d.mu.Unlock()
	d.log.Warn(msg, "revision", short(rev), "errors", diags.Errors())
	for _, dg := range diags {
		d.log.Warn("refused inventory", "revision", short(rev), "diagnostic", dg.String())
	}
	if d.cfg.Invalid != nil {
		d.cfg.Invalid.ReportInvalid(rev, diags)
	}
}

// checkRights asks the gate about the change from the last good revision
// to rev. The first revision is trusted: it is where the daemon starts,
// as a review needs a base.
func (d *Daemon) checkRights(ctx context.Context, rev string, inv *schema.Inventory) schema.Diagnostics {
	d.mu.Lock()
	good := d.good
	d.mu.Unlock()
	if d.cfg.Gate == nil || good == nil || good.rev == rev {
		return nil
	}
	diags, err := d.cfg.Gate.Check(ctx, good.rev, good.inv, rev, inv)
	if err != nil {
		return schema.Diagnostics{{Severity: schema.SevError, Code: rights.DiagnosticCode,
			Message: "cannot check who changed what since " + short(good.rev) + ": " + err.Error(),
			Hint:    "the revision is not acted on until its history can be read"}}
	}
	return diags
}

// Run follows the source and reconciles until ctx ends, then lets the
// running pass reach a safe point (bounded by Grace) and returns.
//
// One worker runs passes, one at a time. A pass takes the newest valid
// revision and the observed state when it starts, and plans from them;
// revisions arriving meanwhile only ask for another pass. So a plan is
// never applied to state older than its own start, and no two passes
// race for a node.
func (d *Daemon) Run(ctx context.Context) error {
	srcErr := make(chan error, 1)
	go func() {
		srcErr <- d.cfg.Source.Run(ctx, d.cfg.Trigger, d.onRevision)
	}()
	// The pass outlives ctx by at most Grace so that a step in flight can
	// finish and its status be written.
	passCtx, cancelPass := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPass()
	worker := make(chan struct{})
	go func() {
		defer close(worker)
		d.work(ctx, passCtx)
	}()
	for {
		select {
		case <-ctx.Done():
			d.log.Info("stopping: no new work; waiting for the running pass", "grace", d.cfg.Grace)
			grace := time.NewTimer(d.cfg.Grace)
			select {
			case <-worker:
			case <-grace.C:
				d.log.Warn("grace period over; cancelling running steps (they resume from status on restart)")
				cancelPass()
				<-worker
			}
			grace.Stop()
			if err := <-srcErr; err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		case err := <-srcErr:
			if ctx.Err() != nil {
				srcErr <- err
				continue
			}
			cancelPass()
			<-worker
			return fmt.Errorf("inventory source: %w", err)
		}
	}
}

// work is the pass worker: it waits for a reason to pass (a revision, a
// node that progressed or asked to be retried, the power sweep) and runs
// one pass at a time until ctx ends.
func (d *Daemon) work(ctx, passCtx context.Context) {
	var sweep <-chan time.Time
	var sweepTimer *time.Timer
	defer func() {
		if sweepTimer != nil {
			sweepTimer.Stop()
		}
	}()
	for {
		refresh := false
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-sweep:
			refresh = true
		}
		if sweepTimer == nil {
			// The first sweep is timed from the first loaded revision, by
			// the interval its site asks for.
			if iv, due := d.firstSweep(); iv > 0 {
				sweepTimer = time.NewTimer(iv)
				sweep = sweepTimer.C
				refresh = refresh || due
			}
		} else if refresh {
			sweepTimer.Reset(d.resyncInterval())
		}
		d.pass(passCtx, refresh)
	}
}

// firstSweep returns the sweep interval once a revision is loaded, and
// whether a sweep is due at once: no node's status was updated within the
// interval (a daemon that was down longer than that).
func (d *Daemon) firstSweep() (time.Duration, bool) {
	d.mu.Lock()
	loaded := d.good != nil
	newest := ""
	for _, st := range d.observed {
		newest = max(newest, st.Updated)
	}
	d.mu.Unlock()
	if !loaded {
		return 0, false
	}
	iv := d.resyncInterval()
	last, err := time.Parse(time.RFC3339, newest)
	return iv, newest != "" && err == nil && d.cfg.Now().Sub(last) > iv
}

// pass plans from the newest valid revision and the observed state as
// they are now, and applies the plan.
func (d *Daemon) pass(ctx context.Context, refresh bool) {
	d.mu.Lock()
	good := d.good
	obs := d.observed.Clone()
	d.mu.Unlock()
	if good == nil {
		return
	}
	if refresh {
		live, errs := d.cfg.Executor.Refresh(ctx, good.inv, obs)
		for _, err := range errs {
			d.log.Warn("power refresh", "err", err)
		}
		obs = live
	}
	p := reconcile.Plan(good.inv, obs, d.cfg.Executor.Capabilities(), d.cfg.Now())
	p.InventoryCommit = good.rev
	d.reportPlanErrors(p)
	obs, err := d.cfg.Executor.RecordPlanErrors(good.inv, p, obs)
	if err != nil {
		d.log.Error("recording plan errors in status", "err", err)
	}
	if !actionable(p) {
		d.updateGauges()
		return
	}
	start := time.Now()
	rep := d.cfg.Executor.Apply(ctx, good.inv, p, obs)
	d.cfg.Metrics.ReconcileDuration.Observe(time.Since(start).Seconds())
	d.updateGauges()
	d.mu.Lock()
	d.passes++
	hooks := append([]func(apply.Report){}, d.onPass...)
	d.mu.Unlock()
	for _, h := range hooks {
		h(rep)
	}
	progressed, later := false, false
	for _, r := range rep.Nodes {
		switch r.Outcome {
		case apply.Done, apply.Healthy:
			progressed = true
		case apply.RetryLater, apply.StillFaulted, apply.Busy:
			later = true
		}
	}
	if progressed {
		d.kick()
	}
	if later && !progressed {
		time.AfterFunc(d.cfg.RetryDelay, d.kick)
	}
}

// reportPlanErrors logs a node's plan error once per change (and once when
// it clears) and keeps the gauge of refused nodes.
func (d *Daemon) reportPlanErrors(p plan.Plan) {
	now := map[string]string{}
	for _, np := range p.Nodes {
		if np.Error != "" {
			now[np.Node] = np.Error
		}
	}
	d.mu.Lock()
	prev := d.planErrors
	d.planErrors = now
	d.mu.Unlock()
	for node, msg := range now {
		if prev[node] != msg {
			d.cfg.Metrics.PlanErrors.Inc()
			d.log.Error("node cannot be planned; nothing runs for it until this is fixed", "node", node, "reason", msg, "revision", short(p.InventoryCommit))
		}
	}
	for node := range prev {
		if _, still := now[node]; !still {
			d.log.Info("node can be planned again", "node", node, "revision", short(p.InventoryCommit))
		}
	}
	d.cfg.Metrics.NodesWithPlanErrors.Set(float64(len(now)))
}

func (d *Daemon) resyncInterval() time.Duration {
	if d.cfg.ResyncInterval > 0 {
		return d.cfg.ResyncInterval
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.good != nil && d.good.inv.Site.Spec.Sync != nil {
		if iv, err := time.ParseDuration(d.good.inv.Site.Spec.Sync.PowerInterval); err == nil && iv > 0 {
			return iv
		}
	}
	return 5 * time.Minute
}

// updateGauges recomputes the per-state gauges from the observed state.
func (d *Daemon) updateGauges() {
	d.mu.Lock()
	counts := map[string]int{}
	faults := 0
	for _, st := range d.observed {
		s := st.ProvisionState
		if s == "" {
			s = "enroll"
		}
		counts[s]++
		if st.Fault != nil {
			faults++
		}
	}
	d.mu.Unlock()
	d.cfg.Metrics.NodesByState.Reset()
	for s, n := range counts {
		d.cfg.Metrics.NodesByState.WithLabelValues(s).Set(float64(n))
	}
	d.cfg.Metrics.Faults.Set(float64(faults))
}

// actionable reports whether running p would do anything.
func actionable(p plan.Plan) bool {
	for _, n := range p.Nodes {
		if n.Error == "" && (len(n.Operations) > 0 || n.Probe) {
			return true
		}
	}
	return false
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
