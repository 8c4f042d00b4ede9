package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"text/tabwriter"
	"time"

	inventoryexample "metalsync.dev/metalsync/inventory-example"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/sim/agentsim"
	"metalsync.dev/metalsync/sim/ipmisim"
	"metalsync.dev/metalsync/sim/redfishsim"
)

type demoArgs struct {
	keep    bool
	timeout time.Duration
	dir     string
}

func parseDemo(args []string, env *Env) (demoArgs, int) {
	fs := newFlags("demo", env)
	a := demoArgs{}
	fs.BoolVar(&a.keep, "keep", false, "keep the demo's repositories for exploring")
	fs.DurationVar(&a.timeout, "timeout", 3*time.Minute, "give up when the fleet has not converged by then")
	fs.StringVar(&a.dir, "dir", "", "work directory (default: a new temporary directory)")
	fs.Usage = func() {
		fmt.Fprintln(env.Err, "usage: metalsync demo [--keep]\n\nRuns the whole loop on the embedded example inventory with simulated BMCs:\na bare Git remote seeded from the example, the daemon following it, a\nchange pushed by a person, and the status commits the daemon wrote.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Err, "metalsync demo: unexpected argument %q\n", fs.Arg(0))
		return a, exitUsage
	}
	return a, -1
}

func runDemo(ctx context.Context, args []string, env *Env) int {
	a, code := parseDemo(args, env)
	if code >= 0 {
		return code
	}
	if err := demo(ctx, a, env); err != nil {
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
	fmt.Fprintf(env.Out, format+"\n", args...)
}

func demo(ctx context.Context, a demoArgs, env *Env) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout+time.Minute)
	defer cancel()
	if _, err := exec.LookPath("git"); err != nil {
		return fmt.Errorf("the demo drives a real Git remote and needs the git command: %w", err)
	}
	dir := a.dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "metalsync-demo-"); err != nil {
			return err
		}
	}
	if !a.keep {
		defer os.RemoveAll(dir)
	}

	inv, diags := schema.Load(inventoryexample.FS)
	if diags.HasErrors() {
		return fmt.Errorf("embedded example is invalid:\n%s", diags)
	}
	fleet, err := startFleet(inv)
	if err != nil {
		return err
	}
	defer fleet.close()
	say(env, "== Simulated fleet: %d nodes", len(inv.Nodes))
	for _, n := range inv.Nodes {
		say(env, "   %-8s %-45s (was %s)", n.Name(), fleet.addrs[n.Name()], n.Spec.BMC.Address)
	}

	// A bare remote seeded from the example, as a person would set it up.
	remote := filepath.Join(dir, "inventory.git")
	work := filepath.Join(dir, "work")
	git := func(dir string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.net",
			"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.net", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if _, err := git(dir, "init", "-q", "--bare", "-b", "main", remote); err != nil {
		return err
	}
	if _, err := git(dir, "clone", "-q", remote, work); err != nil {
		return err
	}
	if err := writeDemoInventory(work, fleet); err != nil {
		return err
	}
	for _, args := range [][]string{{"checkout", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "Add the dc1 inventory"}, {"push", "-q", "origin", "main"}} {
		if _, err := git(work, args...); err != nil {
			return err
		}
	}
	say(env, "\n== Git remote %s seeded from inventory-example/", remote)

	// The daemon, as `metalsync serve` runs it.
	dEnv := *env
	dEnv.Getenv = func(k string) string {
		switch k {
		case "DEMO_BMC_USERNAME":
			return fleet.user
		case "DEMO_BMC_PASSWORD":
			return fleet.pass
		}
		return env.Getenv(k)
	}
	// The plan the daemon starts from, shown before it acts.
	p := reconcile.Plan(inv, reconcile.Observed{}, (&apply.Executor{Registry: defaultRegistry(), AgentFor: func(string) apply.Agent { return &agentsim.Agent{} }}).Capabilities(), time.Now())
	say(env, "\n== Plan of the first commit\n")
	var pb bytes.Buffer
	writeTextPlan(&pb, p)
	io.Copy(env.Out, &pb)

	log := slog.New(slog.NewTextHandler(env.Err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sa := serveArgs{repo: "file://" + remote, branch: "main", listen: "127.0.0.1:0", poll: time.Second,
		statusInterval: time.Second, simulateAgent: true,
		onPass: func(rep apply.Report) {
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
		}}
	say(env, "\n== Progress")
	startedc := make(chan served, 1)
	dctx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	errc := make(chan error, 1)
	go func() { errc <- serve(dctx, sa, &dEnv, log, func(s served) { startedc <- s }) }()
	var s served
	select {
	case s = <-startedc:
	case err := <-errc:
		return fmt.Errorf("daemon: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	say(env, "   (daemon following %s, serving http://%s: /metrics, /healthz, /readyz)", remote, s.addr)
	desired := func(inv *schema.Inventory) func() bool {
		return func() bool { return converged(inv, s.daemon.Observed()) }
	}
	if err := waitUntil(ctx, a.timeout, desired(inv)); err != nil {
		printStatus(env, inv, s.daemon.Observed())
		return fmt.Errorf("the fleet did not converge: %w", err)
	}
	say(env, "\n== Status after the first commit\n")
	printStatus(env, inv, s.daemon.Observed())

	// A person retires a node and rolls a new image to another.
	say(env, "\n== Bob pushes a change: retire r1-n04 (undeploy, park powered off), new image for r1-n02")
	newImage := fleet.artifacts + "/images/ubuntu-24.04.1-server.raw"
	if err := editFile(filepath.Join(work, "nodes/rack1/r1-n04.yaml"), func(s string) string {
		// Undeploy it and park it: cleaned, manageable, powered off.
		s = strings.Replace(s, "  bootMode: uefi", "  retired:\n    reason: end of lease; hardware refresh HR-2027\n  bootMode: uefi", 1)
		s = strings.Replace(s, "    state: active\n", "    state: manageable\n", 1)
		return regexp.MustCompile(`(?m)^    (image:|  url:|  checksum:|deployTemplates:).*\n`).ReplaceAllLiteralString(s, "")
	}); err != nil {
		return err
	}
	if err := editFile(filepath.Join(work, "nodes/rack1/r1-n02.yaml"), func(s string) string {
		s = strings.Replace(s, fleet.artifacts+"/images/ubuntu-24.04-server.raw", newImage, 1)
		return regexp.MustCompile(`checksum: sha256:[0-9a-f]{64}`).ReplaceAllString(s, "checksum: sha256:"+strings.Repeat("5e", 32))
	}); err != nil {
		return err
	}
	if _, err := git(work, "commit", "-q", "-am", "Retire r1-n04, roll Ubuntu 24.04.1 to r1-n02", "--author", "Bob <bob@example.net>"); err != nil {
		return err
	}
	// Bob's push may race a status commit of the daemon: rebase and retry,
	// as a person would.
	for attempt := 1; ; attempt++ {
		if _, err := git(work, "pull", "-q", "--rebase", "origin", "main"); err != nil {
			return err
		}
		_, err := git(work, "push", "-q", "origin", "main")
		if err == nil {
			break
		}
		if attempt == 10 {
			return err
		}
	}
	if err := waitUntil(ctx, a.timeout, func() bool {
		obs := s.daemon.Observed()
		st2, st4 := obs["r1-n02"], obs["r1-n04"]
		return st2.Deployed != nil && st2.Deployed.Image == newImage && st2.ProvisionState == "active" && st2.Operation == nil &&
			st4.ProvisionState == "manageable" && st4.Power == "off" && st4.Operation == nil
	}); err != nil {
		_, inv2 := s.daemon.Revision()
		printStatus(env, inv2, s.daemon.Observed())
		return fmt.Errorf("the daemon did not act on the change: %w", err)
	}
	_, inv2 := s.daemon.Revision()
	say(env, "\n== Status after Bob's change\n")
	printStatus(env, inv2, s.daemon.Observed())

	// Let the last statuses be committed, then stop the daemon.
	time.Sleep(1500 * time.Millisecond)
	stopDaemon()
	if err := <-errc; err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	out, err := git(remote, "log", "--stat", "--format=%n%h %an <%ae> %ar%n    %s", "main")
	if err != nil {
		return err
	}
	say(env, "\n== git log --stat of the remote (status commits by metalsync, specs by people)\n%s", out)
	if a.keep {
		say(env, "== Kept: remote %s, clone %s", remote, work)
	}
	return nil
}

// startFleet starts a simulated BMC for every node: Redfish systems on
// 127.0.0.1 (IPv4 racks) and [::1] (IPv6 racks), and an IPMI BMC on UDP per
// IPMI node.
func startFleet(inv *schema.Inventory) (*demoFleet, error) {
	f := &demoFleet{user: "metalsync", addrs: map[string]string{}}
	b := make([]byte, 12)
	rand.Read(b)
	f.pass = hex.EncodeToString(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	blob := bytes.Repeat([]byte("metalsync demo artifact\n"), 1<<16) // 1.5 MiB
	art := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, path.Base(r.URL.Path), time.Unix(0, 0), bytes.NewReader(blob))
	})}
	go art.Serve(ln)
	f.closers = append(f.closers, func() { art.Close() })
	f.artifacts = "http://" + ln.Addr().String()
	var v4, v6 []string
	for _, n := range inv.Nodes {
		addr, err := schema.ParseBMCAddress(n.Spec.BMC.Address)
		if err != nil {
			return nil, err
		}
		switch {
		case addr.Driver == "ipmi":
			bmc, err := ipmisim.Start(ipmisim.Config{Username: f.user, Password: f.pass})
			if err != nil {
				f.close()
				return nil, err
			}
			f.closers = append(f.closers, func() { bmc.Close() })
			f.addrs[n.Name()] = "ipmi://" + bmc.Addr().String()
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
		if len(group.nodes) == 0 {
			continue
		}
		var systems []redfishsim.SystemConfig
		for _, name := range group.nodes {
			systems = append(systems, redfishsim.SystemConfig{ID: name, PowerOnDelay: 300 * time.Millisecond, PowerOffDelay: 300 * time.Millisecond,
				MACs: phyMACs(inv.Node(name))})
		}
		sim, err := redfishsim.New(redfishsim.Config{Systems: systems, Username: f.user, Password: f.pass, Profile: redfishsim.ProfileZero})
		if err != nil {
			f.close()
			return nil, err
		}
		// One listener per system, as a rack of BMCs has one address each.
		bmcs, err := sim.StartBMCs(redfishsim.BMCOptions{Host: group.host})
		if err != nil && group.host == "::1" {
			bmcs, err = sim.StartBMCs(redfishsim.BMCOptions{}) // no IPv6 on this host
		}
		if err != nil {
			sim.Close()
			f.close()
			return nil, err
		}
		f.closers = append(f.closers, func() { bmcs.Close(); sim.Close() })
		for _, name := range group.nodes {
			f.addrs[name] = bmcs.Listener(name).BMCURL(name)
		}
	}
	return f, nil
}

var (
	addressLine = regexp.MustCompile(`(?m)^    address: .*$`)
	credBlock   = regexp.MustCompile(`(?m)^    credentialsRef:\n(      .*\n)+`)
	tlsBlock    = regexp.MustCompile(`(?m)^    tls:\n(      .*\n)+`)
	ipmiBlock   = regexp.MustCompile(`(?m)^    ipmi:\n(      .*\n)+`)
)

// writeDemoInventory writes the example into dir with each node's BMC
// pointed at its simulator and credentials taken from the demo's
// environment.
func writeDemoInventory(dir string, f *demoFleet) error {
	return fs.WalkDir(inventoryexample.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(inventoryexample.FS, p)
		if err != nil {
			return err
		}
		s := string(b)
		if strings.HasPrefix(p, schema.NodesDir+"/") {
			name := strings.TrimSuffix(path.Base(p), ".yaml")
			s = addressLine.ReplaceAllLiteralString(s, "    address: "+f.addrs[name])
			s = credBlock.ReplaceAllLiteralString(s, "    credentialsRef:\n      env: {username: DEMO_BMC_USERNAME, password: DEMO_BMC_PASSWORD}\n")
			s = tlsBlock.ReplaceAllLiteralString(s, "")
			s = ipmiBlock.ReplaceAllLiteralString(s, "")
		}
		// Images and firmware come from the local artifact server.
		s = strings.NewReplacer("https://images.example.net", f.artifacts+"/images", "https://firmware.example.net", f.artifacts+"/firmware").Replace(s)
		if p == schema.SiteFile {
			// The daemon's own listener serves media in the demo.
			s = regexp.MustCompile(`(?m)^    baseURLs: .*\n`).ReplaceAllLiteralString(s, "")
		}
		out := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(s), 0o644)
	})
}

func editFile(p string, fn func(string) string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return os.WriteFile(p, []byte(fn(string(b))), 0o644)
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
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
	tw := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
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
