package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"metalsync.dev/metalsync/internal/clock"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/render/mediaserver"
	"metalsync.dev/metalsync/repo/lease"
	"metalsync.dev/metalsync/schema"
)

// applyArgs are the flags of `metalsync apply`.
type applyArgs struct {
	dir           string
	planFile      string
	autoApprove   bool
	refresh       bool
	simulateAgent bool
	mediaListen   string
	mediaURL      string
	lock          bool
	lockTimeout   time.Duration
	remote        remoteFlags
}

func parseApply(args []string, env *Env) (applyArgs, int) {
	fs := newFlags("apply", env)
	a := applyArgs{dir: ".", lock: true}
	fs.BoolVar(&a.autoApprove, "auto-approve", false, "apply without asking for confirmation")
	fs.BoolVar(&a.refresh, "refresh", false, "read live power from every BMC before planning")
	fs.BoolVar(&a.simulateAgent, "simulate-agent", false, "run in-band steps with the simulated deploy agent (always on for fake:// nodes)")
	fs.StringVar(&a.dir, "dir", ".", "inventory repository of a saved plan")
	fs.StringVar(&a.mediaListen, "media-listen", "", "serve nodes' DHCP-less boot media to their BMCs on this address (e.g. [::]:8081) while applying")
	fs.StringVar(&a.mediaURL, "media-url", "", "with --media-listen: the base URL BMCs reach it at (default: the listener's address)")
	fs.BoolVar(&a.lock, "lock", true, "take the fleet's lease before acting; --lock=false lets two runs act on the same machines at once (dangerous)")
	fs.DurationVar(&a.lockTimeout, "lock-timeout", 0, "wait this long for a lease another run holds (default: refuse at once)")
	a.remote.register(fs, " (for the lease)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync apply [flags] [DIR|PLANFILE]\n\nPlans (or reads a plan saved with `metalsync plan -o`), shows it, asks for\nconfirmation, carries it out and writes status files into DIR/status.\nA saved plan is refused when the inventory or the status has moved.\n\nBefore acting it takes the fleet's lease: in the Git remote DIR is a clone\nof (refs/metalsync/lease), else in DIR/.metalsync.lease. A run that finds\nit held is refused; `metalsync unlock` breaks a lease left by a dead run.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	if a.lockTimeout < 0 {
		fmt.Fprintln(env.Err, "metalsync apply: --lock-timeout must not be negative")
		return a, exitUsage
	}
	if a.lockTimeout > 0 && !a.lock {
		fmt.Fprintln(env.Err, "metalsync apply: --lock-timeout has no effect with --lock=false")
		return a, exitUsage
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(env.Err, "metalsync apply: at most one directory or plan file")
		return a, exitUsage
	}
	if fs.NArg() == 1 {
		arg := fs.Arg(0)
		if st, err := os.Stat(arg); err == nil && !st.IsDir() {
			a.planFile = arg
		} else {
			a.dir = arg
		}
	}
	return a, -1
}

func runApply(ctx context.Context, args []string, env *Env) int {
	a, code := parseApply(args, env)
	if code >= 0 {
		return code
	}
	var saved *plan.Plan
	if a.planFile != "" {
		b, err := os.ReadFile(a.planFile)
		if err != nil {
			fmt.Fprintf(env.Err, "metalsync apply: %v\n", err)
			return exitError
		}
		p, err := plan.Unmarshal(b)
		if err != nil {
			fmt.Fprintf(env.Err, "metalsync apply: %s: %v\n", a.planFile, err)
			return exitError
		}
		saved = &p
		a.refresh = p.Refreshed
	}
	run, err := newPlanRun(ctx, env, a.dir, a.refresh, a.simulateAgent)
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync apply: %v\n", err)
		return exitError
	}
	defer run.close()
	p := run.plan
	if saved != nil {
		if err := apply.CheckFresh(*saved, p.InventoryCommit, p.InventoryDigest, p.ObservedDigest); err != nil {
			fmt.Fprintf(env.Err, "metalsync apply: %s: %v\n", a.planFile, err)
			return exitError
		}
		p = *saved
	}
	writeTextPlan(env.Out, p)
	if !p.HasChanges() {
		if p.Summarize().Errors > 0 {
			return exitError
		}
		fmt.Fprintln(env.Out, "\nNothing to do.")
		return exitOK
	}
	if !a.autoApprove && !confirm(env) {
		fmt.Fprintln(env.Err, "metalsync apply: not applied")
		return exitError
	}
	if a.lock {
		// Losing the lease (broken, or not renewed in time) stops the run.
		lctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		release, err := leaseApply(ctx, a, env, run, func(err error) { cancel(err) })
		if err != nil {
			fmt.Fprintf(env.Err, "metalsync apply: %v\n", err)
			return exitError
		}
		defer func() {
			if err := release(); err != nil {
				fmt.Fprintf(env.Err, "metalsync apply: release the lease: %v\n", err)
			}
		}()
		ctx = lctx
	} else {
		fmt.Fprintln(env.Err, "metalsync apply: --lock=false: acting without the fleet's lease; another run may act on the same machines at once")
	}
	statusDir := run.inv.Site.Spec.Status.Directory
	if statusDir == "" {
		statusDir = schema.DefaultStatusDir
	}
	ex := run.ex
	ex.Sink = apply.DirSink{Dir: filepath.Join(a.dir, statusDir), SubDir: run.inv.StatusSubDir, Was: run.inv.StatusPath}
	ex.Observer = &progressView{w: env.Err, start: time.Now()}
	ex.Clock = clock.Real{}
	if a.mediaListen != "" {
		stop, err := serveMedia(ctx, a, run.inv, ex, env)
		if err != nil {
			fmt.Fprintf(env.Err, "metalsync apply: %v\n", err)
			return exitError
		}
		defer stop()
	}
	observed, err := ex.RecordPlanErrors(run.inv, p, run.observed)
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync apply: %v\n", err)
	}
	rep := ex.Apply(ctx, run.inv, p, observed)
	writeSummary(env.Out, rep)
	if cause := context.Cause(ctx); errors.Is(cause, lease.ErrLost) {
		fmt.Fprintf(env.Err, "metalsync apply: stopped: %v; status records the progress\n", cause)
		return exitError
	}
	if ctx.Err() != nil {
		fmt.Fprintln(env.Err, "metalsync apply: interrupted; status records the progress, run apply again to resume")
		return exitError
	}
	if !rep.OK() {
		return exitError
	}
	return exitOK
}

// leaseApply takes and keeps the fleet's lease for this apply, then checks
// that the inputs of its plan have not moved meanwhile: a run that held the
// lease until now may have acted on the same machines (never twice).
func leaseApply(ctx context.Context, a applyArgs, env *Env, run *planRun, onLost func(error)) (release func() error, err error) {
	l, err := leaseOfDir(ctx, a.dir, a.remote.auth(env))
	if err != nil {
		return nil, err
	}
	req := lease.Request{Holder: lease.Holder("apply", ""), Operation: "apply", TTL: applyLeaseTTL, Wait: a.lockTimeout}
	release, err = holdLease(ctx, l, req, unlockCommand(a.dir), onLost)
	if err != nil {
		return nil, err
	}
	if err := inputsMoved(ctx, env, run); err != nil {
		if rerr := release(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("release the lease: %w", rerr))
		}
		return nil, err
	}
	return release, nil
}

// inputsMoved reloads the inventory and its recorded status and reports
// whether either differs from what the plan was made from.
func inputsMoved(ctx context.Context, env *Env, run *planRun) error {
	inv, diags := loadInventory(run.dir, env)
	if diags.HasErrors() {
		return errors.New("the inventory became invalid while taking the lease; nothing applied")
	}
	same := gitHead(ctx, run.dir) == run.plan.InventoryCommit &&
		reconcile.InventoryDigest(inv) == reconcile.InventoryDigest(run.inv) &&
		reconcile.ObservedFromStatus(inv.Status).Digest() == reconcile.ObservedFromStatus(run.inv.Status).Digest()
	if !same {
		return errors.New("the inventory or its status changed while taking the lease (another run may have applied); nothing applied, run apply again")
	}
	return nil
}

// confirm asks on stderr and reads the answer from stdin.
func confirm(env *Env) bool {
	fmt.Fprint(env.Err, "\nApply these changes to the machines? Only 'yes' is accepted: ")
	line, err := bufio.NewReader(env.In).ReadString('\n')
	if err != nil && err != io.EOF {
		return false
	}
	return strings.TrimSpace(line) == "yes"
}

// progressView prints one line per finished, failed or retried step, and
// per node result, on stderr.
type progressView struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (v *progressView) Event(e apply.Event) {
	var line string
	switch e.Kind {
	case apply.StepFinished:
		line = fmt.Sprintf("%s: %s %d/%d %s: done", e.Node, e.Op, e.Step+1, e.Steps, e.StepName)
	case apply.StepRetry:
		line = fmt.Sprintf("%s: %s %d/%d %s: retrying after: %s", e.Node, e.Op, e.Step+1, e.Steps, e.StepName, apply.Sanitize(e.Err))
	case apply.StepFailed:
		line = fmt.Sprintf("%s: %s %d/%d %s: FAILED: %s", e.Node, e.Op, e.Step+1, e.Steps, e.StepName, apply.Sanitize(e.Err))
	case apply.FaultSet:
		line = fmt.Sprintf("%s: automatic fault: %s", e.Node, apply.Sanitize(e.Err))
	case apply.FaultCleared:
		line = fmt.Sprintf("%s: fault cleared, the BMC answers again", e.Node)
	case apply.NodeFinished:
		line = fmt.Sprintf("%s: %s", e.Node, e.Result.Outcome)
	case apply.NodeStarted, apply.StepStarted, apply.StatusWritten:
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	fmt.Fprintf(v.w, "[%6.1fs] %s\n", time.Since(v.start).Seconds(), line)
}

// writeSummary prints the result table.
func writeSummary(w io.Writer, rep apply.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nNODE\tFROM -> TO\tREACHED\tRESULT\tDURATION")
	counts := map[apply.Outcome]int{}
	for _, n := range rep.Nodes {
		counts[n.Outcome]++
		result := n.Outcome.String()
		if n.Err != nil && n.Outcome != apply.Done {
			result += ": " + apply.Sanitize(n.Err)
		}
		fmt.Fprintf(tw, "%s\t%s -> %s\t%s\t%s\t%s\n", n.Node, orDash(n.From), orDash(n.To), orDash(n.Reached), result, n.Duration.Round(time.Millisecond))
	}
	tw.Flush()
	var parts []string
	for _, o := range []apply.Outcome{apply.Done, apply.Healthy, apply.RetryLater, apply.Failed, apply.Faulted, apply.StillFaulted, apply.Canceled, apply.Busy, apply.PlanError} {
		if counts[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[o], o))
		}
	}
	fmt.Fprintf(w, "\nApply: %s.\n", strings.Join(parts, ", "))
}

// serveMedia runs a media server for the duration of the apply and wires
// it into the executor: nodes without DHCP boot from per-node media that
// their BMCs download from it.
func serveMedia(ctx context.Context, a applyArgs, inv *schema.Inventory, ex *apply.Executor, env *Env) (stop func(), err error) {
	ln, err := net.Listen("tcp", a.mediaListen)
	if err != nil {
		return nil, fmt.Errorf("media server: %w", err)
	}
	dir, err := os.MkdirTemp("", "metalsync-media-")
	if err != nil {
		ln.Close()
		return nil, err
	}
	base := a.mediaURL
	if base == "" {
		base = mediaserver.BaseURL("http", ln.Addr())
	}
	srv, err := mediaserver.New(mediaserver.Config{Dir: dir, BaseURL: base})
	if err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	// This run's own address, not the daemon's media.baseURLs, is where
	// the BMCs download from.
	cp := *inv.Site
	site := &cp
	media := schema.MediaSettings{BaseURLs: []string{base}}
	if site.Spec.Media != nil {
		media.TTL = site.Spec.Media.TTL
	}
	site.Spec.Media = &media
	pub, err := mediaserver.NewPublisher(srv, site, mediaserver.PublisherOptions{})
	if err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	ex.Media = pub
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln, nil, 5*time.Second) }()
	fmt.Fprintf(env.Err, "metalsync apply: serving boot media at %s\n", base)
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(env.Err, "metalsync apply: media server: %v\n", err)
		}
		srv.Close()
		os.RemoveAll(dir)
	}, nil
}
