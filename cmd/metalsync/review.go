package main

import (
	"context"
	"encoding/json"

	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/repo/gitreview"
	"metalsync.dev/metalsync/rights"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/sim/agentsim"
)

// reviewArgs are the flags of `metalsync review`.
type reviewArgs struct {
	dir    string
	base   string
	head   string
	format string
}

func parseReview(args []string, env *Env) (reviewArgs, int) {
	fs := newFlags("review", env)
	a := reviewArgs{dir: "."}
	fs.StringVar(&a.base, "base", "", "the revision the change is reviewed against (the pull request's target), required")
	fs.StringVar(&a.head, "head", "HEAD", "the revision under review")
	fs.StringVar(&a.format, "format", "text", "output format: text, json or markdown")
	fs.Usage = func() {
		fmt.Fprintln(env.Err, "usage: metalsync review --base REV [--head REV] [flags] [DIR]\n\nReviews every commit from base to head (first parents) of the inventory\nrepository in DIR (default .): who made it, whether its signature verifies,\nevery changed field allowed or refused by the rights table, the template\nchanges' blast radius and the plan at head. Exits 0 when every change is\nallowed, 1 when one is refused or on error.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(env.Err, "metalsync review: at most one directory")
		return a, exitUsage
	}
	if fs.NArg() == 1 {
		a.dir = fs.Arg(0)
	}
	if a.base == "" {
		fmt.Fprintln(env.Err, "metalsync review: --base is required (the revision the change is reviewed against)")
		return a, exitUsage
	}
	switch a.format {
	case "text", "json", "markdown":
	default:
		fmt.Fprintf(env.Err, "metalsync review: unknown --format %q (text, json or markdown)\n", a.format)
		return a, exitUsage
	}
	return a, -1
}

func runReview(ctx context.Context, args []string, env *Env) int {
	a, code := parseReview(args, env)
	if code >= 0 {
		return code
	}
	rep, p, err := review(ctx, env, a)
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync review: %v\n", err)
		return exitError
	}
	switch a.format {
	case "json":
		if err := writeJSONReview(env.Out, rep, p); err != nil {
			fmt.Fprintf(env.Err, "metalsync review: %v\n", err)
			return exitError
		}
	case "markdown":
		writeMarkdownReview(env.Out, rep, p)
	default:
		writeTextReview(env.Out, rep, p)
	}
	refused := rep.Refused()
	if len(refused) > 0 {
		fmt.Fprintf(env.Err, "metalsync review: %d %s refused: %s\n", len(refused), pluralWord(len(refused), "change", "changes"), refusedPaths(refused))
		return exitError
	}
	if rep.HeadInvalid.HasErrors() {
		fmt.Fprintln(env.Err, "metalsync review: the inventory at head is invalid (run `metalsync validate`)")
		return exitError
	}
	return exitOK
}

// review opens the repository holding dir, reviews base..head and plans
// head from the status recorded in it.
func review(ctx context.Context, env *Env, a reviewArgs) (*gitreview.Report, *plan.Plan, error) {
	repo, err := git.PlainOpenWithOptions(a.dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, nil, fmt.Errorf("open repository %s: %w", a.dir, err)
	}
	if fst, ok := repo.Storer.(*filesystem.Storage); ok {
		// Keeping pack files open reads a 10k-file tree about 3x faster
		// than opening the pack for every object.
		st := filesystem.NewStorageWithOptions(fst.Filesystem(), cache.NewObjectLRUDefault(), filesystem.Options{KeepDescriptors: true})
		defer st.Close()
		if repo, err = git.Open(st, nil); err != nil {
			return nil, nil, fmt.Errorf("open repository %s: %w", a.dir, err)
		}
	}
	base, err := repo.ResolveRevision(plumbing.Revision(a.base))
	if err != nil {
		return nil, nil, fmt.Errorf("base %q: %w", a.base, err)
	}
	head, err := repo.ResolveRevision(plumbing.Revision(a.head))
	if err != nil {
		return nil, nil, fmt.Errorf("head %q: %w", a.head, err)
	}
	// The validation cache of plan and validate serves review too: base
	// and head share most files with the working tree.
	var l schema.Loader
	cache := cachePath(a.dir, env)
	if cache != "" {
		if err := l.LoadCache(cache); err != nil {
			fmt.Fprintf(env.Err, "metalsync: %v (validating everything)\n", err)
		}
	}
	rep, err := gitreview.Review(ctx, repo.Storer, *base, *head, gitreview.Options{Loader: &l})
	if err != nil {
		return nil, nil, err
	}
	if cache != "" && l.Dirty() {
		if err := l.SaveCache(cache); err != nil {
			fmt.Fprintf(env.Err, "metalsync: %v (next run validates everything again)\n", err)
		}
	}
	if rep.HeadInventory == nil {
		return rep, nil, nil
	}
	inv := rep.HeadInventory
	ex := newExecutor(env, a.dir, &agentsim.Agent{}, false)
	if agentConfigured(inv.Site) {
		sim := ex.AgentFor
		ex.AgentFor = func(driver string) apply.Agent {
			if a := sim(driver); a != nil {
				return a
			}
			return servedAgent{}
		}
	}
	p := reconcile.Plan(inv, reconcile.ObservedFromStatus(inv.Status), ex.Capabilities(), time.Now())
	p.InventoryCommit = rep.Head
	return rep, &p, nil
}

// refusedPaths names the refused fields: Node/n1 spec.bmc.address, ...
func refusedPaths(ds []rights.Decision) string {
	var out []string
	seen := map[string]bool{}
	for _, d := range ds {
		s := d.Kind + "/" + d.Name
		if d.Path != "" {
			s += " " + d.Path
		} else {
			s += " (" + string(d.Op) + ")"
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
}

func signatureText(s gitreview.Signature) string {
	switch {
	case s.Verified:
		return "signature verified (" + s.Key + ")"
	case s.Problem != "":
		return s.Problem
	case s.Signed:
		return "signed"
	}
	return "unsigned"
}

func decisionLine(d rights.Decision) string {
	verdict := "allowed"
	if !d.Allowed {
		verdict = "REFUSED"
	}
	what := d.Kind + "/" + d.Name
	if d.Path != "" {
		what += " " + d.Path
	} else {
		what += " (" + string(d.Op) + ")"
	}
	why := d.Rule + ": " + d.Why
	if d.Rule != rights.RuleUntrusted {
		why += "; author is " + d.Role.String()
	}
	return fmt.Sprintf("%s  %s  [%s]", verdict, what, why)
}

func reviewSummary(rep *gitreview.Report) string {
	changes := 0
	for _, c := range rep.Commits {
		changes += len(c.Decisions)
	}
	refused := len(rep.Refused())
	verdict := "every change allowed"
	if refused > 0 {
		verdict = fmt.Sprintf("%d %s refused", refused, pluralWord(refused, "change", "changes"))
	}
	return fmt.Sprintf("Review %s..%s: %d %s, %d %s, %s.", shortCommit(rep.Base), shortCommit(rep.Head),
		len(rep.Commits), pluralWord(len(rep.Commits), "commit", "commits"), changes, pluralWord(changes, "change", "changes"), verdict)
}

func writeTextReview(w io.Writer, rep *gitreview.Report, p *plan.Plan) {
	var b strings.Builder
	b.WriteString(reviewSummary(rep) + "\n")
	for _, c := range rep.Commits {
		merge := ""
		if c.Merge {
			merge = " (merge)"
		}
		fmt.Fprintf(&b, "\ncommit %s%s %s: %s\n  %s\n", shortCommit(c.Hash), merge, c.Author.Email, signatureText(c.Signature), c.Subject)
		if c.Invalid.HasErrors() {
			fmt.Fprintf(&b, "  ! inventory invalid here (%d errors); its changes are reviewed with the next valid commit\n", c.Invalid.Errors())
		}
		for _, d := range c.Decisions {
			b.WriteString("  " + decisionLine(d) + "\n")
		}
	}
	if len(rep.Blast) > 0 {
		b.WriteString("\nDeploy template changes (blast radius):\n")
		for _, t := range rep.Blast {
			fmt.Fprintf(&b, "  %s (%s): %d %s", t.Name, t.Op, len(t.Nodes), pluralWord(len(t.Nodes), "node", "nodes"))
			if len(t.Nodes) > 0 {
				b.WriteString(": " + strings.Join(t.Nodes, ", "))
			}
			b.WriteString("\n")
		}
	}
	if rep.HeadInvalid.HasErrors() {
		b.WriteString("\nThe inventory at head is invalid; nothing planned:\n")
		b.WriteString(rep.HeadInvalid.String())
	}
	io.WriteString(w, b.String())
	if p != nil {
		io.WriteString(w, "\nPlan at head:\n")
		writeTextPlan(w, *p)
	}
}

func writeMarkdownReview(w io.Writer, rep *gitreview.Report, p *plan.Plan) {
	var b strings.Builder
	b.WriteString("### metalsync review\n\n")
	fmt.Fprintf(&b, "**%s**\n\n", reviewSummary(rep))
	if refused := rep.Refused(); len(refused) > 0 {
		b.WriteString("#### Refused\n\n| Resource | Field | Rule | Author |\n|---|---|---|---|\n")
		for _, c := range rep.Commits {
			for _, d := range c.Refused() {
				fmt.Fprintf(&b, "| `%s/%s` | `%s` | %s: %s | %s (`%s`) |\n", d.Kind, d.Name, orDash(d.Path), d.Rule, mdEscape(d.Why), mdEscape(c.Author.Email), shortCommit(c.Hash))
			}
		}
		b.WriteString("\n")
	}
	if rep.HeadInvalid.HasErrors() {
		fmt.Fprintf(&b, "#### The inventory at head is invalid (%d errors)\n\n```\n%s```\n\n", rep.HeadInvalid.Errors(), rep.HeadInvalid.String())
	}
	if len(rep.Blast) > 0 {
		b.WriteString("#### Deploy template changes\n\n")
		for _, t := range rep.Blast {
			fmt.Fprintf(&b, "- `%s` (%s): %d %s\n", t.Name, t.Op, len(t.Nodes), pluralWord(len(t.Nodes), "node", "nodes"))
		}
		b.WriteString("\n<details><summary>Nodes each template change touches</summary>\n\n")
		for _, t := range rep.Blast {
			fmt.Fprintf(&b, "**`%s`**: %s\n\n", t.Name, mdEscape(strings.Join(t.Nodes, ", ")))
		}
		b.WriteString("</details>\n\n")
	}
	fmt.Fprintf(&b, "<details><summary>%d %s</summary>\n\n", len(rep.Commits), pluralWord(len(rep.Commits), "commit", "commits"))
	for _, c := range rep.Commits {
		fmt.Fprintf(&b, "**`%s`** %s, %s: %s\n\n", shortCommit(c.Hash), mdEscape(c.Author.Email), mdEscape(signatureText(c.Signature)), mdEscape(c.Subject))
		if len(c.Decisions) == 0 {
			continue
		}
		b.WriteString("| | Resource | Field | Rule |\n|---|---|---|---|\n")
		for _, d := range c.Decisions {
			v := "allowed"
			if !d.Allowed {
				v = "**refused**"
			}
			fmt.Fprintf(&b, "| %s | `%s/%s` | `%s` | %s |\n", v, d.Kind, d.Name, orDash(d.Path), d.Rule)
		}
		b.WriteString("\n")
	}
	b.WriteString("</details>\n\n")
	io.WriteString(w, b.String())
	if p != nil {
		b.Reset()
		b.WriteString("<details><summary>Plan at head: " + mdEscape(p.Summarize().Line()) + "</summary>\n\n")
		io.WriteString(w, b.String())
		writeMarkdownPlan(w, *p)
		io.WriteString(w, "\n</details>\n")
	}
}

// reviewFormatVersion versions the JSON form of a review.
const reviewFormatVersion = "1"

func writeJSONReview(w io.Writer, rep *gitreview.Report, p *plan.Plan) error {
	doc := struct {
		FormatVersion string `json:"format_version"`
		*gitreview.Report
		Allowed bool            `json:"allowed"`
		Refused []string        `json:"refused"`
		Plan    json.RawMessage `json:"plan,omitempty"`
	}{FormatVersion: reviewFormatVersion, Report: rep, Refused: []string{}}
	for _, d := range rep.Refused() {
		doc.Refused = append(doc.Refused, refusedPaths([]rights.Decision{d}))
	}
	doc.Allowed = len(doc.Refused) == 0 && !rep.HeadInvalid.HasErrors()
	if p != nil {
		b, err := plan.Marshal(*p)
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		doc.Plan = b
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("review: %w", err)
	}
	return nil
}
