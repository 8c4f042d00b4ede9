package agentimage

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// DefaultLock is the lock file the builder uses unless told otherwise.
//
//go:embed debs.lock
var DefaultLock []byte

// refreshHint tells how to recover when a pinned deb is gone or changed.
const refreshHint = "refresh the lock with `metalsync agent-image build --refresh-lock > agentimage/debs.lock`"

// Lock is the pinned input set of an image.
type Lock struct {
	// SourceDateEpoch (Unix seconds) is every timestamp in the image.
	SourceDateEpoch int64
	Debs            []Deb
}

// Deb is one pinned Debian package.
type Deb struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"` // of the .deb file
}

// kernelPrefix names the kernel package; its suffix is the kernel release.
const kernelPrefix = "linux-image-"

// requiredDebs are the packages the builder takes files from.
var requiredDebs = []string{"isolinux", "syslinux-common", "mdadm", "libudev1", "libc6", "shim-signed", "grub-efi-amd64-signed"}

// ParseLock parses a lock file: "#" comments, one "source-date-epoch N"
// and "deb NAME VERSION SHA256" lines.
func ParseLock(b []byte) (Lock, error) {
	var l Lock
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch {
		case f[0] == "source-date-epoch" && len(f) == 2:
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || v <= 0 || l.SourceDateEpoch != 0 {
				return Lock{}, fmt.Errorf("lock line %d: want one positive source-date-epoch", n)
			}
			l.SourceDateEpoch = v
		case f[0] == "deb" && len(f) == 4:
			d := Deb{Name: f[1], Version: f[2], SHA256: f[3]}
			if err := d.check(); err != nil {
				return Lock{}, fmt.Errorf("lock line %d: %w", n, err)
			}
			if seen[d.Name] {
				return Lock{}, fmt.Errorf("lock line %d: package %s listed twice", n, d.Name)
			}
			seen[d.Name] = true
			l.Debs = append(l.Debs, d)
		default:
			return Lock{}, fmt.Errorf("lock line %d: want \"deb NAME VERSION SHA256\" or \"source-date-epoch N\"", n)
		}
	}
	if err := sc.Err(); err != nil {
		return Lock{}, fmt.Errorf("lock: %w", err)
	}
	if l.SourceDateEpoch == 0 {
		return Lock{}, errors.New("lock: no source-date-epoch")
	}
	if _, err := l.KernelRelease(); err != nil {
		return Lock{}, err
	}
	for _, name := range requiredDebs {
		if !seen[name] {
			return Lock{}, fmt.Errorf("lock: package %s missing", name)
		}
	}
	return l, nil
}

func (d Deb) check() error {
	if d.Name == "" || strings.ContainsAny(d.Name, "=/ ") || strings.HasPrefix(d.Name, "-") {
		return fmt.Errorf("package name %q invalid", d.Name)
	}
	if d.Version == "" || strings.ContainsAny(d.Version, "=/ ") || strings.HasPrefix(d.Version, "-") {
		return fmt.Errorf("package %s: version %q invalid", d.Name, d.Version)
	}
	if b, err := hex.DecodeString(d.SHA256); err != nil || len(b) != 32 || strings.ToLower(d.SHA256) != d.SHA256 {
		return fmt.Errorf("package %s: sha256 %q is not 64 lowercase hex digits", d.Name, d.SHA256)
	}
	return nil
}

// KernelRelease is the release of the one locked linux-image package
// (6.1.0-57-amd64), the directory name under /lib/modules.
func (l Lock) KernelRelease() (string, error) {
	var rel []string
	for _, d := range l.Debs {
		if strings.HasPrefix(d.Name, kernelPrefix) {
			rel = append(rel, strings.TrimPrefix(d.Name, kernelPrefix))
		}
	}
	if len(rel) != 1 || rel[0] == "" {
		return "", fmt.Errorf("lock: want exactly one %s<release> package, have %d", kernelPrefix, len(rel))
	}
	return rel[0], nil
}

// Format writes l in the lock file syntax.
func (l Lock) Format() []byte {
	var b bytes.Buffer
	b.WriteString("# Pinned inputs of the deploy agent image (metalsync agent-image build).\n")
	b.WriteString("# Each deb line: package version sha256-of-the-.deb. source-date-epoch fixes\n")
	b.WriteString("# every timestamp in the image; bump it when the lock changes.\n")
	b.WriteString("# Refresh (prints a new lock from the current Debian archive):\n")
	b.WriteString("#   metalsync agent-image build --refresh-lock > agentimage/debs.lock\n")
	fmt.Fprintf(&b, "source-date-epoch %d\n", l.SourceDateEpoch)
	for _, d := range l.Debs {
		fmt.Fprintf(&b, "deb %s %s %s\n", d.Name, d.Version, d.SHA256)
	}
	return b.Bytes()
}

// RefreshLock resolves the packages' current candidates in the
// configured apt sources (the kernel through linux-image-amd64's
// dependency) and returns a lock pinning them, with epoch as its
// source-date-epoch.
func RefreshLock(ctx context.Context, epoch int64) (Lock, error) {
	out, err := run(ctx, nil, "", "apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return Lock{}, fmt.Errorf("refresh lock: %w", err)
	}
	var kernel string
	for _, line := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "+kernelPrefix); ok && strings.HasSuffix(k, "-amd64") {
			kernel = kernelPrefix + k
			break
		}
	}
	if kernel == "" {
		return Lock{}, errors.New("refresh lock: linux-image-amd64 depends on no linux-image-*-amd64")
	}
	l := Lock{SourceDateEpoch: epoch}
	for _, name := range append([]string{kernel}, requiredDebs...) {
		d, err := candidate(ctx, name)
		if err != nil {
			return Lock{}, fmt.Errorf("refresh lock: %w", err)
		}
		l.Debs = append(l.Debs, d)
	}
	return l, nil
}

// candidate asks apt for a package's candidate version and that
// version's .deb SHA-256.
func candidate(ctx context.Context, name string) (Deb, error) {
	out, err := run(ctx, nil, "", "apt-cache", "policy", name)
	if err != nil {
		return Deb{}, fmt.Errorf("package %s: %w", name, err)
	}
	d := Deb{Name: name}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && v != "(none)" {
			d.Version = v
		}
	}
	if d.Version == "" {
		return Deb{}, fmt.Errorf("package %s: no candidate version in the apt sources", name)
	}
	out, err = run(ctx, nil, "", "apt-cache", "show", name+"="+d.Version)
	if err != nil {
		return Deb{}, fmt.Errorf("package %s=%s: %w", name, d.Version, err)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "SHA256: "); ok {
			d.SHA256 = strings.TrimSpace(v)
			break
		}
	}
	if err := d.check(); err != nil {
		return Deb{}, err
	}
	return d, nil
}

// run runs a command and returns its stdout; the error carries the tail
// of stderr.
func run(ctx context.Context, env []string, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 600 {
			msg = "..." + msg[len(msg)-600:]
		}
		if msg != "" {
			return stdout.String(), fmt.Errorf("%s: %w: %s", name, err, msg)
		}
		return stdout.String(), fmt.Errorf("%s: %w", name, err)
	}
	return stdout.String(), nil
}
