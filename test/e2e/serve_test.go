// Package e2e runs `metalsync serve` as users run it: the real binary, a
// real `git daemon` remote on loopback driven by the git CLI, and simulated
// Redfish BMCs (in this test process, so their state outlives a killed
// daemon).
package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/sim/redfishsim"
	"metalsync.dev/metalsync/test/inventorygen"
)

const (
	bmcUser = "admin"
	bmcPass = "e2e-Secret-pw-7"
	hookKey = "e2e-webhook-secret"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "metalsync-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "metalsync")
	out, err := exec.Command("go", "build", "-o", binary, "metalsync.dev/metalsync/cmd/metalsync").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build metalsync: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fleet is n simulated Redfish BMCs, one listener each.
type fleet struct {
	sim   *redfishsim.Server
	ids   []string
	addrs map[string]string
}

var phyMAC = regexp.MustCompile(`type: phy, mac: "([^"]+)"`)

func newFleet(t *testing.T, n int, powerDelay time.Duration) *fleet {
	t.Helper()
	var systems []redfishsim.SystemConfig
	var ids []string
	gen := inventorygen.Files(inventorygen.Options{Nodes: n})
	for i := range n {
		id := inventorygen.NodeName(i, 40)
		ids = append(ids, id)
		// The BMC reports the NICs the node's network names.
		var macs []string
		for _, m := range phyMAC.FindAllStringSubmatch(string(gen[fmt.Sprintf("nodes/rack%04d/%s.yaml", i/40, id)]), -1) {
			macs = append(macs, m[1])
		}
		systems = append(systems, redfishsim.SystemConfig{ID: id, PowerOnDelay: powerDelay, PowerOffDelay: powerDelay, MACs: macs})
	}
	sim, err := redfishsim.New(redfishsim.Config{Systems: systems, Username: bmcUser, Password: bmcPass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	bmcs, err := sim.StartBMCs(redfishsim.BMCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bmcs.Close() })
	f := &fleet{sim: sim, ids: ids, addrs: map[string]string{}}
	for _, id := range ids {
		f.addrs[id] = bmcs.Listener(id).BMCURL(id)
	}
	return f
}

var addressLine = regexp.MustCompile(`(?m)^    address: .*$`)

// inventory is a generated inventory whose BMCs are the fleet's, with the
// out-of-band RAID template so that a destructive step runs on the BMC.
func (f *fleet) inventory() map[string]string {
	files := map[string]string{}
	for p, b := range inventorygen.Files(inventorygen.Options{Nodes: len(f.ids)}) {
		s := string(b)
		if strings.HasPrefix(p, "nodes/") {
			name := strings.TrimSuffix(filepath.Base(p), ".yaml")
			s = addressLine.ReplaceAllLiteralString(s, "    address: "+f.addrs[name])
			s = strings.Replace(s, "deployTemplates: [raid1-os]", "deployTemplates: [raid6-data]", 1)
		}
		files[p] = s
	}
	// The person pushing from a clone (gittest's identity) is an admin:
	// serve refuses changes their authors may not make.
	files["owners/platform.yaml"] = "apiVersion: metalsync.dev/v1alpha1\nkind: Owner\nmetadata: {name: platform}\nspec:\n  admin: true\n  members: [{email: platform@example.net}, {email: human@example.com}]\n"
	return files
}

// daemon is one `metalsync serve` process.
type daemon struct {
	cmd    *exec.Cmd
	addr   string
	logs   bytes.Buffer  // written by the log reader until exited is closed
	exited chan struct{} // closed once the process is gone and its log read
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startDaemon(t testing.TB, repo string, port int) *daemon {
	return startDaemonArgs(t, repo, port, "--poll", "300ms")
}

func startDaemonArgs(t testing.TB, repo string, port int, extra ...string) *daemon {
	t.Helper()
	d := &daemon{addr: fmt.Sprintf("127.0.0.1:%d", port), exited: make(chan struct{})}
	args := append([]string{"serve", "--repo", repo, "--listen", d.addr,
		"--status-interval", "300ms", "--simulate-agent", "--webhook-secret-env", "HOOK", "--log-format", "json"}, extra...)
	d.cmd = exec.Command(binary, args...)
	d.cmd.Env = append(os.Environ(), "BMC_USERNAME="+bmcUser, "BMC_PASSWORD="+bmcPass, "HOOK="+hookKey)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		io.Copy(&d.logs, stderr) // until the process exits
		d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs.String())
		}
		if strings.Contains(d.logs.String(), bmcPass) {
			t.Errorf("daemon log contains the BMC password")
		}
	})
	waitFor(t, "the daemon to be ready", func() bool {
		resp, err := http.Get("http://" + d.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return d
}

// kill ends the process with SIGKILL and waits for it.
func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// waitFor polls cond. The deadline only bounds a hung test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// remoteStatus returns the node's status file on the remote's main, or "".
// Status mirrors nodes/: inventorygen's r0001-n07 is in nodes/rack0001/.
func remoteStatus(bare, node string) string {
	rack := "rack" + strings.TrimPrefix(strings.Split(node, "-")[0], "r")
	out, err := gittest.TryGit(bare, "show", "main:status/"+rack+"/"+node+".yaml")
	if err != nil {
		return ""
	}
	return out
}

func wantState(i int) string {
	return []string{"active", "active", "active", "available", "manageable"}[i%5]
}

func converged(f *fleet, bare string) bool {
	for i, id := range f.ids {
		st := remoteStatus(bare, id)
		if !strings.Contains(st, "provisionState: "+wantState(i)+"\n") || strings.Contains(st, "operation:") {
			return false
		}
	}
	return true
}

func metric(t *testing.T, addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return 0
}

func sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(hookKey))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestServeFollowsTheRemote(t *testing.T) {
	f := newFleet(t, 5, 100*time.Millisecond)
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", f.inventory())
	d := startDaemon(t, srv.URL("inv.git"), freePort(t))

	waitFor(t, "every node's status on the remote", func() bool { return converged(f, bare) })
	// Status commits touch status/ only and are the bot's.
	for _, line := range strings.Split(gittest.Git(t, bare, "log", "--format=%an%x09%H", "main"), "\n") {
		name, hash, _ := strings.Cut(line, "\t")
		if name != "metalsync" {
			continue
		}
		for _, p := range strings.Split(gittest.Git(t, bare, "diff-tree", "--no-commit-id", "--name-only", "-r", hash), "\n") {
			if p != "" && !strings.HasPrefix(p, "status/") {
				t.Errorf("status commit %s touches %s", hash[:8], p)
			}
		}
	}

	// A person pushes from a clone: power one node off.
	work := gittest.Clone(t, srv.URL("inv.git"))
	node := f.ids[1]
	p := filepath.Join(work, "nodes/rack0000", node+".yaml")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte(`power: "on"`), []byte(`power: "off"`), 1), 0o644)
	gittest.Git(t, work, "commit", "-qam", "Power "+node+" off")
	human := gittest.Git(t, work, "rev-parse", "HEAD")
	pushWithRebase(t, work)
	waitFor(t, node+" powered off", func() bool {
		st, _ := f.sim.System(node)
		return st.PowerState == "Off"
	})

	// The webhook refuses a bad signature and accepts a good one.
	body := []byte(`{"ref":"refs/heads/main"}`)
	for _, tc := range []struct {
		sig  string
		want int
	}{{"sha256=" + strings.Repeat("0", 64), http.StatusUnauthorized}, {"", http.StatusUnauthorized}, {sign(body), http.StatusAccepted}} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+d.addr+"/webhook", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		if tc.sig != "" {
			req.Header.Set("X-Hub-Signature-256", tc.sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("webhook with signature %q: %d, want %d", tc.sig, resp.StatusCode, tc.want)
		}
	}

	// An invalid commit changes no hardware, and the next valid one is
	// acted on.
	waitFor(t, "status settled", func() bool { return converged(f, bare) })
	gittest.WriteFiles(t, work, map[string]string{"nodes/rack0000/" + f.ids[0] + ".yaml": "kind: [\n"})
	gittest.Git(t, work, "commit", "-qam", "Broken YAML")
	pushWithRebase(t, work)
	waitFor(t, "the invalid commit to be refused", func() bool { return metric(t, d.addr, "metalsync_invalid_commits_total") >= 1 })
	waitFor(t, "the refusal reported in the status directory", func() bool {
		out, err := gittest.TryGit(bare, "show", "main:status/inventory-errors.txt")
		return err == nil && strings.Contains(out, "nodes/rack0000/"+f.ids[0]+".yaml:1:")
	})
	// Put the broken file back as it was: a valid revision that needs no
	// hardware change. The daemon handles revisions one at a time, in
	// order, so once it has loaded this one (it then removes the refusal
	// report) it is done with the invalid one; the fleet has converged, so
	// loading this one makes no BMC request either. No request at all in
	// between, then.
	before := f.sim.TotalCounts()
	gittest.Git(t, work, "checkout", "HEAD~1", "--", "nodes")
	gittest.Git(t, work, "commit", "-qam", "Fix YAML")
	pushWithRebase(t, work)
	waitFor(t, "the refusal report removed", func() bool {
		_, err := gittest.TryGit(bare, "show", "main:status/inventory-errors.txt")
		return err != nil
	})
	if after := f.sim.TotalCounts(); after != before {
		t.Errorf("BMC requests after the invalid commit: %+v, before %+v", after, before)
	}
	p = filepath.Join(work, "nodes/rack0000", f.ids[2]+".yaml")
	b, _ = os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte(`power: "on"`), []byte(`power: "off"`), 1), 0o644)
	gittest.Git(t, work, "commit", "-qam", "Power "+f.ids[2]+" off")
	pushWithRebase(t, work)
	waitFor(t, f.ids[2]+" powered off", func() bool {
		st, _ := f.sim.System(f.ids[2])
		return st.PowerState == "Off"
	})
	if _, err := gittest.TryGit(bare, "merge-base", "--is-ancestor", human, "main"); err != nil {
		t.Errorf("the human commit %s is not in main's history", human[:8])
	}
}

// pushWithRebase pushes like a person whose push races the daemon's status
// commits.
func pushWithRebase(t testing.TB, work string) {
	t.Helper()
	for range 20 {
		if _, err := gittest.TryGit(work, "push", "-q", "origin", "main"); err == nil {
			return
		}
		gittest.Git(t, work, "pull", "-q", "--rebase", "origin", "main")
	}
	t.Fatal("could not push after 20 attempts")
}

// TestServeResumesAfterKill kills the daemon with SIGKILL while nodes are
// mid-deploy; a new daemon resumes from the status in Git and no
// destructive BMC step (RAID volume creation) runs twice.
func TestServeResumesAfterKill(t *testing.T) {
	f, srv, bare, port, d := midDeploy(t, 700*time.Millisecond)
	d.kill()
	startDaemon(t, srv.URL("inv.git"), port)
	waitFor(t, "every node's status on the remote", func() bool { return converged(f, bare) })
	checkVolumesCreatedOnce(t, f)
}

// TestServeStopsOnSIGTERM: SIGTERM mid-deploy stops taking new work, lets
// running steps finish, commits their status and exits 0; the status in Git
// is then complete enough for a new daemon to finish the job.
func TestServeStopsOnSIGTERM(t *testing.T) {
	f, srv, bare, port, d := midDeploy(t, 500*time.Millisecond)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(d.logs.String(), "stopping") {
		t.Errorf("no shutdown in the log")
	}
	// What it committed last lets a new daemon finish without repeats.
	startDaemon(t, srv.URL("inv.git"), port)
	waitFor(t, "every node's status on the remote", func() bool { return converged(f, bare) })
	checkVolumesCreatedOnce(t, f)
}

// checkVolumesCreatedOnce: the RAID volume of each deployed node was
// created exactly once, however often the daemon was stopped; RAID
// creation stands for every destructive BMC step.
func checkVolumesCreatedOnce(t *testing.T, f *fleet) {
	t.Helper()
	for i, id := range f.ids {
		creates := 0
		for _, r := range f.sim.RequestsFor(id) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/Volumes") && r.Status < 300 {
				creates++
			}
		}
		want := 0
		if wantState(i) == "active" {
			want = 1
		}
		if creates != want {
			t.Errorf("%s: %d volume creations, want %d", id, creates, want)
		}
	}
}

// midDeploy starts a daemon on a fresh remote and fleet and returns once
// the remote's status shows a deploy in flight.
func midDeploy(t *testing.T, powerDelay time.Duration) (*fleet, *gittest.Server, string, int, *daemon) {
	t.Helper()
	f := newFleet(t, 5, powerDelay)
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", f.inventory())
	port := freePort(t)
	d := startDaemon(t, srv.URL("inv.git"), port)
	waitFor(t, "a deploy in flight in the remote's status", func() bool {
		for _, id := range f.ids {
			if strings.Contains(remoteStatus(bare, id), "kind: deploy") {
				return true
			}
		}
		return false
	})
	return f, srv, bare, port, d
}

// TestServeFleetWithFaults: 50 simulated BMCs, three of which fail every
// request (5xx). The daemon brings the rest to their states, quarantines
// the failing three with an automatic fault, and clears the fault and
// finishes them once their BMCs answer again.
func TestServeFleetWithFaults(t *testing.T) {
	f := newFleet(t, 50, 100*time.Millisecond)
	bad := []string{f.ids[7], f.ids[21], f.ids[42]}
	for _, id := range bad {
		if err := f.sim.SetFaults(id, redfishsim.Faults{ErrorRate: 1}); err != nil {
			t.Fatal(err)
		}
	}
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", f.inventory())
	startDaemon(t, srv.URL("inv.git"), freePort(t))
	waitFor(t, "automatic faults on the failing nodes", func() bool {
		for _, id := range bad {
			if !strings.Contains(remoteStatus(bare, id), "fault:") {
				return false
			}
		}
		return true
	})
	for _, id := range bad {
		if err := f.sim.SetFaults(id, redfishsim.Faults{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the whole fleet at its states, faults cleared", func() bool {
		if !converged(f, bare) {
			return false
		}
		for _, id := range bad {
			if strings.Contains(remoteStatus(bare, id), "fault:") {
				return false
			}
		}
		return true
	})
	checkVolumesCreatedOnce(t, f)
}

// TestApplyRefusedWhileServing: an operator's `apply` in a clone of the
// inventory the daemon follows is refused, naming the daemon as the
// lease holder, and changes no hardware.
func TestApplyRefusedWhileServing(t *testing.T) {
	f := newFleet(t, 2, 50*time.Millisecond)
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", f.inventory())
	startDaemon(t, srv.URL("inv.git"), freePort(t))
	waitFor(t, "every node's status on the remote", func() bool { return converged(f, bare) })

	work := gittest.Clone(t, srv.URL("inv.git"))
	node := f.ids[0]
	p := filepath.Join(work, "nodes/rack0000", node+".yaml")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte(`power: "on"`), []byte(`power: "off"`), 1), 0o644)
	before := len(f.sim.Requests())
	cmd := exec.Command(binary, "apply", "--auto-approve", "--simulate-agent", work)
	cmd.Env = append(os.Environ(), "BMC_USERNAME="+bmcUser, "BMC_PASSWORD="+bmcPass)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("apply while serving: %v; want exit 1\n%s", err, out)
	}
	for _, want := range []string{"the fleet is leased by metalsync serve", "refs/metalsync/lease", "metalsync unlock"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("apply's refusal does not say %q:\n%s", want, out)
		}
	}
	for _, r := range f.sim.Requests()[before:] {
		if r.Method != http.MethodGet {
			t.Errorf("a refused apply sent %s %s", r.Method, r.Path)
		}
	}
	if st, _ := f.sim.System(node); st.PowerState != "On" {
		t.Errorf("%s powered %s by a refused apply", node, st.PowerState)
	}
}
