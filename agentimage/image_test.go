package agentimage_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/agentimage"
	"metalsync.dev/metalsync/render/mediaserver"
)

// needTools skips when a build or boot tool is missing, except in CI.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, name := range tools {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (CI=true): %v", name, err)
			}
			t.Skipf("%s not installed", name)
		}
	}
}

// TestTemplate builds the template with a probe /init (testdata/initprobe)
// from the pinned debs with `metalsync agent-image build` (a subprocess:
// the builder's gzip and cpio under -race would take minutes): through
// the cache, then again bypassing it (the bytes must be equal); then
// Ensure in-process must find it in the cache. Then it boots a node's
// view under QEMU (SeaBIOS, and OVMF with METALSYNC_E2E_UEFI=1) until the
// probe says INITPROBE-OK and powers off.
func TestTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 24 MB ISO from ~100 MB of debs")
	}
	needTools(t, agentimage.Tools...)
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "metalsync")
	if out, err := exec.Command("go", "build", "-o", bin, "metalsync.dev/metalsync/cmd/metalsync").CombinedOutput(); err != nil {
		t.Fatalf("build metalsync: %v\n%s", err, out)
	}
	var log bytes.Buffer
	opts := agentimage.Options{
		Agent:    "./testdata/initprobe",
		Version:  "test",
		CacheDir: t.TempDir(),
		Log:      slog.New(slog.NewTextHandler(&log, nil)),
	}
	// Debs are large and pinned by sha256: share them across runs.
	if c, err := os.UserCacheDir(); err == nil {
		opts.DebDir = filepath.Join(c, "metalsync", "agent-image", "debs")
	}
	cli := func(extra ...string) string {
		t.Helper()
		args := append([]string{"agent-image", "build", "-v", "--agent", opts.Agent, "--version", opts.Version,
			"--cache", opts.CacheDir, "--debs", opts.DebDir}, extra...)
		start := time.Now()
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("metalsync %v: %v\n%s", args, err, stderr.String())
		}
		t.Logf("metalsync agent-image build %v: %s", extra, time.Since(start).Round(100*time.Millisecond))
		return strings.TrimSpace(string(out))
	}
	firstISO := cli()
	secondISO := cli("--no-cache", "--out", t.TempDir())
	m1, err := agentimage.ReadManifest(firstISO + ".json")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := agentimage.ReadManifest(secondISO + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if m1.SHA256 != m2.SHA256 {
		t.Fatalf("not reproducible: %s then %s", m1.SHA256, m2.SHA256)
	}
	first, err := agentimage.Ensure(ctx, opts)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if !first.Cached || first.ISO != firstISO {
		t.Fatalf("Ensure after the build: %+v, want the cached %s", first, firstISO)
	}
	t.Logf("template %s: %d bytes, sha256 %s, %d modules", first.ISO, m1.Size, m1.SHA256, len(m1.Modules))

	tpl, err := mediaserver.LoadTemplate(first.ISO)
	if err != nil {
		t.Fatal(err)
	}
	defer tpl.Close()
	v, err := tpl.View([]byte(`{"name":"vm1","uuid":"x","hostname":"vm1"}`), []byte(`{"links":[],"networks":[],"services":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	view := filepath.Join(t.TempDir(), "view.iso")
	f, err := os.Create(view)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, io.NewSectionReader(v, 0, v.Size())); err != nil {
		t.Fatal(err)
	}
	f.Close()

	t.Run("bios", func(t *testing.T) { boot(t, view, nil) })
	t.Run("uefi", func(t *testing.T) {
		if os.Getenv("METALSYNC_E2E_UEFI") != "1" {
			t.Skip("set METALSYNC_E2E_UEFI=1")
		}
		vars := filepath.Join(t.TempDir(), "vars.fd")
		b, err := os.ReadFile("/usr/share/OVMF/OVMF_VARS_4M.fd")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vars, b, 0o600); err != nil {
			t.Fatal(err)
		}
		boot(t, view, []string{
			"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
			"-drive", "if=pflash,format=raw,file=" + vars,
		})
	})
}

// boot runs QEMU on iso until the guest powers off, and wants the probe's
// marker on the serial console. The console log is kept on failure.
func boot(t *testing.T, iso string, extra []string) {
	needTools(t, "qemu-system-x86_64")
	dir, err := os.MkdirTemp("", "agentimage-boot-")
	if err != nil {
		t.Fatal(err)
	}
	console := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	args := append([]string{"-accel", "tcg", "-m", "1024", "-nodefaults", "-no-reboot",
		"-serial", "file:" + console, "-display", "none", "-cdrom", iso}, extra...)
	start := time.Now()
	out, err := exec.CommandContext(ctx, "qemu-system-x86_64", args...).CombinedOutput()
	log, _ := os.ReadFile(console)
	if err != nil || !bytes.Contains(log, []byte("INITPROBE-OK version=test")) {
		tail := string(log)
		if len(tail) > 3000 {
			tail = tail[len(tail)-3000:]
		}
		t.Fatalf("boot: %v (after %s)\nqemu: %s\nconsole (kept in %s), tail:\n%s", err, time.Since(start).Round(time.Second), out, console, tail)
	}
	os.RemoveAll(dir)
	t.Logf("INITPROBE-OK after %s", time.Since(start).Round(100*time.Millisecond))
	if strings.Contains(string(log), "Kernel panic") {
		t.Error("kernel panicked")
	}
}
