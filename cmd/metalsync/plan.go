package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"metalsync.dev/metalsync/credentials"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/sim/agentsim"
)

// planArgs are the flags of `metalsync plan`.
type planArgs struct {
	dir           string
	refresh       bool
	format        string
	detailed      bool
	out           string
	simulateAgent bool
}

func parsePlan(args []string, env *Env) (planArgs, int) {
	fs := newFlags("plan", env)
	a := planArgs{dir: "."}
	fs.BoolVar(&a.refresh, "refresh", false, "read live power from every BMC first (read-only; changes nothing)")
	fs.StringVar(&a.format, "format", "text", "output format: text, json or markdown")
	fs.BoolVar(&a.detailed, "detailed-exitcode", false, "exit 0 when there are no changes, 2 when there are, 1 on error")
	fs.StringVar(&a.out, "o", "", "also save the plan (JSON) to `FILE`, for metalsync apply FILE")
	fs.BoolVar(&a.simulateAgent, "simulate-agent", false, "plan in-band steps with the simulated deploy agent (always on for fake:// nodes)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync plan [flags] [DIR]\n\nShows what metalsync would do to bring the machines of the inventory in DIR\n(default .) to their desired state, from the status recorded in DIR (offline).")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(env.Err, "metalsync plan: at most one directory")
		return a, exitUsage
	}
	if fs.NArg() == 1 {
		a.dir = fs.Arg(0)
	}
	switch a.format {
	case "text", "json", "markdown":
	default:
		fmt.Fprintf(env.Err, "metalsync plan: unknown --format %q (text, json or markdown)\n", a.format)
		return a, exitUsage
	}
	return a, -1
}

func runPlan(ctx context.Context, args []string, env *Env) int {
	a, code := parsePlan(args, env)
	if code >= 0 {
		return code
	}
	run, err := newPlanRun(ctx, env, a.dir, a.refresh, a.simulateAgent)
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync plan: %v\n", err)
		return exitError
	}
	defer run.close()
	p := run.plan
	if a.out != "" {
		b, err := plan.Marshal(p)
		if err == nil {
			err = os.WriteFile(a.out, b, 0o644)
		}
		if err != nil {
			fmt.Fprintf(env.Err, "metalsync plan: save plan: %v\n", err)
			return exitError
		}
	}
	switch a.format {
	case "json":
		b, err := plan.Marshal(p)
		if err != nil {
			fmt.Fprintf(env.Err, "metalsync plan: %v\n", err)
			return exitError
		}
		env.Out.Write(b)
	case "markdown":
		writeMarkdownPlan(env.Out, p)
	default:
		writeTextPlan(env.Out, p)
	}
	sum := p.Summarize()
	switch {
	case sum.Errors > 0:
		return exitError
	case a.detailed && p.HasChanges():
		return exitChanges
	}
	return exitOK
}

// planRun is one plan with everything it was made from, shared by plan
// and apply.
type planRun struct {
	dir      string
	inv      *schema.Inventory
	observed reconcile.Observed
	ex       *apply.Executor
	agent    *agentsim.Agent
	plan     plan.Plan
}

// close logs out of the BMC sessions the driver registry kept (refresh
// and apply open every node's BMC), even after ctx ended.
func (r *planRun) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.ex.Registry.Close(ctx) // a failed logout leaves a session the BMC expires itself
}

// newPlanRun loads the inventory, observes (from status, or live with
// refresh) and plans.
func newPlanRun(ctx context.Context, env *Env, dir string, refresh, simulateAgent bool) (*planRun, error) {
	inv, diags := loadInventory(dir, env)
	if diags.HasErrors() {
		fmt.Fprint(env.Err, diags.String())
		return nil, errors.New("the inventory is invalid; nothing planned (run `metalsync validate`)")
	}
	if len(diags) > 0 {
		fmt.Fprint(env.Err, diags.String())
	}
	r := &planRun{dir: dir, inv: inv, observed: reconcile.ObservedFromStatus(inv.Status), agent: &agentsim.Agent{}}
	r.ex = newExecutor(env, dir, r.agent, simulateAgent)
	if agentConfigured(inv.Site) && !simulateAgent {
		// The site runs the deploy agent: plan its steps. Only serve
		// runs them (it holds the agent listener).
		sim := r.ex.AgentFor
		r.ex.AgentFor = func(driver string) apply.Agent {
			if a := sim(driver); a != nil {
				return a
			}
			return servedAgent{}
		}
	}
	refreshed := false
	if refresh {
		var errs []error
		r.observed, errs = r.ex.Refresh(ctx, inv, r.observed)
		for _, err := range errs {
			fmt.Fprintf(env.Err, "metalsync: refresh: %v (using recorded status)\n", err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Refresh returns one error per node it could not read: with
		// every node failed, nothing live went into the plan.
		refreshed = len(errs) < len(inv.Nodes)
		if !refreshed && len(inv.Nodes) > 0 {
			fmt.Fprintln(env.Err, "metalsync: refresh: no BMC could be read; the plan uses recorded status only")
		}
	}
	r.plan = reconcile.Plan(inv, r.observed, r.ex.Capabilities(), time.Now())
	r.plan.InventoryCommit, r.plan.InventoryDirty = gitState(ctx, dir)
	r.plan.Refreshed = refreshed
	return r, nil
}

// newExecutor wires the executor for the CLI: the driver registry,
// credentials from env and the repository, and the simulated agent for
// fake:// nodes (and every node with --simulate-agent).
func newExecutor(env *Env, dir string, agent *agentsim.Agent, simulateAll bool) *apply.Executor {
	return &apply.Executor{
		Registry:    defaultRegistry(),
		Credentials: credentials.Resolver{RepoDir: dir, Getenv: env.Getenv},
		AgentFor: func(driver string) apply.Agent {
			if simulateAll || driver == "fake" {
				return agent
			}
			return nil
		},
	}
}

// gitState returns the commit checked out in the Git repository holding
// dir and whether the files under dir differ from it (modified, staged or
// untracked), or "" outside Git.
func gitState(ctx context.Context, dir string) (string, bool) {
	head := gitHead(ctx, dir)
	if head == "" {
		return "", false
	}
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=normal", "--", ".").Output()
	if err != nil {
		return head, false
	}
	return head, len(strings.TrimSpace(string(out))) > 0
}

// gitHead returns the commit checked out in the Git repository holding
// dir, or "" outside Git (or without git installed).
func gitHead(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func reasonText(r plan.Reason) string { return strings.ReplaceAll(r.String(), "-", " ") }

// stepLine describes one step for people.
func stepLine(s plan.Step) string {
	var b strings.Builder
	b.WriteString(s.Name())
	switch {
	case s.BIOS != nil:
		fmt.Fprintf(&b, " (%d %s)", len(s.BIOS.Settings), pluralWord(len(s.BIOS.Settings), "setting", "settings"))
	case s.RAID != nil:
		var vols []string
		for _, v := range s.RAID.Volumes {
			vols = append(vols, v.RAIDLevel+" "+v.Name)
		}
		if s.RAID.Delete {
			vols = append([]string{"delete existing"}, vols...)
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(vols, ", "))
	case s.Firmware != nil:
		fmt.Fprintf(&b, " (%s)", s.Firmware.URL)
	case s.Agent != nil && s.Agent.Step == "write_image":
		if u, ok := s.Agent.Args["url"].(string); ok {
			fmt.Fprintf(&b, " (%s)", u)
		}
	}
	if s.Source != "" && s.Source != "core" {
		fmt.Fprintf(&b, " [%s]", s.Source)
	}
	if s.Destructive {
		b.WriteString(" DESTRUCTIVE")
	}
	return b.String()
}

func powerChange(n plan.NodePlan) string {
	if n.PowerFrom == n.PowerTo {
		return "power " + orDash(n.PowerFrom)
	}
	return "power " + orDash(n.PowerFrom) + " -> " + orDash(n.PowerTo)
}

func orDash[S ~string](s S) string {
	if s == "" {
		return "-"
	}
	return string(s)
}

func stateChange(n plan.NodePlan) string {
	if n.From == n.To {
		return orDash(n.From)
	}
	return orDash(n.From) + " -> " + orDash(n.To)
}

// writeTextPlan is the human view: only nodes with something to do or to
// say, then the summary line.
func writeTextPlan(w io.Writer, p plan.Plan) {
	var b strings.Builder
	source := "working tree"
	if p.InventoryCommit != "" {
		source = "commit " + commitLabel(p)
	}
	observed := "recorded status"
	if p.Refreshed {
		observed = "live BMC power and recorded status"
	}
	fmt.Fprintf(&b, "Inventory: %s. Observed: %s.\n", source, observed)
	unchanged := 0
	for _, n := range p.Nodes {
		if len(n.Operations) == 0 && len(n.Notes) == 0 && n.Error == "" {
			unchanged++
			continue
		}
		fmt.Fprintf(&b, "\n%s: %s, %s\n", n.Node, stateChange(n), powerChange(n))
		if n.Error != "" {
			fmt.Fprintf(&b, "  ERROR: %s\n", n.Error)
		}
		for _, note := range n.Notes {
			fmt.Fprintf(&b, "  ! %s\n", note.Message)
		}
		if n.Probe {
			b.WriteString("  ! will read power only, to see whether the fault has cleared\n")
		}
		if n.Error != "" {
			continue
		}
		for _, op := range n.Operations {
			fmt.Fprintf(&b, "  + %s: %s -> %s (%s)", op.Kind, orDash(op.From), orDash(op.To), reasonText(op.Reason))
			if op.Resume > 0 {
				fmt.Fprintf(&b, ", resuming at step %d of %d", op.Resume+1, len(op.Steps))
			}
			b.WriteString("\n")
			for i, s := range op.Steps {
				mark := "   "
				if i < op.Resume {
					mark = "  x"
				}
				fmt.Fprintf(&b, "  %s %2d. %s\n", mark, i+1, stepLine(s))
			}
		}
	}
	if unchanged > 0 {
		fmt.Fprintf(&b, "\n%d %s unchanged.\n", unchanged, pluralWord(unchanged, "node", "nodes"))
	}
	fmt.Fprintf(&b, "\n%s\n", p.Summarize().Line())
	io.WriteString(w, b.String())
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// commitLabel names the plan's commit, marked as git describe --dirty
// does when the working tree had changes no commit holds.
func commitLabel(p plan.Plan) string {
	if p.InventoryDirty {
		return shortCommit(p.InventoryCommit) + "+dirty (uncommitted changes)"
	}
	return shortCommit(p.InventoryCommit)
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// writeMarkdownPlan is the pull-request view: the summary, a table of
// nodes with changes, notes and errors, and the steps collapsed.
func writeMarkdownPlan(w io.Writer, p plan.Plan) {
	var b strings.Builder
	b.WriteString("### metalsync plan\n\n")
	fmt.Fprintf(&b, "**%s**\n\n", p.Summarize().Line())
	if p.InventoryCommit != "" {
		fmt.Fprintf(&b, "Inventory commit `%s`, observed digest `%s`.\n\n", commitLabel(p), shortDigest(p.ObservedDigest))
	}
	var rows, errs, notes []string
	for _, n := range p.Nodes {
		if n.Error != "" {
			errs = append(errs, fmt.Sprintf("- `%s`: %s", n.Node, mdEscape(n.Error)))
			continue
		}
		for _, note := range n.Notes {
			notes = append(notes, fmt.Sprintf("- `%s`: %s", n.Node, mdEscape(note.Message)))
		}
		if len(n.Operations) == 0 {
			continue
		}
		var ops []string
		for _, op := range n.Operations {
			ops = append(ops, op.Kind.String())
		}
		rows = append(rows, fmt.Sprintf("| `%s` | %s | %s | %s |", n.Node, stateChange(n), powerChange(n), strings.Join(ops, ", ")))
	}
	if len(errs) > 0 {
		b.WriteString("#### Errors (nothing will run for these nodes)\n\n")
		b.WriteString(strings.Join(errs, "\n") + "\n\n")
	}
	if len(rows) > 0 {
		b.WriteString("| Node | Provision | Power | Operations |\n|---|---|---|---|\n")
		b.WriteString(strings.Join(rows, "\n") + "\n\n")
	}
	if len(notes) > 0 {
		b.WriteString("#### Notes (no action)\n\n")
		b.WriteString(strings.Join(notes, "\n") + "\n\n")
	}
	if len(rows) > 0 {
		fmt.Fprintf(&b, "<details><summary>Steps for %d %s</summary>\n\n", len(rows), pluralWord(len(rows), "node", "nodes"))
		for _, n := range p.Nodes {
			if n.Error != "" || len(n.Operations) == 0 {
				continue
			}
			fmt.Fprintf(&b, "**`%s`**\n\n", n.Node)
			for _, op := range n.Operations {
				fmt.Fprintf(&b, "- %s: %s -> %s (%s)\n", op.Kind, orDash(op.From), orDash(op.To), reasonText(op.Reason))
				for i, s := range op.Steps {
					done := ""
					if i < op.Resume {
						done = " (done)"
					}
					fmt.Fprintf(&b, "  %d. %s%s\n", i+1, mdEscape(stepLine(s)), done)
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("</details>\n")
	}
	io.WriteString(w, b.String())
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// mdEscape keeps user text from breaking the table or injecting HTML.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "\n", " ").Replace(s)
}

// servedAgent stands for the deploy agent `metalsync serve` runs, in
// plans made elsewhere: in-band steps are planned, and running one here
// says where it runs instead.
type servedAgent struct{}

var errServedAgent = errors.New("in-band steps run in the deploy agent, which only `metalsync serve` drives (its listener is the one nodes call); use serve, or --simulate-agent for simulated fleets")

func (servedAgent) RunStep(context.Context, string, string, plan.Step) (apply.AgentResult, error) {
	return apply.AgentResult{}, apply.Stall(errServedAgent)
}

func (servedAgent) Command(context.Context, string, string) (apply.AgentResult, bool, error) {
	return apply.AgentResult{}, false, apply.Stall(errServedAgent)
}
