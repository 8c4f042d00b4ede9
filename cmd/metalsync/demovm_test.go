package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"metalsync.dev/metalsync/test/tools"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"metalsync.dev/metalsync/agentimage"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/sim/qemumachine/qemutest"
)

// The VM tests deploy a real (emulated) machine: QEMU under TCG, the agent
// ISO built from the pinned Debian packages. They run one after another
// (no t.Parallel) and keep console, QMP and agent logs on failure.

func requireVMTools(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("VM test: not with -short")
	}
	for _, tool := range append([]string{"git", "qemu-system-x86_64"}, agentimage.Tools...) {
		qemutest.RequireTool(t, tool)
	}
	prebuildAgentImage(t)
}

var prebuilt struct {
	once sync.Once
	err  error
}

// prebuildAgentImage fills the agent image cache with a binary built
// without the race detector: building the initramfs in a -race test
// binary takes minutes (gzip), in a plain one seconds. The tests' own
// agentimage.Ensure then hits the cache.
func prebuildAgentImage(t testing.TB) {
	t.Helper()
	prebuilt.once.Do(func() {
		bin := filepath.Join(os.TempDir(), fmt.Sprintf("metalsync-vmtest-%d", os.Getpid()))
		defer os.Remove(bin)
		for _, args := range [][]string{{"go", "build", "-o", bin, "."}, {bin, "agent-image", "build"}} {
			out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
			if err != nil {
				prebuilt.err = fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if prebuilt.err != nil {
		t.Fatal(prebuilt.err)
	}
}

// startVM starts v's machine and a daemon deploying it, with their output
// in out; the test's end stops both, printing the logs if it failed.
func startVM(t *testing.T, ctx context.Context, v *vmDemo) (demoRepo, *demoDaemon, *Env, *tools.SyncBuffer) {
	t.Helper()
	t.Cleanup(v.close)
	keepVMLogs(t, v)
	out := &tools.SyncBuffer{}
	env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: out, Err: out}, Getenv: os.Getenv}
	repo, dd, err := v.start(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dd.stop() })
	return repo, dd, env, out
}

// keepVMLogs prints where the logs are and their tails when t failed.
func keepVMLogs(t *testing.T, v *vmDemo) {
	t.Cleanup(func() {
		if !t.Failed() || v.machine == nil {
			return
		}
		qemutest.LogTails(t, v.machine.Dir())
		if b, err := os.ReadFile(v.agentLog()); err == nil {
			t.Logf("agent log %s (tail):\n%s", v.agentLog(), tail(string(b), 40))
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestDemoVM is `metalsync demo --vm`: one machine deployed from a Git
// remote through the agent, RAID-1, image, boot from disk, status
// committed.
func TestDemoVM(t *testing.T) {
	requireVMTools(t)
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := Main([]string{"demo", "--vm", "--keep", "--dir", dir}, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != 0 {
		qemutest.LogTails(t, filepath.Join(dir, "vm"))
		if b, err := os.ReadFile(filepath.Join(dir, "state", "agent-logs", vmNode+".log")); err == nil {
			t.Logf("agent log (tail):\n%s", tail(string(b), 40))
		}
		t.Fatalf("demo --vm exit %d\nstdout:\n%s\nstderr (tail):\n%s", code, out.String(), tail(errb.String(), 60))
	}
	for _, want := range []string{vmImageMarker, "provisionState: active", "raid.apply_configuration", "deploy.write_image"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "simulated: true") {
		t.Errorf("a real deployment is marked simulated:\n%s", out.String())
	}
	// The agent really set up the static network from the media and was
	// reached over it; its token never reached the console or the log.
	console, _ := os.ReadFile(filepath.Join(dir, "vm", "console.log"))
	if !strings.Contains(string(console), "ready node="+vmNode) {
		t.Errorf("the agent never reported ready on the console")
	}
	agentLog, _ := os.ReadFile(filepath.Join(dir, "state", "agent-logs", vmNode+".log"))
	for _, b := range [][]byte{console, agentLog, out.Bytes(), errb.Bytes()} {
		if regexp.MustCompile(`metalsync_agent_token"?\s*[:=]\s*"?[A-Za-z0-9_-]{20,}`).Match(b) {
			t.Errorf("an agent token leaked: %s", b)
		}
	}
}

// TestVMWrongChecksum: an image whose bytes do not match the inventory's
// checksum is never written; the step fails, and the machine never boots
// an image.
func TestVMWrongChecksum(t *testing.T) {
	requireVMTools(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	v := &vmDemo{dir: t.TempDir(), checksum: strings.Repeat("ab", 32)}
	_, dd, _, out := startVM(t, ctx, v)
	err := dd.waitPasses(ctx, 10*time.Minute, func(obs reconcile.Observed) bool {
		st := obs[vmNode]
		return strings.Contains(st.LastError, "checksum")
	})
	if err != nil {
		t.Fatalf("no checksum error in status: %v\n%s", err, tail(out.String(), 40))
	}
	st := dd.s.daemon.Observed()[vmNode]
	if st.ProvisionState == "active" || st.Deployed != nil {
		t.Errorf("node deployed despite the wrong checksum: %+v", st)
	}
	if !strings.Contains(st.LastError, strings.Repeat("ab", 32)) {
		t.Errorf("error does not name the expected checksum: %s", st.LastError)
	}
	if dd.stop() != nil {
		t.Log("daemon stopped with an error")
	}
	for _, line := range v.machine.Console() {
		if strings.Contains(line, vmImageMarker) {
			t.Fatalf("the machine booted an image whose checksum was wrong")
		}
	}
	// Both disks hold no image: erased before, and nothing written since.
	for _, disk := range v.machine.Disks() {
		b := make([]byte, 512)
		f, err := os.Open(disk)
		if err != nil {
			t.Fatal(err)
		}
		f.ReadAt(b, 0)
		f.Close()
		if bytes.Contains(b, []byte(vmImageMarker)) {
			t.Errorf("%s starts with the image", disk)
		}
	}
}

// TestVMDaemonRestartDuringWrite: the daemon stops while the agent writes
// the image and a new one takes over; the write is not repeated and the
// deployment completes.
func TestVMDaemonRestartDuringWrite(t *testing.T) {
	requireVMTools(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	// 160 MiB of random bytes: many seconds to stream and write under
	// TCG, on 256 MiB disks.
	v := &vmDemo{dir: t.TempDir(), imageSize: 160 << 20, diskSize: 256 << 20}
	repo, dd, env, out := startVM(t, ctx, v)
	// The intent is durable before the step starts; the agent says when
	// it writes. Both happen within one pass: watch, do not wait for it.
	running := regexp.MustCompile(`msg="running step".*step=deploy\.write_image`)
	for {
		op := dd.s.daemon.Observed()[vmNode].Operation
		if op != nil && op.Intent != nil && strings.Contains(op.Intent.Step, "write_image") && running.Match(readFile(v.agentLog())) {
			break
		}
		select {
		case <-ctx.Done():
			dd.stop()
			t.Fatalf("write_image never started\n%s", tail(out.String(), 40))
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := dd.stop(); err != nil {
		t.Logf("first daemon stopped: %v", err)
	}
	t.Log("daemon stopped during write_image; starting another")
	dd2, err := v.startDaemon(ctx, repo, env)
	if err != nil {
		t.Fatal(err)
	}
	defer dd2.stop()
	if err := v.waitDeployed(ctx, 10*time.Minute, dd2, env); err != nil {
		t.Fatalf("%v\n%s", err, tail(out.String(), 60))
	}
	if _, err := v.machine.WaitConsole(ctx, vmImageMarker, 0); err != nil {
		t.Fatalf("the deployed image never booted: %v", err)
	}
	if n := len(running.FindAll(readFile(v.agentLog()), -1)); n != 1 {
		t.Errorf("the agent ran write_image %d times, want once", n)
	}
}

// TestVMDHCP: a node on DHCP deploys through the real agent. Its media is
// made per node (it carries the agent's token) with no network in it, and
// the agent takes a DHCPv4 lease from QEMU's own server.
func TestVMDHCP(t *testing.T) {
	requireVMTools(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	v := &vmDemo{dir: t.TempDir(), dhcp: true}
	_, dd, env, out := startVM(t, ctx, v)
	if err := v.waitDeployed(ctx, 10*time.Minute, dd, env); err != nil {
		t.Fatalf("%v\n%s", err, tail(out.String(), 60))
	}
	if _, err := v.machine.WaitConsole(ctx, vmImageMarker, 0); err != nil {
		t.Fatalf("the deployed image never booted: %v", err)
	}
	console := strings.Join(v.machine.Console(), "\n")
	if !regexp.MustCompile(`dhcp lease.*address=10\.0\.2\.15`).MatchString(console) {
		t.Errorf("the agent took no DHCP lease of 10.0.2.15; console:\n%s", tail(console, 40))
	}
	// The node's page on the fleet page shows the agent's log.
	resp, err := http.Get("http://" + dd.s.addr.String() + "/nodes/" + vmNode)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?s)<pre id="agent-log-lines">.*write_image`).Match(page) {
		t.Errorf("the node page lacks the agent's log of write_image:\n%s", tail(string(page), 40))
	}
}

func readFile(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}

// BenchmarkVMDeploy deploys the demo machine and reports the time from
// the daemon's start to the agent's first successful poll ("ready" on the
// console: enrol, inspect, media, boot, network, TLS) and to the node
// being active with its image booted.
func BenchmarkVMDeploy(b *testing.B) {
	requireVMTools(b)
	var ready, active time.Duration
	for range b.N {
		v := &vmDemo{dir: b.TempDir()}
		var out tools.SyncBuffer
		env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: &out, Err: &out}, Getenv: os.Getenv}
		if err := v.prepare(b.Context(), env); err != nil {
			b.Fatal(err)
		}
		repo, err := v.seed(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		readyc := make(chan time.Duration, 1)
		go func() {
			_, err := v.machine.WaitConsole(b.Context(), "ready node="+vmNode, 0)
			if err == nil {
				readyc <- time.Since(start)
			}
			close(readyc)
		}()
		dd, err := v.startDaemon(b.Context(), repo, env)
		if err != nil {
			b.Fatal(err)
		}
		if err := v.waitDeployed(b.Context(), 15*time.Minute, dd, env); err != nil {
			b.Fatal(err)
		}
		if _, err := v.machine.WaitConsole(b.Context(), vmImageMarker, 0); err != nil {
			b.Fatal(err)
		}
		active += time.Since(start)
		ready += <-readyc
		dd.stop()
		v.close()
	}
	b.ReportMetric(ready.Seconds()/float64(b.N), "s-to-agent-ready")
	b.ReportMetric(active.Seconds()/float64(b.N), "s-to-image-booted")
}
