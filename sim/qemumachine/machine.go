package qemumachine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Machine is one running QEMU process. Its power is off until PowerOn;
// the process (and with it the inserted media, the QMP connection and
// the logs) lives until Close, as a BMC outlives its host's power state.
type Machine struct {
	cfg     Config
	log     *slog.Logger
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the QEMU process has ended
	waitErr error         // set before exited is closed
	qmp     *qmp
	serial  net.Conn
	console *console
	sockDir string
	files   []*os.File // logs, closed by Close
	disks   []string

	opMu sync.Mutex // serializes multi-command operations (power, boot order)

	closeOnce sync.Once
	closeErr  error
}

// Start creates the disks that do not exist yet, starts QEMU with its
// power off and connects to its QMP monitor and serial port. ctx bounds
// the start only; Close ends the machine.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("qemu machine: %w", err)
	}
	m := &Machine{cfg: cfg, log: cfg.Logger, exited: make(chan struct{})}
	if err := m.start(ctx); err != nil {
		m.cleanup()
		if tail := m.stderrTail(); tail != "" {
			err = fmt.Errorf("%w (qemu.log: %s)", err, tail)
		}
		return nil, fmt.Errorf("qemu machine: %w", err)
	}
	return m, nil
}

func (m *Machine) start(ctx context.Context) error {
	cfg := m.cfg
	f := files{}
	for i, d := range cfg.Disks {
		p := d.Path
		if p == "" {
			p = filepath.Join(cfg.Dir, diskID(i)+".raw")
		}
		if err := ensureDisk(p, d.Size); err != nil {
			return fmt.Errorf("%s: %w", diskID(i), err)
		}
		f.disks = append(f.disks, p)
	}
	m.disks = f.disks
	if cfg.Firmware != BIOS {
		code, vars := cfg.ovmf()
		f.ovmfCode, f.ovmfVars = code, filepath.Join(cfg.Dir, "ovmf-vars.fd")
		if err := copyFile(f.ovmfVars, vars); err != nil {
			return fmt.Errorf("uefi vars: %w", err)
		}
	}
	// Unix socket paths are limited to 108 bytes, so the sockets live in a
	// short temporary directory rather than in cfg.Dir.
	var err error
	if m.sockDir, err = os.MkdirTemp("", "qm-"); err != nil {
		return fmt.Errorf("socket dir: %w", err)
	}
	f.qmpSock, f.serialSock = filepath.Join(m.sockDir, "qmp"), filepath.Join(m.sockDir, "serial")
	// QEMU connects to us, so there is no polling for its sockets.
	qmpL, err := net.Listen("unix", f.qmpSock)
	if err != nil {
		return fmt.Errorf("qmp socket: %w", err)
	}
	defer qmpL.Close()
	serL, err := net.Listen("unix", f.serialSock)
	if err != nil {
		return fmt.Errorf("serial socket: %w", err)
	}
	defer serL.Close()

	open := func(name string) (*os.File, error) {
		fh, err := os.OpenFile(filepath.Join(cfg.Dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("log: %w", err)
		}
		m.files = append(m.files, fh)
		return fh, nil
	}
	stderr, err := open("qemu.log")
	if err != nil {
		return err
	}
	qmpLog, err := open("qmp.log")
	if err != nil {
		return err
	}
	conLog, err := open("console.log")
	if err != nil {
		return err
	}
	a := args(cfg, f)
	fmt.Fprintf(stderr, "# %s %s\n", cfg.QEMU, strings.Join(a, " "))
	// Not CommandContext: the machine outlives the ctx of Start.
	m.cmd = exec.Command(cfg.QEMU, a...)
	m.cmd.Stdout, m.cmd.Stderr = stderr, stderr
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cfg.QEMU, err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.exited)
	}()

	qconn, err := m.accept(ctx, qmpL)
	if err != nil {
		return fmt.Errorf("qmp: %w", err)
	}
	if m.serial, err = m.accept(ctx, serL); err != nil {
		qconn.Close()
		return fmt.Errorf("serial: %w", err)
	}
	m.console = newConsole(conLog)
	go m.console.copyFrom(m.serial)
	if m.qmp, err = newQMP(ctx, qconn, qmpLog); err != nil {
		return err
	}
	m.log.Info("qemu machine started", "dir", cfg.Dir, "firmware", cfg.Firmware, "pid", m.cmd.Process.Pid)
	return nil
}

// accept waits for QEMU to connect, or to die trying.
func (m *Machine) accept(ctx context.Context, l net.Listener) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-m.exited:
		return nil, fmt.Errorf("qemu exited (%v): %s", m.waitErr, m.stderrTail())
	case <-ctx.Done():
		l.Close() // ends the Accept
		if r := <-ch; r.c != nil {
			r.c.Close()
		}
		return nil, ctx.Err()
	}
}

func (m *Machine) stderrTail() string {
	b, err := os.ReadFile(filepath.Join(m.cfg.Dir, "qemu.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "; ")
}

func ensureDisk(path string, size int64) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if size <= 0 {
		return fmt.Errorf("%s: does not exist and no size to create it with", path)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Dir is the directory of the machine's files (Config.Dir).
func (m *Machine) Dir() string { return m.cfg.Dir }

// MAC is the NIC's MAC (net0), "" without a NIC.
func (m *Machine) MAC() string { return m.cfg.MAC }

// Disks are the disk image paths, disk0 first.
func (m *Machine) Disks() []string { return append([]string(nil), m.disks...) }

// ConsoleLog and QMPLog are the artifact paths.
func (m *Machine) ConsoleLog() string { return filepath.Join(m.cfg.Dir, "console.log") }

// QMPLog is the QMP transcript: every command, answer and event.
func (m *Machine) QMPLog() string { return filepath.Join(m.cfg.Dir, "qmp.log") }

// Console returns the serial console's complete lines so far.
func (m *Machine) Console() []string { return m.console.Lines() }

// WaitConsole waits until a console line at index from or later contains
// substr, and returns that line's index.
func (m *Machine) WaitConsole(ctx context.Context, substr string, from int) (int, error) {
	return m.console.wait(ctx, substr, from)
}

// Events returns the QMP events so far (RESET, SHUTDOWN, STOP, ...).
func (m *Machine) Events() []Event { return m.qmp.allEvents() }

// WaitEvent waits for the first event named name after the first `after`
// events (len(Events()) taken before the action that causes it).
func (m *Machine) WaitEvent(ctx context.Context, name string, after int) (Event, error) {
	return m.qmp.waitEvent(ctx, name, after)
}

type status struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

func (m *Machine) status(ctx context.Context) (status, error) {
	raw, err := m.qmp.run(ctx, "query-status", nil)
	if err != nil {
		return status{}, err
	}
	var st status
	if err := json.Unmarshal(raw, &st); err != nil {
		return status{}, fmt.Errorf("qmp query-status: %w", err)
	}
	return st, nil
}

// PowerState reports whether the guest runs. Off is QEMU's "prelaunch"
// (never powered on), "paused" (PowerOff) or "shutdown" (the guest
// powered itself off; -no-shutdown keeps the process).
func (m *Machine) PowerState(ctx context.Context) (on bool, err error) {
	st, err := m.status(ctx)
	if err != nil {
		return false, fmt.Errorf("qemu machine: power state: %w", err)
	}
	return st.Running, nil
}

// PowerOn starts the guest from its firmware, with the boot order set
// now, when it is off; it does nothing when it is on.
func (m *Machine) PowerOn(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	st, err := m.status(ctx)
	if err != nil {
		return fmt.Errorf("qemu machine: power on: %w", err)
	}
	if st.Running {
		return nil
	}
	if err := m.resetLocked(ctx, true); err != nil {
		return fmt.Errorf("qemu machine: power on: %w", err)
	}
	m.log.Info("qemu machine powered on", "dir", m.cfg.Dir, "was", st.Status)
	return nil
}

// Reset restarts the guest from its firmware at once (applying the boot
// order), like a reset button; a machine that is off is switched on.
func (m *Machine) Reset(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.resetLocked(ctx, true); err != nil {
		return fmt.Errorf("qemu machine: reset: %w", err)
	}
	m.log.Info("qemu machine reset", "dir", m.cfg.Dir)
	return nil
}

// resetLocked resets the machine (devices, and the firmware's boot order
// from the current bootindex values) and, with run, lets the CPU run. It
// waits for the reset to happen before cont: cont from "shutdown" is
// refused until the reset has been done.
func (m *Machine) resetLocked(ctx context.Context, run bool) error {
	n := m.qmp.eventCount()
	if _, err := m.qmp.run(ctx, "system_reset", nil); err != nil {
		return err
	}
	if _, err := m.qmp.waitEvent(ctx, "RESET", n); err != nil {
		return err
	}
	if !run {
		return nil
	}
	st, err := m.status(ctx)
	if err != nil {
		return err
	}
	if st.Running {
		return nil
	}
	_, err = m.qmp.run(ctx, "cont", nil)
	return err
}

// PowerOff stops the guest: with force at once (the CPU stops where it
// is, and the next PowerOn starts from firmware); without it by pressing
// the ACPI power button, which a guest without ACPI handling ignores,
// as on real hardware.
func (m *Machine) PowerOff(ctx context.Context, force bool) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	cmd := "system_powerdown"
	if force {
		cmd = "stop"
	}
	if _, err := m.qmp.run(ctx, cmd, nil); err != nil {
		return fmt.Errorf("qemu machine: power off: %w", err)
	}
	m.log.Info("qemu machine power off", "dir", m.cfg.Dir, "force", force)
	return nil
}

// SetBootOrder puts first ahead of the other boot devices. Like a BMC's
// boot override, it takes effect at the next PowerOn or Reset (or a
// reboot by the guest), when the firmware reads the order.
func (m *Machine) SetBootOrder(ctx context.Context, first BootDevice) error {
	switch first {
	case BootDisk, BootCD, BootPXE:
	default:
		return fmt.Errorf("qemu machine: boot order: device %q: want disk, cd or pxe", first)
	}
	if first == BootPXE && m.cfg.MAC == "" {
		return errors.New("qemu machine: boot order: pxe: the machine has no NIC")
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	order := bootOrder(first, len(m.cfg.Disks), m.cfg.MAC != "")
	// A bootindex must be unique at every step: clear them all first.
	for _, pass := range []bool{false, true} {
		for _, id := range slices.Sorted(maps.Keys(order)) { // sorted: a stable transcript
			idx := order[id]
			if !pass {
				idx = -1
			}
			args := map[string]any{"path": "/machine/peripheral/" + id, "property": "bootindex", "value": idx}
			if _, err := m.qmp.run(ctx, "qom-set", args); err != nil {
				return fmt.Errorf("qemu machine: boot order %s: %w", first, err)
			}
		}
	}
	m.log.Info("qemu machine boot order", "dir", m.cfg.Dir, "first", first)
	return nil
}

// InsertMedia puts a raw image file (an ISO) in the CD drive, read-only.
// A file, not a URL: a hot insert of an http URL hung the guest.
func (m *Machine) InsertMedia(ctx context.Context, file string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return fmt.Errorf("qemu machine: insert media: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("qemu machine: insert media: %w", err)
	}
	args := map[string]any{"id": "cd0", "filename": abs, "format": "raw", "read-only-mode": "read-only"}
	if _, err := m.qmp.run(ctx, "blockdev-change-medium", args); err != nil {
		return fmt.Errorf("qemu machine: insert media: %w", err)
	}
	m.log.Info("qemu machine media inserted", "dir", m.cfg.Dir, "file", abs)
	return nil
}

// EjectMedia empties the CD drive, even when the guest locked its tray.
// Ejecting an empty drive is not an error.
func (m *Machine) EjectMedia(ctx context.Context) error {
	if _, err := m.qmp.run(ctx, "eject", map[string]any{"id": "cd0", "force": true}); err != nil {
		return fmt.Errorf("qemu machine: eject media: %w", err)
	}
	m.log.Info("qemu machine media ejected", "dir", m.cfg.Dir)
	return nil
}

// Close quits QEMU (killing it when it does not end within 10 s), and
// removes the sockets. The disks and logs stay in Dir.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Machine) close() error {
	var errs []error
	if m.qmp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// QEMU may close the connection before it answers quit.
		_, _ = m.qmp.run(ctx, "quit", nil)
		cancel()
	}
	if m.cmd != nil && m.cmd.Process != nil {
		t := time.NewTimer(10 * time.Second)
		select {
		case <-m.exited:
		case <-t.C:
			errs = append(errs, errors.New("qemu did not quit; killed"))
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
		t.Stop()
	}
	m.cleanup()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("qemu machine: close: %w", err)
	}
	return nil
}

// cleanup releases everything but the process, which must have ended (or
// never started).
func (m *Machine) cleanup() {
	if m.cmd != nil && m.cmd.Process != nil {
		select {
		case <-m.exited:
		default:
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
	}
	if m.qmp != nil {
		_ = m.qmp.close()
	}
	if m.serial != nil {
		m.serial.Close()
		<-m.console.done
	}
	for _, f := range m.files {
		f.Close()
	}
	if m.sockDir != "" {
		os.RemoveAll(m.sockDir)
	}
}
