package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"metalsync.dev/metalsync/agentimage"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/sim/qemumachine"
	"metalsync.dev/metalsync/sim/redfishsim"
)

// The VM demo's fixed addresses: QEMU's user network gives the guest
// 10.0.2.0/24, and the guest reaches the host's agent listener (on
// loopback) only through the forward at vmAgentAddr.
const (
	vmNode        = "vm-1"
	vmMAC         = "52:54:00:6d:73:01"
	vmAgentAddr   = "10.0.2.100:8443"
	vmImageMarker = "METALSYNC-IMAGE-BOOTED-FROM-DISK"
	vmDiskSize    = 64 << 20
)

// vmDemo is what `demo --vm` runs on: one QEMU machine behind a simulated
// Redfish BMC, the agent template, the tenant OS image.
type vmDemo struct {
	dir       string
	machine   *qemumachine.Machine
	sim       *redfishsim.Server
	bmcs      *redfishsim.BMCListeners
	user      string
	pass      string
	agentPort int
	iso       string
	image     string // the tenant OS image file
	imageSum  string // sha256 hex
	// imageSize is the tenant image's size (default 1 MiB); past the boot
	// sector it is random, so writing it takes time (tests).
	imageSize int
	// checksum, when set, replaces the image's checksum in the inventory.
	checksum string
	// diskSize is each disk's size (default vmDiskSize).
	diskSize int64
	// dhcp puts the node on DHCP (QEMU's own server) instead of the
	// static network on its media.
	dhcp bool
}

func (v *vmDemo) close() {
	if v.bmcs != nil {
		v.bmcs.Close()
	}
	if v.sim != nil {
		v.sim.Close()
	}
	if v.machine != nil {
		v.machine.Close()
	}
}

// demoVM deploys one emulated machine end to end: the daemon follows a
// Git remote, boots the agent ISO over virtual media, the agent sets up
// the static network from the media, erases, builds RAID-1 over the two
// disks, writes the image, and the machine boots it from disk.
func demoVM(ctx context.Context, a demoArgs, env *Env) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout+time.Minute)
	defer cancel()
	for _, tool := range append([]string{"git", "qemu-system-x86_64"}, agentimage.Tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the VM demo needs %s (make test installs the Debian packages): %w", tool, err)
		}
	}
	dir, cleanup, err := demoDir(a)
	if err != nil {
		return err
	}
	defer cleanup()
	v := &vmDemo{dir: dir}
	defer v.close()
	repo, dd, err := v.start(ctx, env)
	if err != nil {
		return err
	}
	defer dd.stop()
	if err := v.waitDeployed(ctx, a.timeout, dd, env); err != nil {
		return err
	}
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	line, err := v.machine.WaitConsole(wctx, vmImageMarker, 0)
	wcancel()
	if err != nil {
		v.showConsoleTail(env)
		return fmt.Errorf("%s is active but its console never showed %s: %w", vmNode, vmImageMarker, err)
	}
	say(env, "\n== The tenant OS is up; its console says:\n   %s", strings.TrimSpace(v.machine.Console()[line]))
	if err := dd.finish(ctx); err != nil {
		return err
	}
	out, err := repo.git(ctx, repo.remote, "show", "main:status/lab/"+vmNode+".yaml")
	if err != nil {
		return fmt.Errorf("status of %s not committed: %w", vmNode, err)
	}
	say(env, "\n== status/lab/%s.yaml as committed to the remote\n%s", vmNode, out)
	if a.keep {
		say(env, "== Kept: %s (console %s)", dir, v.machine.ConsoleLog())
	}
	return nil
}

// start prepares the machine and the inventory and starts the daemon.
func (v *vmDemo) start(ctx context.Context, env *Env) (demoRepo, *demoDaemon, error) {
	say(env, "== Preparing (cached after the first run)")
	if err := v.prepare(ctx, env); err != nil {
		return demoRepo{}, nil, err
	}
	repo, err := v.seed(ctx)
	if err != nil {
		return repo, nil, err
	}
	say(env, "\n== Git remote %s: node %s, RAID-1 over two disks, static 10.0.2.15/24, image %s", repo.remote, vmNode, filepath.Base(v.image))
	say(env, "\n== Progress (the agent boots under software emulation)")
	dd, err := v.startDaemon(ctx, repo, env)
	return repo, dd, err
}

// serveArgs are the daemon's flags; a restarted daemon gets the same.
func (v *vmDemo) serveArgs(repo demoRepo) serveArgs {
	return serveArgs{repo: "file://" + repo.remote, branch: "main", listen: "127.0.0.1:0", poll: time.Second,
		statusInterval: time.Second, stateDir: filepath.Join(v.dir, "state")}
}

func (v *vmDemo) startDaemon(ctx context.Context, repo demoRepo, env *Env) (*demoDaemon, error) {
	return startDemoDaemonWith(ctx, v.serveArgs(repo), map[string]string{"DEMO_BMC_USERNAME": v.user, "DEMO_BMC_PASSWORD": v.pass}, env)
}

// agentLog is where the daemon keeps the node's agent log.
func (v *vmDemo) agentLog() string { return filepath.Join(v.dir, "state", "agent-logs", vmNode+".log") }

// waitDeployed waits for the node to be active with a real (not
// simulated) deployment.
func (v *vmDemo) waitDeployed(ctx context.Context, timeout time.Duration, dd *demoDaemon, env *Env) error {
	err := dd.waitPasses(ctx, timeout, func(obs reconcile.Observed) bool {
		st := obs[vmNode]
		return st.ProvisionState == "active" && st.Operation == nil && st.Deployed != nil && !st.Deployed.Simulated
	})
	if err != nil {
		_, inv := dd.s.daemon.Revision()
		printStatus(env, inv, dd.s.daemon.Observed())
		v.showConsoleTail(env)
		return fmt.Errorf("%s was not deployed: %w (console: %s, QMP: %s, agent log: %s)", vmNode, err,
			v.machine.ConsoleLog(), v.machine.QMPLog(), v.agentLog())
	}
	return nil
}

// prepare builds (or takes from the cache) the agent template, writes the
// tenant OS image, and starts the machine and its BMC.
func (v *vmDemo) prepare(ctx context.Context, env *Env) error {
	start := time.Now()
	img, err := agentimage.Ensure(ctx, agentimage.Options{})
	if err != nil {
		return fmt.Errorf("agent image (run the VM demo from a metalsync checkout: it builds the agent from source): %w", err)
	}
	v.iso = img.ISO
	say(env, "   agent template %s (%s, %s)", img.ISO, map[bool]string{true: "cached", false: "built"}[img.Cached], time.Since(start).Round(time.Second))
	if err := v.writeImage(); err != nil {
		return err
	}
	if v.agentPort, err = freePort(); err != nil {
		return err
	}
	if v.diskSize <= 0 {
		v.diskSize = vmDiskSize
	}
	vmDir := filepath.Join(v.dir, "vm")
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		return err
	}
	v.machine, err = qemumachine.Start(ctx, qemumachine.Config{Dir: vmDir, MAC: vmMAC,
		Disks:    []qemumachine.Disk{{Size: v.diskSize, Serial: "VMDISK0"}, {Size: v.diskSize, Serial: "VMDISK1"}},
		Forwards: []qemumachine.Forward{{Guest: netip.MustParseAddrPort(vmAgentAddr), HostPort: uint16(v.agentPort)}}})
	if err != nil {
		return fmt.Errorf("start the machine: %w", err)
	}
	b := make([]byte, 12)
	rand.Read(b)
	v.user, v.pass = "metalsync", hex.EncodeToString(b)
	v.sim, err = redfishsim.New(redfishsim.Config{Username: v.user, Password: v.pass, Profile: redfishsim.ProfileZero,
		Systems: []redfishsim.SystemConfig{{ID: vmNode, Machine: v.machine}}})
	if err != nil {
		return err
	}
	v.bmcs, err = v.sim.StartBMCs(redfishsim.BMCOptions{})
	if err != nil {
		return err
	}
	say(env, "   machine: QEMU (TCG), 2 × %d MiB virtio disks, NIC %s, BMC %s", v.diskSize>>20, vmMAC, v.bmcs.Listener(vmNode).BMCURL(vmNode))
	return nil
}

// writeImage writes the tenant OS: a 1 MiB disk whose boot sector prints
// the marker on the serial console, so reaching it proves the machine
// booted the deployed disk.
func (v *vmDemo) writeImage() error {
	boot, err := qemumachine.BootSector(vmImageMarker, qemumachine.Halt)
	if err != nil {
		return err
	}
	// At least 1 MiB: the boot sector, then random bytes.
	disk := make([]byte, max(v.imageSize, 1<<20))
	rand.Read(disk[1<<20:])
	copy(disk, boot)
	v.image = filepath.Join(v.dir, "tenant-os.raw")
	if err := os.WriteFile(v.image, disk, 0o644); err != nil {
		return fmt.Errorf("tenant image: %w", err)
	}
	sum := sha256.Sum256(disk)
	v.imageSum = hex.EncodeToString(sum[:])
	if v.checksum == "" {
		v.checksum = v.imageSum
	}
	return nil
}

// seed writes the one-node inventory and pushes it to a new bare remote.
func (v *vmDemo) seed(ctx context.Context) (demoRepo, error) {
	r := demoRepo{home: v.dir, remote: filepath.Join(v.dir, "inventory.git"), work: filepath.Join(v.dir, "work")}
	if _, err := r.git(ctx, v.dir, "init", "-q", "--bare", "-b", "main", r.remote); err != nil {
		return r, err
	}
	if _, err := r.git(ctx, v.dir, "clone", "-q", r.remote, r.work); err != nil {
		return r, err
	}
	files := map[string]string{
		"metalsync.yaml":                fmt.Sprintf(vmSite, v.iso, vmAgentAddr, v.agentPort),
		"owners/lab.yaml":               vmOwner,
		"templates/raid1-os.yaml":       vmTemplate,
		"nodes/lab/" + vmNode + ".yaml": fmt.Sprintf(vmNodeFile, vmNode, v.bmcs.Listener(vmNode).BMCURL(vmNode), v.image, v.checksum, vmMAC),
	}
	if v.dhcp {
		node := files["nodes/lab/"+vmNode+".yaml"]
		files["nodes/lab/"+vmNode+".yaml"] = node[:strings.Index(node, "  network:\n")] + fmt.Sprintf(vmDHCPNetwork, vmMAC)
	}
	for name, body := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return r, err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return r, err
		}
	}
	for _, args := range [][]string{{"checkout", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "Add the lab machine"}, {"push", "-q", "origin", "main"}} {
		if _, err := r.git(ctx, r.work, args...); err != nil {
			return r, err
		}
	}
	return r, nil
}

func (v *vmDemo) showConsoleTail(env *Env) {
	lines := v.machine.Console()
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	say(env, "\n== Last console lines of %s\n%s", vmNode, strings.Join(lines, "\n"))
}

// freePort finds a loopback port for the agent listener: the machine's
// forward must name it before the daemon listens.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("agent port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("agent port: not a TCP address")
	}
	return addr.Port, nil
}

const vmSite = `apiVersion: metalsync.dev/v1alpha1
kind: Site
metadata:
  name: lab
spec:
  # No DHCP: the agent ISO carries the node's network.
  dhcp: false
  agent:
    image: %s
    # What the node calls; QEMU forwards it to the listener on loopback.
    url: https://%s
    listen: 127.0.0.1:%d
  sync:
    pollInterval: 1s
  # The simulated BMC's credentials come from the demo's environment; it
  # listens on loopback over plain HTTP, which only this network allows.
  credentials:
    sets:
      demo:
        env: {username: DEMO_BMC_USERNAME, password: DEMO_BMC_PASSWORD}
  bmcNetworks:
    - cidr: 127.0.0.0/8
      allowPlainHTTP: true
`

const vmOwner = `apiVersion: metalsync.dev/v1alpha1
kind: Owner
metadata:
  name: lab
spec:
  admin: true
  members:
    - email: alice@example.net
`

const vmTemplate = `apiVersion: metalsync.dev/v1alpha1
kind: DeployTemplate
metadata:
  name: raid1-os
spec:
  description: Software RAID-1 across both disks, built in-band by the deploy agent.
  steps:
    - interface: raid
      step: apply_configuration
      priority: 95
      args:
        raid_config:
          logical_disks:
            - size_gb: MAX
              raid_level: "1"
              controller: software
              is_root_volume: true
    - interface: deploy
      step: erase_devices_metadata
      priority: 98
`

// vmDHCPNetwork replaces vmNodeFile's network for a node on DHCP.
const vmDHCPNetwork = `  network:
    dhcp: true
    links:
      - name: nic0
        type: phy
        mac: "%s"
`

const vmNodeFile = `apiVersion: metalsync.dev/v1alpha1
kind: Node
metadata:
  name: %s
spec:
  bmc:
    address: %s
    credentialsRef: {set: demo}
  owner: lab
  power: on
  provision:
    state: active
    image:
      url: file://%s
      checksum: sha256:%s
    deployTemplates: [raid1-os]
  bootMode: legacy
  network:
    links:
      - name: nic0
        type: phy
        mac: "%s"
        addresses: ["10.0.2.15/24"]
    routes:
      - to: 0.0.0.0/0
        via: 10.0.2.2
    dns:
      servers: [10.0.2.3]
`
