package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	inventoryexample "metalsync.dev/metalsync/inventory-example"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/repo/githistory"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/sim/agentsim"
	"metalsync.dev/metalsync/sim/ipmisim"
	"metalsync.dev/metalsync/sim/redfishsim"
)

type demoArgs struct {
	keep    bool
	timeout time.Duration
	dir     string
	vm      bool
}

func parseDemo(args []string, env *Env) (demoArgs, int) {
	fs := newFlags("demo", env)
	a := demoArgs{}
	fs.BoolVar(&a.keep, "keep", false, "keep the demo's repositories for exploring")
	fs.DurationVar(&a.timeout, "timeout", 0, "give up when the fleet has not converged by then (default 3m, 20m with --vm)")
	fs.StringVar(&a.dir, "dir", "", "work directory (default: a new temporary directory)")
	fs.BoolVar(&a.vm, "vm", false, "deploy one emulated machine (QEMU) for real: agent ISO, RAID-1, image, boot from disk")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync demo [--keep] [--vm]\n\nRuns the whole loop on the embedded example inventory with simulated BMCs:\na bare Git remote seeded from the example, the daemon following it, a\nchange pushed by a person, and the status commits the daemon wrote.\n\nWith --vm it deploys one QEMU machine behind a simulated Redfish BMC for\nreal: the deploy agent boots from virtual media, sets up the static\nnetwork, builds RAID-1, writes the image, and the machine boots it.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Err, "metalsync demo: unexpected argument %q\n", fs.Arg(0))
		return a, exitUsage
	}
	if a.timeout <= 0 {
		a.timeout = 3 * time.Minute
		if a.vm {
			a.timeout = 20 * time.Minute
		}
	}
	return a, -1
}

func runDemo(ctx context.Context, args []string, env *Env) int {
	a, code := parseDemo(args, env)
	if code >= 0 {
		return code
	}
	run := demo
	if a.vm {
		run = demoVM
	}
	denv := *env
	denv.Out = &lockedWriter{w: env.Out}
	if err := run(ctx, a, &denv); err != nil {
		fmt.Fprintf(env.Err, "metalsync demo: %v\n", err)
		return exitError
	}
	return exitOK
}

// demoFleet is the simulated hardware of the demo.
type demoFleet struct {
	user, pass string
	addrs      map[string]string // node -> simulated BMC address
	// artifacts is the local stand-in for the site's image and firmware
	// servers, which BMCs and the agent download from.
	artifacts string
	closers   []func()
}

func (f *demoFleet) close() {
	for _, c := range slices.Backward(f.closers) {
		c()
	}
}

func say(env *Env, format string, args ...any) {
	io.WriteString(env.Out, fmt.Sprintf(format+"\n", args...))
}

// lockedWriter makes each Write whole: the daemon's pass lines and the
// demo's headers come from two goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func demo(ctx context.Context, a demoArgs, env *Env) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout+time.Minute)
	defer cancel()
	if _, err := exec.LookPath("git"); err != nil {
		return fmt.Errorf("the demo drives a real Git remote and needs the git command: %w", err)
	}
	dir, cleanup, err := demoDir(a)
	if err != nil {
		return err
	}
	defer cleanup()
	inv, diags := schema.Load(inventoryexample.FS)
	if diags.HasErrors() {
		return fmt.Errorf("embedded example is invalid:\n%s", diags)
	}
	fleet, err := startFleet(inv)
	if err != nil {
		return err
	}
	defer fleet.close()
	showFleet(env, inv, fleet)
	repo, err := seedRemote(ctx, dir, fleet)
	if err != nil {
		return err
	}
	say(env, "\n== Git remote %s seeded from inventory-example/", repo.remote)
	showFirstPlan(env, inv)
	say(env, "\n== Progress")
	dd, err := startDemoDaemon(ctx, repo.remote, fleet, env)
	if err != nil {
		return err
	}
	defer dd.stop()
	if err := dd.waitFirstCommit(ctx, a.timeout, env, inv); err != nil {
		return err
	}
	newImage, err := pushBobsChange(ctx, repo, fleet)
	if err != nil {
		return err
	}
	if err := dd.waitBobsChange(ctx, a.timeout, env, newImage); err != nil {
		return err
	}
	if err := dd.showHistory(ctx, env, "r1-n02"); err != nil {
		return err
	}
	if err := dd.finish(ctx); err != nil {
		return err
	}
	out, err := repo.git(ctx, repo.remote, "log", "--stat", "--format=%n%h %an <%ae> %ar%n    %s", "main")
	if err != nil {
		return err
	}
	say(env, "\n== git log --stat of the remote (status commits by metalsync, specs by people)\n%s", out)
	if a.keep {
		say(env, "== Kept: remote %s, clone %s", repo.remote, repo.work)
	}
	return nil
}

// demoDir is the demo's work directory: --dir, else a new temporary
// directory; cleanup removes it unless --keep.
func demoDir(a demoArgs) (string, func(), error) {
	dir := a.dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "metalsync-demo-"); err != nil {
			return "", nil, fmt.Errorf("demo directory: %w", err)
		}
	}
	if a.keep {
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

func showFleet(env *Env, inv *schema.Inventory, fleet *demoFleet) {
	say(env, "== Simulated fleet: %d nodes", len(inv.Nodes))
	for _, n := range inv.Nodes {
		say(env, "   %-8s %-45s (was %s)", n.Name(), fleet.addrs[n.Name()], n.Spec.BMC.Address)
	}
}

// showFirstPlan prints the plan the daemon starts from, before it acts.
func showFirstPlan(env *Env, inv *schema.Inventory) {
	ex := &apply.Executor{Registry: defaultRegistry(), AgentFor: func(string) apply.Agent { return &agentsim.Agent{} }}
	p := reconcile.Plan(inv, reconcile.Observed{}, ex.Capabilities(), time.Now())
	say(env, "\n== Plan of the first commit\n")
	var pb bytes.Buffer
	writeTextPlan(&pb, p)
	io.Copy(env.Out, &pb)
}

// demoRepo is the demo's bare remote and a person's clone of it.
type demoRepo struct {
	home   string // HOME of the git commands
	remote string
	work   string
}

// git runs git in dir as Alice.
func (r demoRepo) git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.net",
		"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.net", "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// seedRemote creates a bare remote in dir and pushes the example to it
// from a clone, as a person would set it up.
func seedRemote(ctx context.Context, dir string, fleet *demoFleet) (demoRepo, error) {
	r := demoRepo{home: dir, remote: filepath.Join(dir, "inventory.git"), work: filepath.Join(dir, "work")}
	if err := os.MkdirAll(r.work, 0o755); err != nil {
		return r, fmt.Errorf("demo clone: %w", err)
	}
	if _, err := r.git(ctx, dir, "init", "-q", "--bare", "-b", "main", r.remote); err != nil {
		return r, err
	}
	if _, err := r.git(ctx, dir, "clone", "-q", r.remote, r.work); err != nil {
		return r, err
	}
	if err := writeDemoInventory(r.work, fleet); err != nil {
		return r, err
	}
	for _, args := range [][]string{{"checkout", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "Add the dc1 inventory"}, {"push", "-q", "origin", "main"}} {
		if _, err := r.git(ctx, r.work, args...); err != nil {
			return r, err
		}
	}
	return r, nil
}

// demoDaemon is the daemon, as `metalsync serve` runs it, in the demo's
// process.
type demoDaemon struct {
	s      served
	passes <-chan reconcile.Observed // the state the latest pass left, once printed; buffered 1
	last   reconcile.Observed        // the state for which waitPasses's cond last held
	cancel context.CancelFunc
	errc   <-chan error // serve's result
	err    error        // serve's result once stopped
	done   bool
}

// startDemoDaemon starts serve on the remote and returns once it listens.
func startDemoDaemon(ctx context.Context, remote string, fleet *demoFleet, env *Env) (*demoDaemon, error) {
	sa := serveArgs{repo: "file://" + remote, branch: "main", listen: "127.0.0.1:0", poll: time.Second,
		statusInterval: time.Second, simulateAgent: true}
	return startDemoDaemonWith(ctx, sa, map[string]string{"DEMO_BMC_USERNAME": fleet.user, "DEMO_BMC_PASSWORD": fleet.pass}, env)
}

// startDemoDaemonWith starts serve with sa, the variables in vars set on
// top of env's, and the demo's progress lines.
func startDemoDaemonWith(ctx context.Context, sa serveArgs, vars map[string]string, env *Env) (*demoDaemon, error) {
	dEnv := *env
	dEnv.Getenv = func(k string) string {
		if v, ok := vars[k]; ok {
			return v
		}
		return env.Getenv(k)
	}
	ready := make(chan struct{}) // the daemon's own line is printed
	hook, passes := passHook(ctx, env, ready)
	sa.onPass = hook
	log := slog.New(slog.NewTextHandler(env.Err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dctx, cancel := context.WithCancel(ctx)
	startedc := make(chan served, 1)
	errc := make(chan error, 1)
	go func() { errc <- serve(dctx, sa, &dEnv, log, func(s served) { startedc <- s }) }()
	dd := &demoDaemon{passes: passes, cancel: cancel, errc: errc}
	select {
	case dd.s = <-startedc:
	case err := <-errc:
		cancel()
		return nil, fmt.Errorf("daemon: %w", err)
	case <-ctx.Done():
		dd.stop()
		return nil, ctx.Err()
	}
	say(env, "   (daemon following %s, serving http://%s: the fleet page at /, /metrics, /healthz, /readyz)", strings.TrimPrefix(sa.repo, "file://"), dd.s.addr)
	close(ready)
	return dd, nil
}

// passHook returns serve's onPass for the demo, which prints each pass's
// progress once ready is closed, and the channel on which the state each
// pass left arrives after its lines were printed (buffered 1, newest).
func passHook(ctx context.Context, env *Env, ready <-chan struct{}) (func(apply.Report, reconcile.Observed), <-chan reconcile.Observed) {
	passes := make(chan reconcile.Observed, 1)
	return func(rep apply.Report, obs reconcile.Observed) {
		// A pass may end before serve has said it listens: keep its
		// lines after the daemon's.
		select {
		case <-ready:
		case <-ctx.Done():
			return
		}
		showProgress(env, rep)
		// Only this hook sends, from the daemon's one pass goroutine:
		// after the drain the send cannot block.
		select {
		case <-passes:
		default:
		}
		passes <- obs
	}, passes
}

// showProgress prints what a pass did to each node it was not busy with.
func showProgress(env *Env, rep apply.Report) {
	for _, r := range rep.Nodes {
		if r.Outcome == apply.Busy {
			continue
		}
		line := fmt.Sprintf("   %-8s %s → %s: %s (%s)", r.Node, r.From, r.Reached, r.Outcome, r.Duration.Round(10*time.Millisecond))
		if r.Err != nil {
			line += ": " + apply.Sanitize(r.Err)
		}
		say(env, "%s", line)
	}
}

// waitPasses waits until cond holds for the state a pass left. Only
// passes change the observed state, and each pass's progress lines are
// printed before its state is seen here, so a header printed once cond
// holds comes after the lines of every pass it sums up.
func (dd *demoDaemon) waitPasses(ctx context.Context, timeout time.Duration, cond func(reconcile.Observed) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case obs := <-dd.passes:
			if cond(obs) {
				dd.last = obs
				return nil
			}
		}
	}
}

func (dd *demoDaemon) waitFirstCommit(ctx context.Context, timeout time.Duration, env *Env, inv *schema.Inventory) error {
	err := dd.waitPasses(ctx, timeout, func(obs reconcile.Observed) bool { return converged(inv, obs) })
	if err != nil {
		printStatus(env, inv, dd.s.daemon.Observed())
		return fmt.Errorf("the fleet did not converge: %w", err)
	}
	say(env, "\n== Status after the first commit\n")
	printStatus(env, inv, dd.last)
	return nil
}

// pushBobsChange has a person retire a node and roll a new image to
// another; it returns the new image's URL.
func pushBobsChange(ctx context.Context, repo demoRepo, fleet *demoFleet) (string, error) {
	newImage := fleet.artifacts + "/images/ubuntu-24.04.1-server.raw"
	if err := editFile(filepath.Join(repo.work, "nodes/rack1/r1-n04.yaml"), func(s string) string {
		// Undeploy it and park it: cleaned, manageable, powered off.
		s = strings.Replace(s, "  bootMode: uefi", "  retired:\n    reason: end of lease; hardware refresh HR-2027\n  bootMode: uefi", 1)
		s = strings.Replace(s, "    state: active\n", "    state: manageable\n", 1)
		return regexp.MustCompile(`(?m)^    (image:|  url:|  checksum:|deployTemplates:).*\n`).ReplaceAllLiteralString(s, "")
	}); err != nil {
		return "", err
	}
	if err := editFile(filepath.Join(repo.work, "nodes/rack1/r1-n02.yaml"), func(s string) string {
		s = strings.Replace(s, fleet.artifacts+"/images/ubuntu-24.04-server.raw", newImage, 1)
		return regexp.MustCompile(`checksum: sha256:[0-9a-f]{64}`).ReplaceAllString(s, "checksum: sha256:"+strings.Repeat("5e", 32))
	}); err != nil {
		return "", err
	}
	if _, err := repo.git(ctx, repo.work, "commit", "-q", "-am", "Retire r1-n04, roll Ubuntu 24.04.1 to r1-n02", "--author", "Bob <bob@example.net>"); err != nil {
		return "", err
	}
	// Bob's push may race a status commit of the daemon: rebase and retry,
	// as a person would.
	for attempt := 1; ; attempt++ {
		if _, err := repo.git(ctx, repo.work, "pull", "-q", "--rebase", "origin", "main"); err != nil {
			return "", err
		}
		_, err := repo.git(ctx, repo.work, "push", "-q", "origin", "main")
		if err == nil {
			return newImage, nil
		}
		if attempt == 10 {
			return "", err
		}
	}
}

func (dd *demoDaemon) waitBobsChange(ctx context.Context, timeout time.Duration, env *Env, newImage string) error {
	err := dd.waitPasses(ctx, timeout, func(obs reconcile.Observed) bool {
		st2, st4 := obs["r1-n02"], obs["r1-n04"]
		return st2.Deployed != nil && st2.Deployed.Image == newImage && st2.ProvisionState == "active" && st2.Operation == nil &&
			st4.ProvisionState == "manageable" && st4.Power == "off" && st4.Operation == nil
	})
	_, inv := dd.s.daemon.Revision()
	if err != nil {
		printStatus(env, inv, dd.s.daemon.Observed())
		return fmt.Errorf("the daemon did not act on the change: %w", err)
	}
	say(env, "\n== Status after Bob's change\n")
	printStatus(env, inv, dd.last)
	return nil
}

// showHistory prints a node's history as the fleet page shows it, read
// through the daemon's listener from the commits it holds: who changed
// what, when.
func (dd *demoDaemon) showHistory(ctx context.Context, env *Env, node string) error {
	base := "http://" + dd.s.addr.String()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/nodes/"+node+"/history", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("history of %s from the fleet page: %w", node, err)
	}
	defer resp.Body.Close()
	var res githistory.Result
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("history of %s from the fleet page: %s", node, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return fmt.Errorf("history of %s from the fleet page: %w", node, err)
	}
	say(env, "\n== History of %s on the fleet page (%s/nodes/%s), newest first\n", node, base, node)
	// Runs of the daemon's own status commits fold into one line each;
	// people's changes are shown field by field.
	var run []githistory.Change
	flush := func() {
		if len(run) > 0 {
			say(env, "%s..%s %d status commits by %s <%s>, the newest: %s", shortCommit(run[len(run)-1].Commit), shortCommit(run[0].Commit), len(run), run[0].Author, run[0].Email, run[0].Subject)
			run = nil
		}
	}
	for _, c := range res.Changes {
		if isStatusCommit(c) {
			run = append(run, c)
			continue
		}
		flush()
		say(env, "%s %s <%s>: %s", shortCommit(c.Commit), c.Author, c.Email, c.Subject)
		for _, f := range c.Files {
			if f.Created || f.Deleted {
				say(env, "    %s %s", f.Path, map[bool]string{true: "created", false: "deleted"}[f.Created])
			}
			for _, fd := range f.Fields {
				say(env, "    %s: %s → %s", fd.Path, orDash(clipText(fd.Old, 60)), orDash(clipText(fd.New, 60)))
			}
		}
	}
	flush()
	return nil
}

// isStatusCommit: the commit touched only the status file.
func isStatusCommit(c githistory.Change) bool {
	for _, f := range c.Files {
		if !strings.HasPrefix(f.Path, schema.DefaultStatusDir+"/") {
			return false
		}
	}
	return true
}

func clipText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// finish commits the statuses written so far, then stops the daemon
// (which commits any written while it stops).
func (dd *demoDaemon) finish(ctx context.Context) error {
	if _, err := dd.s.writer.Flush(ctx); err != nil {
		return fmt.Errorf("commit the last statuses: %w", err)
	}
	if err := dd.stop(); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	return nil
}

// stop stops the daemon and waits for it; later calls return the same
// result.
func (dd *demoDaemon) stop() error {
	if !dd.done {
		dd.cancel()
		dd.err = <-dd.errc
		dd.done = true
	}
	return dd.err
}

// startFleet starts a simulated BMC for every node: Redfish systems on
// 127.0.0.1 (IPv4 racks) and [::1] (IPv6 racks), and an IPMI BMC on UDP per
// IPMI node.
func startFleet(inv *schema.Inventory) (*demoFleet, error) {
	f := &demoFleet{user: "metalsync", addrs: map[string]string{}}
	b := make([]byte, 12)
	rand.Read(b)
	f.pass = hex.EncodeToString(b)
	if err := f.startArtifacts(); err != nil {
		return nil, err
	}
	var v4, v6 []string
	for _, n := range inv.Nodes {
		addr, err := schema.ParseBMCAddress(n.Spec.BMC.Address)
		if err != nil {
			f.close()
			return nil, err
		}
		switch {
		case addr.Driver == "fake":
			// The fake driver needs no BMC.
		case addr.Driver == "ipmi":
			if err := f.startIPMI(n.Name()); err != nil {
				f.close()
				return nil, err
			}
		case strings.Contains(addr.Endpoint.Host, "["):
			v6 = append(v6, n.Name())
		default:
			v4 = append(v4, n.Name())
		}
	}
	for _, group := range []struct {
		host  string
		nodes []string
	}{{"127.0.0.1", v4}, {"::1", v6}} {
		if err := f.startRedfish(inv, group.host, group.nodes); err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

// startArtifacts starts the local stand-in for the site's image and
// firmware servers.
func (f *demoFleet) startArtifacts() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("artifact server: %w", err)
	}
	blob := bytes.Repeat([]byte("metalsync demo artifact\n"), 1<<16) // 1.5 MiB
	art := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, path.Base(r.URL.Path), time.Unix(0, 0), bytes.NewReader(blob))
	})}
	go art.Serve(ln)
	f.closers = append(f.closers, func() { art.Close() })
	f.artifacts = "http://" + ln.Addr().String()
	return nil
}

// startIPMI starts an IPMI BMC on UDP for node.
func (f *demoFleet) startIPMI(node string) error {
	bmc, err := ipmisim.Start(ipmisim.Config{Username: f.user, Password: f.pass})
	if err != nil {
		return err
	}
	f.closers = append(f.closers, func() { bmc.Close() })
	f.addrs[node] = "ipmi://" + bmc.Addr().String()
	return nil
}

// startRedfish starts one Redfish simulator for nodes with a listener per
// system on host, as a rack of BMCs has one address each.
func (f *demoFleet) startRedfish(inv *schema.Inventory, host string, nodes []string) error {
	if len(nodes) == 0 {
		return nil
	}
	var systems []redfishsim.SystemConfig
	for _, name := range nodes {
		systems = append(systems, redfishsim.SystemConfig{ID: name, PowerOnDelay: 300 * time.Millisecond, PowerOffDelay: 300 * time.Millisecond,
			MACs: phyMACs(inv.Node(name))})
	}
	sim, err := redfishsim.New(redfishsim.Config{Systems: systems, Username: f.user, Password: f.pass, Profile: redfishsim.ProfileZero})
	if err != nil {
		return err
	}
	bmcs, err := sim.StartBMCs(redfishsim.BMCOptions{Host: host})
	if err != nil && host == "::1" {
		bmcs, err = sim.StartBMCs(redfishsim.BMCOptions{}) // no IPv6 on this host
	}
	if err != nil {
		sim.Close()
		return err
	}
	f.closers = append(f.closers, func() { bmcs.Close(); sim.Close() })
	for _, name := range nodes {
		f.addrs[name] = bmcs.Listener(name).BMCURL(name)
	}
	return nil
}

var (
	addressLine = regexp.MustCompile(`(?m)^    address: .*$`)
	credRef     = regexp.MustCompile(`(?m)^    credentialsRef: .*\n`)
	siteCreds   = regexp.MustCompile(`(?m)^  credentials:\n(    .*\n)+`)
	siteNets    = regexp.MustCompile(`(?m)^  bmcNetworks:\n(    .*\n)+`)
	tlsBlock    = regexp.MustCompile(`(?m)^    tls:\n(      .*\n)+`)
	ipmiBlock   = regexp.MustCompile(`(?m)^    ipmi:\n(      .*\n)+`)
	// agentBlock is the site's deploy agent with the comment above it:
	// the demo runs in-band steps with the simulated agent, and the
	// example's agent ISO is not on the demo's machine.
	agentBlock = regexp.MustCompile(`(?m)(^  #.*\n)*^  agent:\n(    .*\n)+`)
	// The same keys in one-line flow form.
	tlsLine       = regexp.MustCompile(`(?m)^    tls: .*\n`)
	ipmiLine      = regexp.MustCompile(`(?m)^    ipmi: .*\n`)
	siteCredsLine = regexp.MustCompile(`(?m)^  credentials: .*\n`)
	siteNetsLine  = regexp.MustCompile(`(?m)^  bmcNetworks: .*\n`)
	agentLine     = regexp.MustCompile(`(?m)^  agent: .*\n`)
	baseURLsLine  = regexp.MustCompile(`(?m)^    baseURLs: .*\n`)
	baseURLsBlock = regexp.MustCompile(`(?m)^    baseURLs:\n(      .*\n)+`)
	specLine      = regexp.MustCompile(`(?m)^spec:[ \t]*\n`)
)

const (
	demoSiteCredentials = `  credentials:
    sets:
      demo:
        env: {username: DEMO_BMC_USERNAME, password: DEMO_BMC_PASSWORD}
`
	demoSiteNetworks = `  bmcNetworks:
    - cidr: 127.0.0.0/8
      allowPlainHTTP: true
    - cidr: "::1/128"
      allowPlainHTTP: true
`
)

// writeDemoInventory writes the example into dir with each node's BMC
// pointed at its simulator and credentials taken from the demo's
// environment.
func writeDemoInventory(dir string, f *demoFleet) error {
	inv, diags := schema.Load(inventoryexample.FS)
	if diags.HasErrors() {
		return fmt.Errorf("embedded example is invalid:\n%s", diags)
	}
	// Images and firmware come from the local artifact server.
	urls := strings.NewReplacer("https://images.example.net", f.artifacts+"/images", "https://firmware.example.net", f.artifacts+"/firmware")
	return writeSimInventory(inventoryexample.FS, inv, dir, f, urls.Replace)
}

// writeSimInventory writes the inventory in src (loaded as inv) into dir
// for the simulated fleet f: each node's BMC address pointed at its
// simulator with the site's one credential set (DEMO_BMC_USERNAME and
// DEMO_BMC_PASSWORD) and no TLS or IPMI block, the site's BMC networks the
// simulators' loopback, no media base URLs (the daemon's own listener
// serves media) and no agent block (the simulated agent runs in-band
// steps). rewrite changes the text of every file, for artifact URLs.
// Status files and .git are not copied.
func writeSimInventory(src fs.FS, inv *schema.Inventory, dir string, f *demoFleet, rewrite func(string) string) error {
	nodeOf := map[string]string{} // file -> node
	for _, n := range inv.Nodes {
		nodeOf[n.Source.File] = n.Name()
	}
	statusDir := "status"
	if inv.Site != nil && inv.Site.Spec.Status.Directory != "" {
		statusDir = path.Clean(inv.Site.Spec.Status.Directory)
	}
	return fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == ".git" || p == statusDir {
				return fs.SkipDir
			}
			return nil
		}
		b, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		s := string(b)
		if name, ok := nodeOf[p]; ok {
			// Every node, fake:// ones too, names the one set there is.
			s = credRef.ReplaceAllLiteralString(s, "    credentialsRef: {set: demo}\n")
			if addr, ok := f.addrs[name]; ok {
				if !addressLine.MatchString(s) {
					return fmt.Errorf("sim inventory: %s: no \"    address:\" line under bmc to point at the simulator", p)
				}
				s = addressLine.ReplaceAllLiteralString(s, "    address: "+addr)
				s = tlsBlock.ReplaceAllLiteralString(s, "")
				s = tlsLine.ReplaceAllLiteralString(s, "")
				s = ipmiBlock.ReplaceAllLiteralString(s, "")
				s = ipmiLine.ReplaceAllLiteralString(s, "")
			}
		}
		s = rewrite(s)
		if p == schema.SiteFile {
			s = baseURLsLine.ReplaceAllLiteralString(s, "")
			s = baseURLsBlock.ReplaceAllLiteralString(s, "")
			var err error
			if s, err = replaceSiteBlock(s, siteCreds, siteCredsLine, demoSiteCredentials); err != nil {
				return err
			}
			if s, err = replaceSiteBlock(s, siteNets, siteNetsLine, demoSiteNetworks); err != nil {
				return err
			}
			s = agentBlock.ReplaceAllLiteralString(s, "")
			s = agentLine.ReplaceAllLiteralString(s, "")
		}
		out := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(s), 0o644)
	})
}

// replaceSiteBlock replaces the site's block (or one-line flow form) with
// repl, or adds repl at the top of spec when the site has neither.
func replaceSiteBlock(s string, block, line *regexp.Regexp, repl string) (string, error) {
	switch {
	case block.MatchString(s):
		return block.ReplaceAllLiteralString(s, repl), nil
	case line.MatchString(s):
		return line.ReplaceAllLiteralString(s, repl), nil
	}
	loc := specLine.FindStringIndex(s)
	if loc == nil {
		return "", fmt.Errorf("sim inventory: %s has no \"spec:\" line", schema.SiteFile)
	}
	return s[:loc[1]] + repl + s[loc[1]:], nil
}

func editFile(p string, fn func(string) string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return os.WriteFile(p, []byte(fn(string(b))), 0o644)
}

// converged reports whether every node that metalsync may act on has
// reached its desired provision state with nothing in flight.
func converged(inv *schema.Inventory, obs reconcile.Observed) bool {
	for _, n := range inv.Nodes {
		if n.Spec.Quarantine != nil {
			continue
		}
		st, ok := obs[n.Name()]
		if !ok || st.Operation != nil || st.Fault != nil {
			return false
		}
		if st.ProvisionState != n.Spec.Provision.State {
			return false
		}
	}
	return true
}

func printStatus(env *Env, inv *schema.Inventory, obs reconcile.Observed) {
	var b strings.Builder // one write: pass lines may be printed meanwhile
	defer func() { io.WriteString(env.Out, b.String()) }()
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tPOWER\tIMAGE\tNOTE")
	for _, n := range inv.Nodes {
		st := obs[n.Name()]
		img := ""
		if st.Deployed != nil {
			img = path.Base(st.Deployed.Image)
			if st.Deployed.Simulated {
				img += " (simulated agent)"
			}
		}
		note := ""
		switch {
		case n.Spec.Quarantine != nil:
			note = "quarantined: " + n.Spec.Quarantine.Reason
		case st.Fault != nil:
			note = "fault: " + st.Fault.Reason
		case st.Retired != "":
			note = "retired: " + st.Retired
		case n.Spec.Protected != nil:
			note = "protected"
		case st.LastError != "":
			note = "error: " + st.LastError
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name(), orDash(st.ProvisionState), orDash(st.Power), orDash(img), note)
	}
	tw.Flush()
}

// phyMACs are the node's NIC MACs, so that inspection finds the hardware
// its network configuration names.
func phyMACs(n *schema.Node) []string {
	var macs []string
	if n != nil && n.Spec.Network != nil {
		for _, l := range n.Spec.Network.Links {
			if l.Type == schema.LinkPhy {
				macs = append(macs, l.MAC)
			}
		}
	}
	return macs
}
