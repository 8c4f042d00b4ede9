package partition

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/agent/blockdev/memdisk"
)

const mib = 1 << 20

var (
	espType  = mustGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	diskGUID = mustGUID("6E0B1F2A-3C4D-4E5F-8A9B-0C1D2E3F4A5B")
)

// gptImage is an 8 MiB whole-disk image with an ESP and a root
// partition, the shape of a cloud image.
func gptImage(t testing.TB) memdisk.Disk {
	img := make(memdisk.Disk, 8*mib)
	err := NewGPT(img, int64(len(img)), diskGUID, []GPTEntry{
		{Type: espType, GUID: mustGUID("11111111-2222-4333-8444-555555555555"), FirstLBA: 2048, LastLBA: 4095, Name: "EFI System"},
		{Type: LinuxFS, GUID: mustGUID("11111111-2222-4333-8444-666666666666"), FirstLBA: 4096, LastLBA: 16383 - 34 + 1, Name: "root"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestAddConfigDriveGPT(t *testing.T) {
	disk := make(memdisk.Disk, 256*mib)
	copy(disk, gptImage(t))
	p, err := AddConfigDrive(disk, int64(len(disk)), 400<<10, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The last usable sector is 34 sectors before the end; the start is
	// rounded up to 1 MiB, so the partition is a little under 64 MiB.
	sectors := int64(len(disk)) / 512
	lastUsable := sectors - 34
	start := (lastUsable + 1 - 64*mib/512 + 2047) / 2048 * 2048
	want := Placement{Kind: KindGPT, Offset: start * 512, Size: (lastUsable - start + 1) * 512, Index: 2}
	if d := cmp.Diff(want, p); d != "" {
		t.Errorf("placement (-want +got):\n%s", d)
	}
	tbl, err := Read(disk, int64(len(disk)))
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Kind != KindGPT || len(tbl.GPT.Entries) != 3 {
		t.Fatalf("table = %+v", tbl)
	}
	cd := tbl.GPT.Entries[2]
	if cd.Name != ConfigDriveLabel || cd.Type != LinuxFS || int64(cd.FirstLBA) != start || int64(cd.LastLBA) != lastUsable {
		t.Errorf("config drive entry = %+v", cd)
	}
	if tbl.GPT.AltLBA != uint64(sectors-1) || tbl.GPT.LastUsable != uint64(lastUsable) {
		t.Errorf("primary header alt %d last usable %d", tbl.GPT.AltLBA, tbl.GPT.LastUsable)
	}
	// The backup header at the real end is valid and points at an
	// identical entry array.
	hdr := make([]byte, 512)
	if _, err := disk.ReadAt(hdr, (sectors-1)*512); err != nil {
		t.Fatal(err)
	}
	b, err := parseGPTHeader(hdr, int64(len(disk)), 512)
	if err != nil {
		t.Fatalf("backup header: %v", err)
	}
	if !bytes.Equal(disk[b.EntriesLBA*512:b.EntriesLBA*512+16384], disk[2*512:2*512+16384]) {
		t.Error("backup entries differ from primary")
	}
	// The image's old backup header is cleared.
	if bytes.Contains(disk[8*mib-512:8*mib], []byte(gptSignature)) {
		t.Error("old backup header still at the image end")
	}
	// Protective MBR covers the whole disk now.
	if got := binary.LittleEndian.Uint32(disk[446+12:]); int64(got) != sectors-1 {
		t.Errorf("protective mbr size = %d", got)
	}
	sgdiskVerify(t, disk, true)
}

// sgdiskVerify runs sgdisk -v on the disk as an independent oracle.
func sgdiskVerify(t *testing.T, disk memdisk.Disk, configDrive bool) {
	t.Helper()
	sg, err := exec.LookPath("sgdisk")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sgdisk (gdisk) missing under CI")
		}
		t.Log("sgdisk missing: skipping the oracle")
		return
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sg, "-v", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	if !configDrive {
		return
	}
	out, _ = exec.Command(sg, "-i", "3", p).CombinedOutput()
	if !strings.Contains(string(out), "Partition name: 'config-2'") {
		t.Errorf("sgdisk -i 3:\n%s", out)
	}
}

func mbrImage(parts ...[3]uint32) memdisk.Disk {
	img := make(memdisk.Disk, 8*mib)
	for i, p := range parts {
		e := img[446+16*i:]
		e[4] = byte(p[0])
		binary.LittleEndian.PutUint32(e[8:], p[1])
		binary.LittleEndian.PutUint32(e[12:], p[2])
	}
	img[510], img[511] = 0x55, 0xAA
	return img
}

func TestAddConfigDriveMBR(t *testing.T) {
	disk := make(memdisk.Disk, 100*mib+512*7) // odd size: not a MiB multiple
	copy(disk, mbrImage([3]uint32{0x83, 2048, 14336}))
	disk[446] = 0x80
	p, err := AddConfigDrive(disk, int64(len(disk)), 2*mib, 0)
	if err != nil {
		t.Fatal(err)
	}
	sectors := int64(len(disk)) / 512
	start := (sectors - 64*mib/512 + 2047) / 2048 * 2048
	want := Placement{Kind: KindMBR, Offset: start * 512, Size: (sectors - start) * 512, Index: 1}
	if d := cmp.Diff(want, p); d != "" {
		t.Errorf("placement (-want +got):\n%s", d)
	}
	es, err := ParseMBR(disk[:512])
	if err != nil {
		t.Fatal(err)
	}
	wantEs := []MBREntry{
		{Index: 0, Boot: true, Type: 0x83, StartLBA: 2048, Sectors: 14336},
		{Index: 1, Type: 0x83, StartLBA: uint32(start), Sectors: uint32(sectors - start)},
	}
	if d := cmp.Diff(wantEs, es); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
}

func TestAddConfigDriveErrors(t *testing.T) {
	tests := []struct {
		name string
		disk func() memdisk.Disk
		need int64
	}{
		{"no table", func() memdisk.Disk { return make(memdisk.Disk, 16*mib) }, mib},
		{"mbr full", func() memdisk.Disk {
			d := make(memdisk.Disk, 128*mib)
			copy(d, mbrImage([3]uint32{0x83, 1, 1}, [3]uint32{0x83, 2, 1}, [3]uint32{0x83, 3, 1}, [3]uint32{0x83, 4, 1}))
			return d
		}, mib},
		{"no room after image", func() memdisk.Disk {
			d := make(memdisk.Disk, 8*mib)
			copy(d, gptImage(t))
			return d
		}, mib},
		{"iso too big", func() memdisk.Disk { return make(memdisk.Disk, 16*mib) }, 65 * mib},
		{"partition past disk end", func() memdisk.Disk {
			d := make(memdisk.Disk, 16*mib)
			copy(d, mbrImage([3]uint32{0x83, 2048, 1 << 20}))
			return d
		}, mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.disk()
			if _, err := AddConfigDrive(d, int64(len(d)), tt.need, 0); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestPlace(t *testing.T) {
	tests := []struct {
		name       string
		used, last uint64
		need       int64
		want       uint64
		wantErr    bool
	}{
		{name: "roomy, aligned end", used: 16383, last: 1<<20 - 1, need: mib, want: 1<<20 - 131072},
		{name: "roomy, odd end rounds start up", used: 16383, last: 1<<20 + 5, need: mib, want: 1<<20 - 131072 + 2048},
		{name: "tight: takes all free, unaligned", used: 1000, last: 3000, need: 512 * 1000, want: 1001},
		{name: "tight: aligned when need fits", used: 1000, last: 4095, need: 512 * 2048, want: 2048},
		{name: "too little", used: 1000, last: 1500, need: mib, wantErr: true},
		{name: "used past last", used: 5000, last: 4000, need: 512, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := place(tt.used, tt.last, 512, tt.need)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("place = %d, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("place = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestReadBadGPT(t *testing.T) {
	img := gptImage(t)
	img[512+100] ^= 0xff // outside the header's 92 bytes: still fine
	if _, err := Read(img, int64(len(img))); err != nil {
		t.Fatalf("bytes past the header size: %v", err)
	}
	img[512+60] ^= 0xff // disk GUID: header CRC breaks
	if _, err := Read(img, int64(len(img))); err == nil {
		t.Fatal("want a checksum error")
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(gptImage(f)[:34*512]))
	f.Add([]byte(mbrImage([3]uint32{0x83, 2048, 4096})[:4096]))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		disk := make(memdisk.Disk, mib)
		copy(disk, data)
		if _, err := Read(disk, int64(len(disk))); err != nil {
			return
		}
		// Whatever parsed must not make the writer misbehave.
		_, _ = AddConfigDrive(disk, int64(len(disk)), 4096, 0)
	})
}

func FuzzParseMBR(f *testing.F) {
	f.Add([]byte(mbrImage([3]uint32{0xEE, 1, 100})[:512]))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := ParseMBR(data)
		if err == nil && len(es) > 4 {
			t.Fatalf("%d entries", len(es))
		}
	})
}

func TestMoveBackupGPT(t *testing.T) {
	disk := make(memdisk.Disk, 32*mib)
	copy(disk, gptImage(t))
	moved, err := MoveBackupGPT(disk, int64(len(disk)))
	if err != nil || !moved {
		t.Fatalf("MoveBackupGPT = %v, %v", moved, err)
	}
	tbl, err := Read(disk, int64(len(disk)))
	if err != nil {
		t.Fatal(err)
	}
	sectors := uint64(len(disk) / 512)
	if tbl.GPT.AltLBA != sectors-1 || tbl.GPT.LastUsable != sectors-34 || len(tbl.GPT.Entries) != 2 {
		t.Errorf("header alt %d last usable %d entries %d", tbl.GPT.AltLBA, tbl.GPT.LastUsable, len(tbl.GPT.Entries))
	}
	if bytes.Contains(disk[8*mib-512:8*mib], []byte(gptSignature)) {
		t.Error("old backup header still at the image end")
	}
	sgdiskVerify(t, disk, false)
	// Again: already at the end.
	if moved, err := MoveBackupGPT(disk, int64(len(disk))); err != nil || moved {
		t.Errorf("second MoveBackupGPT = %v, %v", moved, err)
	}
	// MBR: untouched.
	mbr := make(memdisk.Disk, 16*mib)
	copy(mbr, mbrImage([3]uint32{0x83, 2048, 4096}))
	if moved, err := MoveBackupGPT(mbr, int64(len(mbr))); err != nil || moved {
		t.Errorf("MoveBackupGPT on MBR = %v, %v", moved, err)
	}
}

// TestAddConfigDriveNeverOverlapsImage: an image whose table lists no
// partition (or whose partitions end before the image does) on a disk
// with less than 64 MiB to spare: the config drive goes after the image,
// smaller, never over it; no room at all is an error.
func TestAddConfigDriveNeverOverlapsImage(t *testing.T) {
	const image = 48 * mib
	for _, tt := range []struct {
		name    string
		disk    int64
		wantErr bool
	}{
		{name: "room after the image", disk: 63 * mib},
		{name: "no room", disk: image + 16*1024, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			disk := make(memdisk.Disk, tt.disk)
			copy(disk, mbrImage([3]uint32{}))
			p, err := AddConfigDrive(disk, int64(len(disk)), 47*1024, image)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("placed at %d over a %d-byte image", p.Offset, image)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Offset < image || p.Offset+p.Size > tt.disk {
				t.Errorf("placement %+v: want within [%d, %d)", p, image, tt.disk)
			}
		})
	}
}
