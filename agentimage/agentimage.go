// Package agentimage builds the deploy agent's boot ISO: a template built
// once per agent version from pinned Debian packages (debs.lock) and the
// agent binary, byte-reproducible, plus a manifest that locates the two
// config-2 slot files each node's media replaces (render/mediaserver
// splices them in without copying the template).
//
// The ISO boots on BIOS (isolinux) and UEFI, Secure Boot included (shim →
// signed GRUB → signed kernel); the initramfs holds the agent as /init,
// mdadm with its libraries and an allow-list of kernel modules.
package agentimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// DefaultAgent is the agent's Go package.
const DefaultAgent = "metalsync.dev/metalsync/cmd/metalsync-agent"

// builderVersion changes whenever the builder's output for equal inputs
// changes; it is part of the cache key.
const builderVersion = "1"

// Cmdline is the kernel command line. The last console= is /dev/console,
// so the agent's output goes to the serial port (ttyS0), where BMC SOL
// and the QEMU test read it; the screen still gets kernel messages.
const Cmdline = "console=tty0 console=ttyS0,115200 panic=-1 quiet"

// Options are the inputs of a build.
type Options struct {
	// Agent is the Go package built as /init; empty means DefaultAgent.
	Agent string
	// Dir is the directory go build runs in (inside the agent's module);
	// empty means the current directory.
	Dir string
	// Version is stamped into the agent (-X main.version) and
	// /.disk/info; empty means "dev".
	Version string
	// Lock is the lock file's content; nil means DefaultLock.
	Lock []byte
	// Modules is the module allow-list; nil means DefaultModules.
	Modules []string
	// CacheDir holds built images by input hash; empty means
	// $XDG_CACHE_HOME/metalsync/agent-image (or ~/.cache/...).
	CacheDir string
	// DebDir holds the downloaded .debs by sha256; empty means
	// CacheDir/debs.
	DebDir string
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// Image is a built template.
type Image struct {
	ISO      string // the template ISO
	Manifest string // its manifest, ISO + ".json"
	// Cached says the image came from the cache without a build.
	Cached bool
}

func (o *Options) defaults() error {
	if o.Agent == "" {
		o.Agent = DefaultAgent
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if strings.ContainsAny(o.Version, " \t\n'\"") {
		return fmt.Errorf("agent image: version %q: no spaces or quotes", o.Version)
	}
	if o.Lock == nil {
		o.Lock = DefaultLock
	}
	if o.Modules == nil {
		o.Modules = DefaultModules
	}
	if o.CacheDir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("agent image: cache dir: %w", err)
		}
		o.CacheDir = filepath.Join(c, "metalsync", "agent-image")
	}
	if o.DebDir == "" {
		o.DebDir = filepath.Join(o.CacheDir, "debs")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Tools are the programs a build runs.
var Tools = []string{"go", "apt-get", "dpkg-deb", "depmod", "xorriso", "mkfs.vfat", "mmd", "mcopy"}

// MissingTools returns the Tools not found in PATH.
func MissingTools() []string {
	var miss []string
	for _, t := range Tools {
		if _, err := exec.LookPath(t); err != nil {
			miss = append(miss, t)
		}
	}
	return miss
}

// Ensure returns the template for opts from the cache, building it on a
// miss. The cache key hashes the lock, the module list, the agent
// binary's sha256 and the builder version, so the agent is always
// compiled (go's own cache makes that quick) but the image only when an
// input changed.
func Ensure(ctx context.Context, opts Options) (Image, error) {
	if err := opts.defaults(); err != nil {
		return Image{}, err
	}
	work, agent, agentSum, err := startBuild(ctx, opts, opts.CacheDir, "build-")
	if err != nil {
		return Image{}, err
	}
	defer os.RemoveAll(work)
	key := cacheKey(opts, agentSum)
	dir := filepath.Join(opts.CacheDir, key)
	img := Image{ISO: filepath.Join(dir, "agent.iso"), Manifest: filepath.Join(dir, "agent.iso.json"), Cached: true}
	if cached(img) {
		opts.Log.Info("agent image cache hit", "iso", img.ISO)
		return img, nil
	}
	if _, err := os.Stat(dir); err == nil {
		opts.Log.Warn("agent image cache entry does not match its manifest; rebuilding", "dir", dir)
		if err := os.RemoveAll(dir); err != nil {
			return Image{}, fmt.Errorf("agent image: cache: %w", err)
		}
	}
	out := filepath.Join(work, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return Image{}, fmt.Errorf("agent image: %w", err)
	}
	if _, err := build(ctx, opts, agent, agentSum, work, out); err != nil {
		return Image{}, err
	}
	if err := os.Rename(out, dir); err != nil {
		// Another build of the same inputs got there first: equal bytes.
		if cached(img) {
			return img, nil
		}
		return Image{}, fmt.Errorf("agent image: cache: %w", err)
	}
	img.Cached = false
	return img, nil
}

// cached says img is a complete cache entry: the ISO matches its manifest.
func cached(img Image) bool {
	m, err := ReadManifest(img.Manifest)
	if err != nil {
		return false
	}
	sum, err := fileSHA256(img.ISO)
	return err == nil && sum == m.SHA256
}

// Build builds the template into outDir (agent.iso and agent.iso.json),
// bypassing the image cache; downloaded debs are still reused.
func Build(ctx context.Context, opts Options, outDir string) (Image, error) {
	if err := opts.defaults(); err != nil {
		return Image{}, err
	}
	work, agent, agentSum, err := startBuild(ctx, opts, outDir, ".build-")
	if err != nil {
		return Image{}, err
	}
	defer os.RemoveAll(work)
	return build(ctx, opts, agent, agentSum, work, outDir)
}

func cacheKey(o Options, agentSum string) string {
	h := sha256.New()
	for _, part := range []string{builderVersion, Cmdline, string(o.Lock), strings.Join(o.Modules, "\n"), agentSum, o.Version} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// buildAgent compiles the agent statically and reproducibly.
// startBuild makes a work directory in dir (the caller removes it) and
// builds the agent binary there.
func startBuild(ctx context.Context, opts Options, dir, prefix string) (work, agent, agentSum string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", "", fmt.Errorf("agent image: %w", err)
	}
	if work, err = os.MkdirTemp(dir, prefix); err != nil {
		return "", "", "", fmt.Errorf("agent image: %w", err)
	}
	if agent, agentSum, err = buildAgent(ctx, opts, work); err != nil {
		os.RemoveAll(work)
		return "", "", "", err
	}
	return work, agent, agentSum, nil
}

func buildAgent(ctx context.Context, o Options, work string) (path, sum string, err error) {
	start := time.Now()
	path = filepath.Join(work, "agent")
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if _, err := run(ctx, env, o.Dir, "go", "build", "-o", path, "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid= -X main.version="+o.Version, o.Agent); err != nil {
		return "", "", fmt.Errorf("agent image: build agent %s: %w", o.Agent, err)
	}
	if sum, err = fileSHA256(path); err != nil {
		return "", "", fmt.Errorf("agent image: agent: %w", err)
	}
	o.Log.Info("agent built", "package", o.Agent, "sha256", sum, "duration", time.Since(start).Round(time.Millisecond))
	return path, sum, nil
}

// build makes agent.iso and its manifest in outDir, using work for
// scratch.
func build(ctx context.Context, o Options, agent, agentSum, work, outDir string) (Image, error) {
	if miss := MissingTools(); len(miss) > 0 {
		return Image{}, fmt.Errorf("agent image: missing tools %v (Debian: apt-get install kmod xorriso dosfstools mtools)", miss)
	}
	lock, err := ParseLock(o.Lock)
	if err != nil {
		return Image{}, fmt.Errorf("agent image: %w", err)
	}
	kver, _ := lock.KernelRelease()
	start := time.Now()
	debs := map[string]string{}
	for _, d := range lock.Debs {
		p, err := fetchDeb(ctx, o.DebDir, d)
		if err != nil {
			return Image{}, fmt.Errorf("agent image: %w", err)
		}
		debs[d.Name] = p
	}
	o.Log.Info("debs ready", "count", len(debs), "duration", time.Since(start).Round(time.Millisecond))
	root := filepath.Join(work, "root")
	if err := extractDebs(ctx, debs, lock.Debs, root); err != nil {
		return Image{}, fmt.Errorf("agent image: %w", err)
	}
	if _, err := run(ctx, nil, "", "depmod", "-b", root, kver); err != nil {
		return Image{}, fmt.Errorf("agent image: depmod %s: %w", kver, err)
	}
	o.Log.Info("debs extracted", "kernel", kver, "duration", time.Since(start).Round(time.Millisecond))

	initrd, load, err := initramfs(root, kver, agent, o.Modules, lock.SourceDateEpoch)
	if err != nil {
		return Image{}, fmt.Errorf("agent image: initramfs: %w", err)
	}
	o.Log.Info("initramfs written", "bytes", len(initrd), "modules", len(load), "duration", time.Since(start).Round(time.Millisecond))

	stage := filepath.Join(work, "iso")
	iso := filepath.Join(outDir, "agent.iso")
	if err := stageISO(ctx, root, stage, kver, initrd, o.Version, lock.SourceDateEpoch); err != nil {
		return Image{}, fmt.Errorf("agent image: %w", err)
	}
	if err := makeISO(ctx, root, stage, iso, lock.SourceDateEpoch); err != nil {
		return Image{}, fmt.Errorf("agent image: %w", err)
	}
	slots, err := LocateSlots(ctx, iso)
	if err != nil {
		return Image{}, fmt.Errorf("agent image: %w", err)
	}
	m := Manifest{
		FormatVersion: ManifestVersion, BuilderVersion: builderVersion,
		SourceDateEpoch: lock.SourceDateEpoch, Kernel: kver, Cmdline: Cmdline,
		Packages: lock.Debs, Modules: load, Slots: slots,
	}
	m.Agent.Package, m.Agent.Version, m.Agent.SHA256 = o.Agent, o.Version, agentSum
	if m.SHA256, err = fileSHA256(iso); err != nil {
		return Image{}, fmt.Errorf("agent image: %w", err)
	}
	fi, err := os.Stat(iso)
	if err != nil {
		return Image{}, fmt.Errorf("agent image: %w", err)
	}
	m.Size = fi.Size()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Image{}, fmt.Errorf("agent image: manifest: %w", err)
	}
	img := Image{ISO: iso, Manifest: iso + ".json"}
	if err := os.WriteFile(img.Manifest, append(b, '\n'), 0o644); err != nil {
		return Image{}, fmt.Errorf("agent image: manifest: %w", err)
	}
	o.Log.Info("agent image built", "iso", iso, "bytes", m.Size, "sha256", m.SHA256, "duration", time.Since(start).Round(time.Millisecond))
	return img, nil
}

// CopyTo places img's ISO and manifest in dir (a hard link when it can).
func CopyTo(img Image, dir string) (Image, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Image{}, fmt.Errorf("agent image: %w", err)
	}
	out := Image{ISO: filepath.Join(dir, "agent.iso"), Manifest: filepath.Join(dir, "agent.iso.json")}
	for _, p := range [][2]string{{img.ISO, out.ISO}, {img.Manifest, out.Manifest}} {
		if err := copyFile(p[0], p[1]); err != nil {
			return Image{}, fmt.Errorf("agent image: %w", err)
		}
	}
	return out, nil
}

func copyFile(src, dst string) error {
	os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}
