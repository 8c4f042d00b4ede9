// Package qemutest holds what tests of QEMU machines share: tool checks
// that skip locally and fail in CI, the marker disk and CD images, and
// the logs a failed test prints.
package qemutest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/sim/qemumachine"
)

// Markers the test images print on COM1.
const (
	DiskMarker = "METALSYNC-IMAGE-BOOTED-FROM-DISK"
	CDMarker   = "METALSYNC-CD-BOOTED"
)

// BootTimeout bounds one boot to its marker. A boot sector guest needs
// 1–3 s under TCG; the margin is for a machine shared with other guests.
const BootTimeout = 180 * time.Second

// RequireTool returns the path of a tool the test needs. Without it the
// test is skipped, except in CI (CI=true), where it fails.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI: %v", name, err)
	}
	t.Skipf("%s not installed: %v", name, err)
	return ""
}

// DiskImage writes a 1 MiB raw disk whose MBR prints msg and then halts
// or powers off, and returns its path.
func DiskImage(t testing.TB, path, msg string, then qemumachine.AfterMessage) string {
	t.Helper()
	sec, err := qemumachine.BootSector(msg, then)
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 1<<20)
	copy(img, sec)
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// BootISO builds, with xorriso, an El Torito no-emulation ISO whose boot
// image (4 sectors loaded at 0x7C00) prints msg and halts, and returns
// its path.
func BootISO(t testing.TB, dir, msg string) string {
	t.Helper()
	xorriso := RequireTool(t, "xorriso")
	sec, err := qemumachine.BootSector(msg, qemumachine.Halt)
	if err != nil {
		t.Fatal(err)
	}
	stage := filepath.Join(dir, "iso-stage")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		t.Fatal(err)
	}
	boot := make([]byte, 2048) // the 4 sectors the BIOS loads
	copy(boot, sec)
	if err := os.WriteFile(filepath.Join(stage, "boot.img"), boot, 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "cd.iso")
	cmd := exec.Command(xorriso, "-as", "mkisofs", "-quiet", "-V", "METALSYNC-TEST",
		"-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4", "-o", iso, stage)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return iso
}

// Start starts a machine in t.TempDir-based dir and closes it when the
// test ends, logging the tails of console.log, qmp.log and qemu.log if the
// test failed.
func Start(t testing.TB, cfg qemumachine.Config) *qemumachine.Machine {
	t.Helper()
	RequireTool(t, "qemu-system-x86_64")
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	m, err := qemumachine.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("qemu machine started in %v (%s)", time.Since(start).Round(time.Millisecond), cfg.Dir)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			LogTails(t, cfg.Dir)
		}
	})
	return m
}

// LogTails logs the last lines of the machine's logs in dir.
func LogTails(t testing.TB, dir string) {
	t.Helper()
	for _, name := range []string{"console.log", "qmp.log", "qemu.log"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Logf("%s: %v", name, err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		t.Logf("--- tail of %s (%s):\n%s", name, dir, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}
