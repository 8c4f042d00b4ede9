package wipe

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/agent/hw"
	"metalsync.dev/metalsync/agent/partition"
)

const mib = 1 << 20

func TestRegions(t *testing.T) {
	tests := []struct {
		size int64
		want []Region
	}{
		{0, nil},
		{-1, nil},
		{1, []Region{{0, 1}}},
		{512, []Region{{0, 512}}},
		{mib, []Region{{0, mib}}},
		{2 * mib, []Region{{0, 2 * mib}}},
		{2*mib + 1, []Region{{0, mib}, {mib + 1, mib}}},
		{3*mib + 7, []Region{{0, mib}, {2*mib + 7, mib}}},
		{10*mib + 512, []Region{{0, mib}, {9*mib + 512, mib}}},
	}
	for _, tt := range tests {
		if d := cmp.Diff(tt.want, Regions(tt.size)); d != "" {
			t.Errorf("Regions(%d) (-want +got):\n%s", tt.size, d)
		}
	}
}

// md superblock magic, little-endian on disk.
var mdMagic = []byte{0xfc, 0x4e, 0x2b, 0xa9}

// filled writes a file of size bytes of 0xAA.
func filled(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xAA}, int(size)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func putMD(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(mdMagic, off); err != nil {
		t.Fatal(err)
	}
}

// checkWiped asserts the first and last MiB of path are zero and the
// rest still holds the 0xAA filler.
func checkWiped(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(b))
	for _, r := range Regions(n) {
		if bytes.Count(b[r.Off:r.Off+r.Len], []byte{0}) != int(r.Len) {
			t.Errorf("%s: %d bytes at %d not zeroed", path, r.Len, r.Off)
		}
	}
	if n > 2*mib {
		mid := b[mib : n-mib]
		if bytes.Count(mid, []byte{0xAA}) != len(mid) {
			t.Errorf("%s: bytes between the regions changed", path)
		}
	}
	if bytes.Contains(b, mdMagic) {
		t.Errorf("%s: md superblock magic survived", path)
	}
}

func TestMetadataFiles(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "sda")
	part1 := filepath.Join(dir, "sda1")
	part2 := filepath.Join(dir, "sda2")
	filled(t, disk, 16*mib+3*512) // odd size: not a MiB multiple
	filled(t, part1, 5*mib)
	filled(t, part2, mib+512) // smaller than two regions
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := partition.NewGPT(f, 16*mib+3*512, [16]byte{1}, []partition.GPTEntry{
		{Type: partition.LinuxFS, FirstLBA: 2048, LastLBA: 4095, Name: "a"},
	}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	putMD(t, part1, 4096)          // md 1.2: 4 KiB from the start
	putMD(t, part1, 5*mib-8192)    // md 1.0: 8 KiB before the end
	putMD(t, disk, 16*mib-64*1024) // md 0.90: last 64 KiB-aligned block
	disks := []hw.Disk{{Dev: "sda", Path: disk, Partitions: []hw.Partition{
		{Dev: "sda1", Path: part1}, {Dev: "sda2", Path: part2},
	}}}
	if err := Metadata(context.Background(), slog.New(slog.DiscardHandler), disks); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{disk, part1, part2} {
		checkWiped(t, p)
	}
	d, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tbl, err := partition.Read(d, 16*mib+3*512)
	if err != nil || tbl.Kind != partition.KindNone {
		t.Errorf("table after erase = %+v, %v; want none", tbl, err)
	}
}

func TestMetadataMissingDevice(t *testing.T) {
	disks := []hw.Disk{{Dev: "sdq", Path: filepath.Join(t.TempDir(), "sdq")}}
	err := Metadata(context.Background(), slog.New(slog.DiscardHandler), disks)
	if err == nil || !strings.Contains(err.Error(), "sdq") {
		t.Fatalf("err = %v, want one naming the device", err)
	}
}

func TestMetadataCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := filepath.Join(t.TempDir(), "sda")
	filled(t, p, 4*mib)
	if err := Metadata(ctx, slog.New(slog.DiscardHandler), []hw.Disk{{Dev: "sda", Path: p}}); err == nil {
		t.Fatal("want the context's error")
	}
}

// TestMetadataLoopDevice erases a real block device (a loop device),
// exercising BLKGETSIZE64, BLKZEROOUT and BLKRRPART. It runs only as root
// where loop devices work. (Partition nodes of loop devices do not appear
// in this container, so partitions are covered by the file test.)
func TestMetadataLoopDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	filled(t, img, 8*mib)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = partition.NewGPT(f, 8*mib, [16]byte{2}, []partition.GPTEntry{
		{Type: partition.LinuxFS, FirstLBA: 2048, LastLBA: 4095, Name: "data"},
	})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	putMD(t, img, 4096)
	putMD(t, img, 8*mib-8192)
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Skipf("loop devices unavailable: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	disks := []hw.Disk{{Dev: filepath.Base(loop), Path: loop}}
	if err := Metadata(context.Background(), slog.New(slog.DiscardHandler), disks); err != nil {
		t.Fatal(err)
	}
	checkWiped(t, img)
	if mdadm, err := exec.LookPath("mdadm"); err == nil {
		out, _ := exec.Command(mdadm, "--examine", loop).CombinedOutput()
		if !strings.Contains(string(out), "No md superblock") {
			t.Errorf("mdadm --examine %s:\n%s", loop, out)
		}
	}
}
