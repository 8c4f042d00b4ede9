package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kdomanski/iso9660"

	"metalsync.dev/metalsync/agent/partition"
	"metalsync.dev/metalsync/agentapi"

	"metalsync.dev/metalsync/agent/blockdev/memdisk"
)

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// daemon serves files from memory.
type daemon map[string][]byte

func (d daemon) Open(_ context.Context, path string, off int64) (io.ReadCloser, error) {
	b, ok := d[path]
	if !ok || off > int64(len(b)) {
		return nil, fmt.Errorf("404 %s", path)
	}
	return io.NopCloser(bytes.NewReader(b[off:])), nil
}

type node struct {
	root string
	cfg  Config
	img  []byte
	sha  string
}

// newNode builds a fake sysfs/procfs/dev tree: vda (5 GiB) and vdb
// (6 GiB) as sparse files, one NIC, BIOS boot.
func newNode(t *testing.T) *node {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"proc/cpuinfo":                     "processor\t: 0\nmodel name\t: QEMU Virtual CPU version 2.5+\n",
		"proc/meminfo":                     "MemTotal:        1014532 kB\n",
		"sys/block/vda/size":               fmt.Sprint(5 * gib / 512),
		"sys/block/vda/serial":             "disk-a",
		"sys/block/vda/queue/rotational":   "1",
		"sys/block/vdb/size":               fmt.Sprint(6 * gib / 512),
		"sys/block/vdb/serial":             "disk-b",
		"sys/block/vdb/queue/rotational":   "1",
		"sys/class/net/eth0/address":       "52:54:00:12:34:56",
		"sys/class/net/eth0/carrier":       "1",
		"sys/class/net/eth0/device/vendor": "0x1af4",
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, size := range map[string]int64{"vda": 5 * gib, "vdb": 6 * gib} {
		sparse(t, filepath.Join(root, "dev", name), size)
	}
	img := make([]byte, 3*mib)
	if err := partition.NewGPT(memdisk.Disk(img), int64(len(img)), [16]byte{7}, []partition.GPTEntry{
		{Type: partition.LinuxFS, FirstLBA: 2048, LastLBA: 4095, Name: "root"},
	}); err != nil {
		t.Fatal(err)
	}
	copy(img[2048*512:], "tenant os bytes")
	s := sha256.Sum256(img)
	n := &node{root: root, img: img, sha: hex.EncodeToString(s[:])}
	n.cfg = Config{
		Fetch: daemon{
			agentapi.PathImage + n.sha: img,
			agentapi.PathConfigDrive:   isoBytes(t),
		},
		SysRoot: filepath.Join(root, "sys"),
		DevRoot: filepath.Join(root, "dev"),
	}
	return n
}

// runner is New(n.cfg) kept off the host: mdadm is absent unless a test
// installs a fake one.
func (n *node) runner(t *testing.T) *Runner {
	r := New(n.cfg)
	r.raid.MDADM = filepath.Join(n.root, "no-mdadm")
	r.raid.Exec = func(_ context.Context, name string, args ...string) ([]byte, error) {
		t.Errorf("ran %s %v without a fake", name, args)
		return nil, fmt.Errorf("no mdadm in tests")
	}
	return r
}

func sparse(t *testing.T, p string, size int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

func isoBytes(t *testing.T) []byte {
	t.Helper()
	w, err := iso9660.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cleanup()
	if err := w.AddFile(strings.NewReader("{}"), "openstack/latest/meta_data.json"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := w.WriteTo(&buf, "config-2"); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (n *node) writeArgs(t *testing.T, h *agentapi.RootDeviceHints, cd bool) json.RawMessage {
	b, err := json.Marshal(agentapi.WriteImageArgs{ImagePath: agentapi.PathImage + n.sha, SHA256: n.sha,
		Size: int64(len(n.img)), Hints: h, ConfigDrive: cd})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (n *node) head(t *testing.T, dev string, size int) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(n.root, "dev", dev))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInspect(t *testing.T) {
	n := newNode(t)
	res := n.runner(t).Run(context.Background(), agentapi.Command{ID: "c1", Interface: "inspect", Step: "inspect"})
	want := agentapi.Result{ID: "c1", State: agentapi.StateSucceeded, Inventory: &agentapi.Inventory{
		CPUs: 1, CPUModel: "QEMU Virtual CPU version 2.5+", MemoryMiB: 990, BootMode: "bios",
		Disks: []agentapi.Disk{
			{Name: "/dev/vda", SizeBytes: 5 * gib, Serial: "disk-a", Rotational: true},
			{Name: "/dev/vdb", SizeBytes: 6 * gib, Serial: "disk-b", Rotational: true},
		},
		NICs: []agentapi.NIC{{Name: "eth0", MAC: "52:54:00:12:34:56", Link: true}},
	}}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("result (-want +got):\n%s", d)
	}
}

func TestWriteImage(t *testing.T) {
	tests := []struct {
		name  string
		hints *agentapi.RootDeviceHints
		want  string
	}{
		{name: "guess: smallest disk", want: "vda"},
		{name: "hinted by serial", hints: &agentapi.RootDeviceHints{Serial: "disk-b"}, want: "vdb"},
		{name: "hinted by name", hints: &agentapi.RootDeviceHints{Name: "vdb"}, want: "vdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			res := n.runner(t).Run(context.Background(), agentapi.Command{ID: "w", Interface: "deploy", Step: "write_image",
				Args: n.writeArgs(t, tt.hints, true)})
			want := agentapi.Result{ID: "w", State: agentapi.StateSucceeded, RootDevice: "/dev/" + tt.want}
			if d := cmp.Diff(want, res); d != "" {
				t.Fatalf("result (-want +got):\n%s", d)
			}
			if got := n.head(t, tt.want, 2048*512+15); !bytes.Equal(got[2048*512:], []byte("tenant os bytes")) {
				t.Error("image not on the target")
			}
			f, err := os.Open(filepath.Join(n.root, "dev", tt.want))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			tbl, err := partition.Read(f, fi.Size())
			if err != nil || tbl.Kind != partition.KindGPT || len(tbl.GPT.Entries) != 2 || tbl.GPT.Entries[1].Name != "config-2" {
				t.Errorf("table after write = %+v, %v", tbl, err)
			}
		})
	}
}

func TestWriteImageNoDiskMatches(t *testing.T) {
	n := newNode(t)
	res := n.runner(t).Run(context.Background(), agentapi.Command{ID: "w", Interface: "deploy", Step: "write_image",
		Args: n.writeArgs(t, &agentapi.RootDeviceHints{Serial: "nope"}, false)})
	if res.State != agentapi.StateFailed || !strings.Contains(res.Error, `serial="nope"`) {
		t.Errorf("result = %+v", res)
	}
}

func TestEraseDevicesMetadata(t *testing.T) {
	n := newNode(t)
	r := n.runner(t)
	if res := r.Run(context.Background(), agentapi.Command{ID: "w", Interface: "deploy", Step: "write_image", Args: n.writeArgs(t, nil, false)}); res.State != agentapi.StateSucceeded {
		t.Fatal(res.Error)
	}
	// A running md array the erase must stop first (no mdadm here: sysfs).
	state := filepath.Join(n.root, "sys", "block", "md127", "md", "array_state")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("active\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := r.Run(context.Background(), agentapi.Command{ID: "e", Interface: "deploy", Step: "erase_devices_metadata"})
	if d := cmp.Diff(agentapi.Result{ID: "e", State: agentapi.StateSucceeded}, res); d != "" {
		t.Fatalf("result (-want +got):\n%s", d)
	}
	if b, _ := os.ReadFile(state); string(b) != "clear" {
		t.Errorf("md127 array_state = %q, want clear", b)
	}
	if got := n.head(t, "vda", int(mib)); !bytes.Equal(got, make([]byte, mib)) {
		t.Error("first MiB of vda not erased")
	}
}

// fakeMdadm creates /dev/md/<name> as a sparse file the size of a member,
// as mdadm does where udev is absent.
func fakeMdadm(_ context.Context, _ string, args ...string) ([]byte, error) {
	if len(args) > 1 && args[0] == "--create" {
		if err := os.MkdirAll(filepath.Dir(args[1]), 0o755); err != nil {
			return nil, err
		}
		f, err := os.Create(args[1])
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return nil, f.Truncate(5*gib - mib)
	}
	return nil, nil
}

func TestRAIDThenWriteImage(t *testing.T) {
	n := newNode(t)
	r := n.runner(t)
	r.raid.Exec = fakeMdadm
	args, _ := json.Marshal(agentapi.RAIDArgs{Volumes: []agentapi.RAIDVolume{{RAIDLevel: "1", Root: true}}})
	res := r.Run(context.Background(), agentapi.Command{ID: "r", Interface: "raid", Step: "apply_configuration", Args: args})
	if d := cmp.Diff(agentapi.Result{ID: "r", State: agentapi.StateSucceeded, RootDevice: "/dev/md/root"}, res); d != "" {
		t.Fatalf("result (-want +got):\n%s", d)
	}
	for _, runner := range []*Runner{r, n.runner(t)} { // the second is a restarted agent
		res = runner.Run(context.Background(), agentapi.Command{ID: "w", Interface: "deploy", Step: "write_image",
			Args: n.writeArgs(t, &agentapi.RootDeviceHints{Name: "vdb"}, false)})
		if d := cmp.Diff(agentapi.Result{ID: "w", State: agentapi.StateSucceeded, RootDevice: "/dev/md/root"}, res); d != "" {
			t.Fatalf("result (-want +got):\n%s", d)
		}
	}
	if got := n.head(t, "md/root", 2048*512+15); !bytes.Equal(got[2048*512:], []byte("tenant os bytes")) {
		t.Error("image not on the root volume")
	}
}

func TestRunFailures(t *testing.T) {
	n := newNode(t)
	tests := []struct {
		name string
		cmd  agentapi.Command
		want string
	}{
		{"unknown step", agentapi.Command{ID: "x", Interface: "bios", Step: "apply_settings"}, `unknown step "bios.apply_settings"`},
		{"missing args", agentapi.Command{ID: "x", Interface: "deploy", Step: "write_image"}, "deploy.write_image: missing arguments"},
		{"bad args", agentapi.Command{ID: "x", Interface: "raid", Step: "create_configuration", Args: json.RawMessage(`{"volumes":3}`)}, "raid.create_configuration: arguments:"},
		{"raid level", agentapi.Command{ID: "x", Interface: "raid", Step: "apply_configuration", Args: json.RawMessage(`{"volumes":[{"raidLevel":"5"}]}`)}, "needs at least 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := n.runner(t).Run(context.Background(), tt.cmd)
			if res.ID != "x" || res.State != agentapi.StateFailed || !strings.Contains(res.Error, tt.want) {
				t.Errorf("result = %+v, want failed with %q", res, tt.want)
			}
		})
	}
}

// TestWriteImageAssemblesAfterReboot: after a reboot into the agent the
// root array exists only on its members; write_image must assemble it
// and write there, never onto a member disk.
func TestWriteImageAssemblesAfterReboot(t *testing.T) {
	n := newNode(t)
	r := n.runner(t)
	r.raid.MDADM = filepath.Join(n.root, "mdadm")
	if err := os.WriteFile(r.raid.MDADM, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	var ran [][]string
	r.raid.Exec = func(ctx context.Context, name string, args ...string) ([]byte, error) {
		ran = append(ran, args)
		if args[0] == "--assemble" {
			return fakeMdadm(ctx, name, "--create", filepath.Join(n.root, "dev", "md", "root"))
		}
		return nil, nil
	}
	res := r.Run(context.Background(), agentapi.Command{ID: "w", Interface: "deploy", Step: "write_image", Args: n.writeArgs(t, nil, false)})
	if d := cmp.Diff(agentapi.Result{ID: "w", State: agentapi.StateSucceeded, RootDevice: "/dev/md/root"}, res); d != "" {
		t.Fatalf("result (-want +got):\n%s", d)
	}
	if d := cmp.Diff([][]string{{"--assemble", "--scan", "--homehost=any"}}, ran); d != "" {
		t.Errorf("mdadm runs (-want +got):\n%s", d)
	}
	if got := n.head(t, "vda", 512); !bytes.Equal(got, make([]byte, 512)) {
		t.Error("image went to a member disk")
	}
}
