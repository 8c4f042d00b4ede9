package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"metalsync.dev/metalsync/fleet"
	"metalsync.dev/metalsync/repo/localwatch"
)

// statusArgs are the flags of `metalsync status`.
type statusArgs struct {
	dir      string
	server   string // a daemon's base URL, instead of dir
	output   string // "" (table), wide or json
	labels   fleet.Selector
	watch    bool
	interval time.Duration // --watch --server: how often to ask
}

// selectorFlag collects repeated -l flags; each may hold several
// comma-separated key=value pairs, as in kubectl.
type selectorFlag struct{ sel fleet.Selector }

func (f selectorFlag) String() string { return "" }

func (f selectorFlag) Set(s string) error { return f.sel.Add(s) }

func parseStatus(args []string, env *Env) (statusArgs, int) {
	fs := newFlags("status", env)
	a := statusArgs{dir: ".", labels: fleet.Selector{}}
	fs.Var(selectorFlag{a.labels}, "l", "only nodes with this label, key=value (repeatable; all must match)")
	fs.StringVar(&a.output, "o", "", "output: wide (more columns) or json")
	fs.StringVar(&a.server, "server", "", "ask a running daemon at this URL (its listener, e.g. http://[::1]:8080) instead of reading DIR")
	fs.BoolVar(&a.watch, "watch", false, "print again whenever the status changes, until interrupted: DIR's files (a daemon run with `serve --local DIR`, or a pull), or the daemon of --server")
	fs.DurationVar(&a.interval, "interval", 2*time.Second, "with --watch --server: how often to ask the daemon")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync status [-l key=value]... [-o wide|json] [--watch] [DIR]\n       metalsync status --server URL [-l key=value]... [-o wide|json] [--watch]\n\nLists the nodes of the inventory in DIR (default .) with the status the\ndaemon recorded there, or, with --server, as a running daemon holds it\nnow: owner, provision state, power (desired/observed), fault or\nquarantine, last error and the age of the last observation.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(env.Err, "metalsync status: at most one directory")
		return a, exitUsage
	}
	if fs.NArg() == 1 {
		if a.server != "" {
			fmt.Fprintln(env.Err, "metalsync status: give a directory or --server, not both")
			return a, exitUsage
		}
		a.dir = fs.Arg(0)
	}
	switch a.output {
	case "", "wide", "json":
	default:
		fmt.Fprintf(env.Err, "metalsync status: unknown -o %q (wide or json)\n", a.output)
		return a, exitUsage
	}
	if a.server != "" {
		u, err := url.Parse(a.server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fmt.Fprintf(env.Err, "metalsync status: --server %q: want http://HOST:PORT or https://HOST:PORT\n", a.server)
			return a, exitUsage
		}
	}
	if a.interval <= 0 {
		fmt.Fprintln(env.Err, "metalsync status: --interval must be positive")
		return a, exitUsage
	}
	return a, -1
}

func runStatus(ctx context.Context, args []string, env *Env) int {
	a, code := parseStatus(args, env)
	if code >= 0 {
		return code
	}
	switch {
	case a.server != "" && a.watch:
		return watchServer(ctx, a, env)
	case a.server != "":
		rep, _, err := fetchStatus(ctx, a, "")
		if err != nil {
			fmt.Fprintf(env.Err, "metalsync status: %v\n", err)
			return exitError
		}
		return printReport(a, rep, env)
	case a.watch:
		return watchStatus(ctx, a, env)
	}
	return showStatus(a, env)
}

// watchStatus shows the status, then again after every settled burst of
// changes in the directory, until ctx ends. An invalid revision is
// reported and waited out.
func watchStatus(ctx context.Context, a statusArgs, env *Env) int {
	w, err := localwatch.New(localwatch.Config{Dir: a.dir})
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync status: watch: %v\n", err)
		return exitError
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	showStatus(a, env)
	for {
		select {
		case <-ctx.Done():
			<-done
			return exitOK
		case err := <-done:
			fmt.Fprintf(env.Err, "metalsync status: watch: %v\n", err)
			return exitError
		case <-w.C():
			fmt.Fprintln(env.Out)
			showStatus(a, env)
		}
	}
}

// watchServer asks the daemon every interval and prints the status again
// whenever it changed (the daemon's ETag); an unreachable daemon is
// reported once per outage and asked again.
func watchServer(ctx context.Context, a statusArgs, env *Env) int {
	etag, failing, first := "", false, true
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		rep, tag, err := fetchStatus(ctx, a, etag)
		switch {
		case ctx.Err() != nil:
			return exitOK
		case err != nil:
			if !failing {
				fmt.Fprintf(env.Err, "metalsync status: %v (asking again every %s)\n", err, a.interval)
			}
			failing = true
		case rep != nil: // nil: not modified
			if failing {
				fmt.Fprintln(env.Err, "metalsync status: the daemon answers again")
			}
			failing = false
			if !first {
				fmt.Fprintln(env.Out)
			}
			first = false
			etag = tag
			printReport(a, rep, env)
		default:
			failing = false
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-t.C:
		}
	}
}

// fetchStatus asks the daemon for its nodes; a nil report with no error
// means unchanged since etag.
func fetchStatus(ctx context.Context, a statusArgs, etag string) (*fleet.Report, string, error) {
	u := strings.TrimSuffix(a.server, "/") + "/api/v1/nodes"
	if len(a.labels) > 0 {
		u += "?" + url.Values{"l": {a.labels.String()}}.Encode()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", fmt.Errorf("daemon %s: %w", a.server, err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("daemon %s: %w", a.server, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, etag, nil
	case http.StatusOK:
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, "", fmt.Errorf("daemon %s: %s: %s", a.server, resp.Status, fleet.OneLine(string(msg)))
	}
	var rep fleet.Report
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<30)).Decode(&rep); err != nil {
		return nil, "", fmt.Errorf("daemon %s: reading its answer: %w", a.server, err)
	}
	if rep.FormatVersion != fleet.FormatVersion {
		return nil, "", fmt.Errorf("daemon %s: answer format %q, this metalsync reads %q (upgrade one of them)", a.server, rep.FormatVersion, fleet.FormatVersion)
	}
	return &rep, resp.Header.Get("ETag"), nil
}

// showStatus loads the inventory in a.dir and prints its status once.
func showStatus(a statusArgs, env *Env) int {
	inv, diags := loadInventory(a.dir, env)
	if len(diags) > 0 {
		fmt.Fprint(env.Err, diags.String())
	}
	if diags.HasErrors() {
		fmt.Fprintln(env.Err, "metalsync status: the inventory is invalid (run `metalsync validate`)")
		return exitError
	}
	rows := fleet.Rows(inv, fleet.Recorded(inv), a.labels, time.Now())
	return printReport(a, &fleet.Report{FormatVersion: fleet.FormatVersion, Nodes: rows}, env)
}

func printReport(a statusArgs, rep *fleet.Report, env *Env) int {
	if rep.Invalid != nil {
		fmt.Fprintf(env.Err, "metalsync status: revision %s is refused; the daemon still reconciles %s:\n%s", shortCommit(rep.Invalid.Revision), shortCommit(rep.Revision), rep.Invalid.Report)
	}
	switch a.output {
	case "json":
		enc := json.NewEncoder(env.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(env.Err, "metalsync status: %v\n", err)
			return exitError
		}
	default:
		if len(rep.Nodes) == 0 {
			fmt.Fprintln(env.Err, "No nodes.")
			return exitOK
		}
		writeStatusTable(env.Out, rep.Nodes, a.output == "wide")
	}
	return exitOK
}

// maxErrorWidth bounds the LAST ERROR column of the narrow table; -o wide
// and -o json give the whole message.
const maxErrorWidth = 60

func writeStatusTable(w io.Writer, rows []fleet.Row, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	head := "NODE\tOWNER\tSTATE\tPOWER\tFAULT\tLAST ERROR\tAGE"
	if wide {
		head += "\tDRIVER\tBMC\tTARGET\tOPERATION\tCOMMIT"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		errText := r.Error()
		if !wide && len(errText) > maxErrorWidth {
			errText = errText[:maxErrorWidth-3] + "..."
		}
		cols := []string{
			r.Node,
			r.Owners(),
			r.State(),
			orDash(r.DesiredPower) + "/" + orDash(r.ObservedPower),
			orDash(strings.Join(r.Marks(), ",")),
			orDash(errText),
			fleet.Age(r.AgeSeconds),
		}
		if wide {
			cols = append(cols, orDash(r.Driver), orDash(r.BMCHost), orDash(r.Target), orDash(fleet.StepText(r.Operation)), orDash(shortCommit(r.Commit)))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	tw.Flush()
}
