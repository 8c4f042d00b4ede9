package boot

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Samples in the form depmod writes them for Debian's 6.1 kernel.
const sampleDep = `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/block/virtio_blk.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/fs/isofs/isofs.ko:
kernel/drivers/net/bonding/bonding.ko: kernel/net/tls/tls.ko
kernel/net/tls/tls.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/drivers/scsi/sr_mod.ko: kernel/drivers/cdrom/cdrom.ko
kernel/drivers/cdrom/cdrom.ko:
`

const sampleAlias = `# Aliases extracted from modules themselves.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias fs-iso9660 isofs
alias crypto-crc32c crc32c_generic
alias crypto-crc32c crc32c-intel
alias scsi:t-0x05* sr_mod
alias x86cpu:vendor:*:family:*:model:*:feature:*0094* crc32c-intel
alias char-major-10-[12]* cdrom
`

const sampleBuiltin = "kernel/drivers/input/serio/i8042.ko\n"

func sampleModules(t *testing.T, dir string) *Modules {
	t.Helper()
	deps, err := ParseDep(strings.NewReader(sampleDep))
	if err != nil {
		t.Fatal(err)
	}
	aliases, err := ParseAlias(strings.NewReader(sampleAlias))
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := ParseBuiltin(strings.NewReader(sampleBuiltin))
	if err != nil {
		t.Fatal(err)
	}
	return NewModules(dir, deps, aliases, builtin)
}

func TestParseDep(t *testing.T) {
	deps, err := ParseDep(strings.NewReader(sampleDep))
	if err != nil {
		t.Fatal(err)
	}
	want := Module{Name: "virtio_net", Path: "kernel/drivers/net/virtio_net.ko", Deps: []string{"net_failover", "failover"}}
	if diff := cmp.Diff(want, deps["virtio_net"]); diff != "" {
		t.Errorf("virtio_net (-want +got):\n%s", diff)
	}
	if got := deps["crc32c_intel"].Path; got != "kernel/arch/x86/crypto/crc32c-intel.ko" {
		t.Errorf("crc32c-intel is not found by its normalised name: %q", got)
	}
	for _, bad := range []string{"no colon here\n", ": a.ko\n"} {
		if _, err := ParseDep(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseDep(%q) accepted", bad)
		}
	}
}

func TestParseAliasRejects(t *testing.T) {
	if _, err := ParseAlias(strings.NewReader("alias only-two\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("ParseAlias = %v, want a line error", err)
	}
}

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/net/virtio_net.ko":    "virtio_net",
		"crc32c-intel":                        "crc32c_intel",
		"kernel/fs/xfs/xfs.ko.xz":             "xfs",
		"kernel/drivers/md/raid456.ko.zst":    "raid456",
		"/lib/modules/6.1/kernel/a/b-c.ko.gz": "b_c",
	} {
		if got := ModName(in); got != want {
			t.Errorf("ModName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d00001000sv00001AF4sd00000001bc02sc00i00", false},
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"x86cpu:vendor:*:family:*:model:*:feature:*0094*", "x86cpu:vendor:0000:family:0006:model:003F:feature:,0000,0001,0094,00C0", true},
		{"fs-iso9660", "fs-iso9660", true},
		{"fs-iso9660", "fs-iso966", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"char-major-10-[12]*", "char-major-10-175", true},
		{"char-major-10-[12]*", "char-major-10-375", false},
		{"x[!0-9]y", "xay", true},
		{"x[!0-9]y", "x5y", false},
		{"x[^a]y", "xby", true},
		{"x[]]y", "x]y", true},
		{"x[a-]y", "x-y", true},
		{"x[", "x[", true},
		{"x[ab", "x[ab", true},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{"**a**b", "xxaxxbxx", false},
		{"**a**b*", "xxaxxbxx", true},
		{"usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*", "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00", true},
	}
	for _, tt := range tests {
		if got := MatchGlob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

// FuzzMatchGlob checks MatchGlob against path.Match where their syntax
// agrees (ASCII, since kmod matches bytes and Go runes; no '/', no escapes, no '!' negation, which Go spells '^', a
// well-formed pattern) and that it never panics elsewhere.
func FuzzMatchGlob(f *testing.F) {
	f.Add("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	f.Add("char-major-10-[12]*", "char-major-10-175")
	f.Add("x[!0-9]y", "xay")
	f.Add("*a*b*c*d*e*", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Fuzz(func(t *testing.T, p, s string) {
		got := MatchGlob(p, s)
		if strings.ContainsAny(p+s, `/\`) || !ascii(p+s) || strings.Contains(p, "[!") || strings.Contains(p, "[]") || strings.Contains(p, "[^]") {
			return
		}
		want, err := path.Match(p, s)
		if err == nil && got != want {
			t.Fatalf("MatchGlob(%q, %q) = %v, path.Match says %v", p, s, got, want)
		}
	})
}

func TestResolve(t *testing.T) {
	m := sampleModules(t, "/m")
	tests := []struct {
		name string
		want []string
	}{
		{"virtio_net", []string{"virtio_net"}},
		{"virtio-net", []string{"virtio_net"}},
		{"i8042", []string{"i8042"}},
		{"fs-iso9660", []string{"isofs"}},
		{"crypto-crc32c", []string{"crc32c_generic", "crc32c_intel"}},
		{"virtio:d00000002v00001AF4", []string{"virtio_blk"}},
		{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", []string{"virtio_pci"}},
		{"scsi:t-0x05", []string{"sr_mod"}},
		{"pci:v00008086d00001000sv0sd0bc0sc0i0", nil},
		{"nothing", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, m.Resolve(tt.name)); diff != "" {
			t.Errorf("Resolve(%q) (-want +got):\n%s", tt.name, diff)
		}
	}
}

type recorder struct{ loaded []string }

func (r *recorder) insert(p string) error {
	if strings.Contains(p, "tls") {
		return errors.New("finit_module tls.ko: exec format error")
	}
	r.loaded = append(r.loaded, filepath.Base(p))
	return nil
}

func TestLoaderLoadsDepsFirstAndOnce(t *testing.T) {
	rec := &recorder{}
	l := newLoader(sampleModules(t, "/m"), rec.insert, nil)
	for _, n := range []string{"virtio_net", "net_failover", "virtio-net", "i8042"} {
		if err := l.Load(n); err != nil {
			t.Fatalf("Load(%s) = %v", n, err)
		}
	}
	if err := l.Load("crypto-crc32c"); err != nil {
		t.Fatal(err)
	}
	want := []string{"failover.ko", "net_failover.ko", "virtio_net.ko", "crc32c_generic.ko", "crc32c-intel.ko"}
	if diff := cmp.Diff(want, rec.loaded); diff != "" {
		t.Errorf("loaded (-want +got):\n%s", diff)
	}
	if err := l.Load("bonding"); err == nil || !strings.Contains(err.Error(), "module bonding: finit_module tls.ko") {
		t.Errorf("Load(bonding) with a failing dependency = %v", err)
	}
	if err := l.Load("nothing"); !errors.Is(err, ErrNoModule) {
		t.Errorf("Load(nothing) = %v, want ErrNoModule", err)
	}
}

func TestLoadList(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "modules-load.list")
	os.WriteFile(list, []byte("# storage\nvirtio_blk\n\n  isofs  # the media\nnothing\nbonding\n"), 0o644)
	rec := &recorder{}
	l := newLoader(sampleModules(t, "/m"), rec.insert, nil)
	if err := l.LoadList(list); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"virtio_blk.ko", "isofs.ko"}, rec.loaded); diff != "" {
		t.Errorf("loaded (-want +got):\n%s", diff)
	}
	if err := l.LoadList(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("LoadList of a missing file = %v, want nil", err)
	}
}

// TestColdplug walks a sysfs-like tree; the virtio devices appear only
// once virtio_pci is loaded, as in the kernel.
func TestColdplug(t *testing.T) {
	sys := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(sys, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, p), []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("pci0000:00/0000:00:03.0/modalias", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	write("pci0000:00/0000:00:04.0/modalias", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00")
	write("pci0000:00/0000:00:1f.0/modalias", "pci:v00008086d00002918sv00001AF4sd00001100bc06sc01i00")
	write("platform/i8042/modalias", "platform:i8042")
	os.Symlink(sys, filepath.Join(sys, "pci0000:00", "loop"))
	rec := &recorder{}
	insert := func(p string) error {
		if strings.HasSuffix(p, "virtio_pci.ko") {
			write("pci0000:00/0000:00:03.0/virtio0/modalias", "virtio:d00000001v00001AF4")
			write("pci0000:00/0000:00:04.0/virtio1/modalias", "virtio:d00000002v00001AF4")
		}
		return rec.insert(p)
	}
	l := newLoader(sampleModules(t, "/m"), insert, nil)
	n, err := l.Coldplug(context.Background(), sys)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"virtio_pci_modern_dev.ko", "virtio_pci_legacy_dev.ko", "virtio_pci.ko", "failover.ko", "net_failover.ko", "virtio_net.ko", "virtio_blk.ko"}
	if diff := cmp.Diff(want, rec.loaded); diff != "" {
		t.Errorf("loaded (-want +got):\n%s", diff)
	}
	if n != 4 {
		t.Errorf("Coldplug matched %d aliases, want 4", n)
	}
}

func TestUeventModalias(t *testing.T) {
	tests := []struct{ msg, want string }{
		{"add@/devices/pci0000:00/0000:00:05.0/usb1/1-1\x00ACTION=add\x00DEVPATH=/devices/x\x00SUBSYSTEM=usb\x00MODALIAS=usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00\x00SEQNUM=1", "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"},
		{"remove@/devices/x\x00ACTION=remove\x00MODALIAS=usb:v1\x00", ""},
		{"add@/devices/x\x00ACTION=add\x00SUBSYSTEM=block\x00", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := ueventModalias([]byte(tt.msg)); got != tt.want {
			t.Errorf("ueventModalias(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}

func TestModprobeArgs(t *testing.T) {
	tests := []struct {
		args      []string
		names     []string
		quiet     bool
		wantError string
	}{
		{[]string{"-q", "--", "crypto-crc32c"}, []string{"crypto-crc32c"}, true, ""},
		{[]string{"modprobe", "-q", "--", "fs-iso9660"}, []string{"fs-iso9660"}, true, ""},
		{[]string{"-qv", "bonding", "8021q"}, []string{"bonding", "8021q"}, true, ""},
		{[]string{"--", "-weird"}, []string{"-weird"}, false, ""},
		{[]string{"-r", "x"}, nil, false, "unsupported option"},
		{[]string{"-q"}, nil, false, "no module named"},
	}
	for _, tt := range tests {
		names, quiet, err := ParseModprobeArgs(tt.args)
		if tt.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("ParseModprobeArgs(%q) = %v, want error %q", tt.args, err, tt.wantError)
			}
			continue
		}
		if err != nil || !slices.Equal(names, tt.names) || quiet != tt.quiet {
			t.Errorf("ParseModprobeArgs(%q) = %q, %v, %v", tt.args, names, quiet, err)
		}
	}
	for args, want := range map[string]bool{"/sbin/modprobe -q -- x": true, "/init modprobe x": true, "/init": false, "/init --config-dir d": false} {
		if got := IsModprobe(strings.Fields(args)); got != want {
			t.Errorf("IsModprobe(%q) = %v, want %v", args, got, want)
		}
	}
}

// TestReapStale makes a real zombie child: it is left alone when first
// seen, and reaped when seen again.
func TestReapStale(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Skip("cannot start a child:", err)
	}
	pid := cmd.Process.Pid
	// Wait (without reaping) until the child has exited: waitid with
	// WNOWAIT leaves it a zombie.
	if err := waitExitedNoReap(pid); err != nil {
		t.Fatal(err)
	}
	first := reapStale("/proc", os.Getpid(), nil, discard())
	if !first[pid] {
		t.Fatalf("zombie %d not seen: %v", pid, first)
	}
	if _, err := os.Stat(filepath.Join("/proc", itoa(pid))); err != nil {
		t.Fatalf("zombie reaped on first sight: %v", err)
	}
	second := reapStale("/proc", os.Getpid(), first, discard())
	if second[pid] {
		t.Errorf("zombie still listed after reaping")
	}
	if _, err := os.Stat(filepath.Join("/proc", itoa(pid))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("zombie %d still in /proc: %v", pid, err)
	}
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
