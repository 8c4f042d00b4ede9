package ipmi

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/test/tools"
)

// Credentials of the simulated BMC. The password is distinctive so that a
// leak into an error is found by a substring search.
const (
	simUser     = "metalsync"
	simPassword = "pw-Zq8vK2xR"
)

// simFRU is what FRU device 0 of the simulated BMC holds.
var simFRU = types.FRUPackConfig{
	Board:   &types.FRUPackBoard{Mfg: "Metalsync Boards", Product: "MB-7", Serial: "BRD-0042", PartNumber: "P-7"},
	Product: &types.FRUPackProduct{Manufacturer: "Metalsync Labs", Name: "SIM-1", PartModel: "S1", Version: "A", Serial: "SN-0001"},
}

// sim is one running ipmi_sim.
type sim struct {
	addr  string // host:port
	state string // chassis-control.sh state directory
	conf  string // lan.conf path, for restarts
	emu   string // emulator command file path
	cmd   *exec.Cmd
	out   *tools.SyncBuffer
}

// startSim starts Debian's ipmi_sim on host (127.0.0.1 or ::1) and a free
// UDP port, powered off, and stops it when the test ends.
func startSim(tb testing.TB, host string) *sim {
	tb.Helper()
	bin := tools.Require(tb, "ipmi_sim")
	dir := tb.TempDir()
	s := &sim{
		state: filepath.Join(dir, "machine"),
		conf:  filepath.Join(dir, "lan.conf"),
		emu:   filepath.Join(dir, "bmc.emu"),
	}
	for _, d := range []string{s.state, filepath.Join(dir, "persist")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	script, err := filepath.Abs("testdata/chassis-control.sh")
	if err != nil {
		tb.Fatal(err)
	}
	fru, err := types.PackFRU(simFRU)
	if err != nil {
		tb.Fatalf("pack FRU: %v", err)
	}
	hex := make([]string, len(fru))
	for i, c := range fru {
		hex[i] = fmt.Sprintf("0x%02x", c)
	}
	port := freeUDPPort(tb, host)
	s.addr = net.JoinHostPort(host, strconv.Itoa(port))
	render(tb, "testdata/lan.conf.tmpl", s.conf, map[string]any{
		"Name": "metalsync-test", "Addr": host, "Port": port,
		"User": simUser, "Password": simPassword,
		"Script": script, "State": s.state,
	})
	render(tb, "testdata/bmc.emu.tmpl", s.emu, map[string]any{
		"FRUSize": len(fru), "FRU": strings.Join(hex, " "),
	})
	s.start(tb, bin, filepath.Join(dir, "persist"))
	return s
}

func (s *sim) start(tb testing.TB, bin, persist string) {
	tb.Helper()
	s.out = &tools.SyncBuffer{}
	s.cmd = exec.Command(bin, "-n", "-c", s.conf, "-f", s.emu, "-s", persist)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("start ipmi_sim: %v", err)
	}
	cmd := s.cmd
	tb.Cleanup(func() { stopProcess(cmd) })
	s.waitReady(tb)
}

func stopProcess(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// restart kills ipmi_sim and starts it again on the same port and state;
// sessions of the old process are gone.
func (s *sim) restart(tb testing.TB) {
	tb.Helper()
	stopProcess(s.cmd)
	s.start(tb, s.cmd.Path, s.cmd.Args[len(s.cmd.Args)-1])
}

// waitReady polls until the simulator answers a session setup.
func (s *sim) waitReady(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		b, err := Open(ctx, s.config(simPassword))
		if err == nil {
			err = b.Close(ctx)
		}
		cancel()
		if err == nil {
			return
		}
		if s.cmd.ProcessState != nil || time.Now().After(deadline) {
			tb.Fatalf("ipmi_sim on %s not ready: %v\nipmi_sim output:\n%s", s.addr, err, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// config returns a driver config for the simulator.
func (s *sim) config(password string) drivers.Config {
	return drivers.Config{
		Endpoint:    &url.URL{Scheme: "ipmi", Host: s.addr},
		Username:    simUser,
		Password:    secret.Value(password),
		CallTimeout: 5 * time.Second,
	}
}

// open opens the driver on the simulator and closes it when the test ends.
func (s *sim) open(tb testing.TB) *BMC {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Open(ctx, s.config(simPassword))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b.(*BMC)
}

// file reads one of chassis-control.sh's state files.
func (s *sim) file(tb testing.TB, name string) string {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(s.state, name))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// ipmitool runs Debian's ipmitool against the simulator.
func (s *sim) ipmitool(tb testing.TB, args ...string) string {
	tb.Helper()
	bin := tools.Require(tb, "ipmitool")
	host, port, _ := net.SplitHostPort(s.addr)
	all := append([]string{"-I", "lanplus", "-C", "3", "-H", host, "-p", port, "-U", simUser, "-P", simPassword}, args...)
	out, err := exec.Command(bin, all...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ipmitool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// freeUDPPort returns a UDP port that was free a moment ago.
func freeUDPPort(tb testing.TB, host string) int {
	tb.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		tb.Skipf("cannot listen on %s: %v", host, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func render(tb testing.TB, src, dst string, data any) {
	tb.Helper()
	t, err := template.ParseFiles(src)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
}
