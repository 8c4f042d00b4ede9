package imagewrite

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kdomanski/iso9660"

	"metalsync.dev/metalsync/agent/partition"

	"metalsync.dev/metalsync/agent/blockdev/memdisk"
)

const mib = 1 << 20

// server is a fake daemon: it serves files from memory at an offset and
// can cut the first connections short.
type server struct {
	mu    sync.Mutex
	files map[string][]byte
	// cuts[i] > 0 cuts the i-th open after that many bytes.
	cuts    []int
	opens   []int64 // offsets asked for
	failErr error   // Open fails with it when set
}

func (s *server) Open(_ context.Context, path string, off int64) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := len(s.opens)
	s.opens = append(s.opens, off)
	if s.failErr != nil {
		return nil, s.failErr
	}
	b, ok := s.files[path]
	if !ok {
		return nil, fmt.Errorf("404 %s", path)
	}
	if off > int64(len(b)) {
		return nil, fmt.Errorf("416 range %d", off)
	}
	var r io.Reader = bytes.NewReader(b[off:])
	if i < len(s.cuts) && s.cuts[i] > 0 {
		r = io.MultiReader(io.LimitReader(r, int64(s.cuts[i])), errReader{})
	}
	return io.NopCloser(r), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// testImage is a whole-disk-like image: a boot sector, a run of zero
// blocks and random data, size not a block multiple.
func testImage(size int) []byte {
	b := make([]byte, size)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		if i < 512 || i >= 8*mib {
			b[i] = byte(rnd.Uint32() | 1)
		}
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func disk(t testing.TB, size int64) string {
	p := filepath.Join(t.TempDir(), "disk")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// Old content everywhere: the write must not rely on a zero disk.
	old := bytes.Repeat([]byte{0xEE}, int(size))
	if _, err := f.Write(old); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWrite(t *testing.T) {
	img := testImage(9*mib + 777)
	gzimg := gz(img)
	tests := []struct {
		name      string
		served    []byte // bytes on the wire
		sha       string
		size      int64
		cuts      []int
		diskSize  int64
		wantOpens []int64
		wantGzip  bool
		wantErr   string
		wantWiped bool // first/last MiB of the written range zeroed
	}{
		{name: "raw", served: img, wantOpens: []int64{0}},
		{name: "gzip", served: gzimg, wantGzip: true, wantOpens: []int64{0}},
		{name: "resume raw after two cuts", served: img, cuts: []int{5 * mib, 3 * mib}, wantOpens: []int64{0, 5 * mib, 8 * mib}},
		{name: "resume gzip mid-stream", served: gzimg, cuts: []int{len(gzimg) / 2}, wantGzip: true, wantOpens: []int64{0, int64(len(gzimg) / 2)}},
		{name: "checksum mismatch", served: img, sha: strings.Repeat("ab", 32), wantErr: "checksum mismatch: got sha256 " + sum(img) + ", want " + strings.Repeat("ab", 32), wantWiped: true},
		{name: "served longer than announced", served: img, size: int64(len(img)) - 1, wantErr: "larger than its announced", wantWiped: true},
		{name: "served shorter than announced", served: img, size: int64(len(img)) + 1, wantErr: "giving up", wantWiped: true},
		{name: "too many cuts", served: img, cuts: slices.Repeat([]int{mib}, DefaultRetries+2), wantErr: "connection reset", wantWiped: true},
		{name: "image larger than disk", served: img, diskSize: 6 * mib, wantErr: "does not fit", wantWiped: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &server{files: map[string][]byte{"/img": tt.served}, cuts: tt.cuts}
			w := &Writer{Fetch: srv, Log: slog.New(slog.DiscardHandler)}
			ds := tt.diskSize
			if ds == 0 {
				ds = 12 * mib
			}
			target := disk(t, ds)
			im := Image{Path: "/img", SHA256: sum(tt.served), Size: int64(len(tt.served))}
			if tt.sha != "" {
				im.SHA256 = tt.sha
			}
			if tt.size != 0 {
				im.Size = tt.size
			}
			st, err := w.Write(context.Background(), target, im)
			got, rerr := os.ReadFile(target)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if tt.wantWiped {
					if !bytes.Equal(got[:mib], make([]byte, mib)) {
						t.Error("first MiB not zeroed after a failed write")
					}
					if w := st.Written; w > mib && !bytes.Equal(got[w-mib:w], make([]byte, mib)) {
						t.Errorf("last MiB of %d written bytes not zeroed", w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:len(img)], img) {
				t.Error("disk does not hold the image")
			}
			if !bytes.Equal(got[len(img):], bytes.Repeat([]byte{0xEE}, len(got)-len(img))) {
				t.Error("bytes past the image changed")
			}
			if st.Gzip != tt.wantGzip || st.Written != int64(len(img)) || st.Received != int64(len(tt.served)) {
				t.Errorf("stats = %+v", st)
			}
			if st.ZeroBlocks != 1 { // bytes 4-8 MiB of the image are zero
				t.Errorf("zero blocks = %d, want 1", st.ZeroBlocks)
			}
			if d := cmp.Diff(tt.wantOpens, srv.opens); d != "" {
				t.Errorf("opens (-want +got):\n%s", d)
			}
		})
	}
}

func TestWriteBadArgs(t *testing.T) {
	w := &Writer{Fetch: &server{}, Log: slog.New(slog.DiscardHandler)}
	target := disk(t, mib)
	for _, im := range []Image{
		{Path: "/img", SHA256: "xyz", Size: 10},
		{Path: "/img", SHA256: strings.Repeat("0", 64), Size: 0},
	} {
		if _, err := w.Write(context.Background(), target, im); err == nil {
			t.Errorf("%+v accepted", im)
		}
	}
	if _, err := w.Write(context.Background(), filepath.Join(t.TempDir(), "nope"), Image{Path: "/img", SHA256: strings.Repeat("0", 64), Size: 1}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing target: err = %v", err)
	}
}

func TestWriteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv := &server{failErr: context.Canceled}
	w := &Writer{Fetch: srv, Log: slog.New(slog.DiscardHandler)}
	_, err := w.Write(ctx, disk(t, mib), Image{Path: "/img", SHA256: strings.Repeat("0", 64), Size: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(srv.opens) != 1 {
		t.Errorf("opens = %v: a cancelled write must not retry", srv.opens)
	}
}

func TestAllZero(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 4096} {
		b := make([]byte, n)
		if !allZero(b) {
			t.Errorf("allZero(%d zeros) = false", n)
		}
		if n > 0 {
			b[n-1] = 1
			if allZero(b) {
				t.Errorf("allZero with last byte set (n=%d) = true", n)
			}
		}
	}
}

// BenchmarkWrite256MiB writes a 256 MiB raw image (no zero blocks) from
// memory to a file, as `dd if=img of=disk bs=4M conv=fsync` would.
func BenchmarkWrite256MiB(b *testing.B) {
	img := make([]byte, 256*mib)
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(img); i += 8 {
		v := rnd.Uint64() | 1
		for j := range 8 {
			img[i+j] = byte(v >> (8 * j))
		}
	}
	srv := &server{files: map[string][]byte{"/img": img}}
	w := &Writer{Fetch: srv, Log: slog.New(slog.DiscardHandler)}
	dir := b.TempDir()
	target := filepath.Join(dir, "disk")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(target, int64(len(img))); err != nil {
		b.Fatal(err)
	}
	im := Image{Path: "/img", SHA256: sum(img), Size: int64(len(img))}
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := w.Write(context.Background(), target, im); err != nil {
			b.Fatal(err)
		}
	}
}

func TestConfigDriveGPT(t *testing.T) {
	iso := configDriveISO(t)
	srv := &server{files: map[string][]byte{"/cd": iso}}
	w := &Writer{Fetch: srv, Log: slog.New(slog.DiscardHandler)}
	target := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(target, 72*mib); err != nil {
		t.Fatal(err)
	}
	img := gptImage(t)
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(img, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p, err := w.ConfigDrive(context.Background(), target, "/cd", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[p.Offset:p.Offset+int64(len(iso))], iso) {
		t.Error("partition does not hold the ISO")
	}
	if tail := got[p.Offset+int64(len(iso)) : p.Offset+p.Size]; !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Error("rest of the partition not zeroed")
	}
	if p.Offset+p.Size > 72*mib || p.Size > 64*mib || p.Offset < 4*mib {
		t.Errorf("placement %+v outside the free space", p)
	}
	// The ISO reads back from the partition by its label.
	r, err := iso9660.OpenImage(bytes.NewReader(got[p.Offset : p.Offset+p.Size]))
	if err != nil {
		t.Fatal(err)
	}
	if label, err := r.Label(); err != nil || label != "config-2" {
		t.Errorf("label = %q, %v", label, err)
	}
}

func TestConfigDriveErrors(t *testing.T) {
	tests := map[string]int64{
		"not an iso": 40000,
		"too large":  64*mib + 1,
	}
	for name, size := range tests {
		t.Run(name, func(t *testing.T) {
			srv := &endless{size: size}
			w := &Writer{Fetch: srv, Log: slog.New(slog.DiscardHandler)}
			if _, err := w.ConfigDrive(context.Background(), disk(t, 16*mib), "/cd", 0); err == nil {
				t.Fatal("want an error")
			}
			if srv.opens != 1 {
				t.Errorf("opens = %d, want one (not retried)", srv.opens)
			}
		})
	}
}

// endless serves size zero bytes for any path.
type endless struct {
	size  int64
	opens int
}

func (e *endless) Open(context.Context, string, int64) (io.ReadCloser, error) {
	e.opens++
	return io.NopCloser(io.LimitReader(zeros{}, e.size)), nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func configDriveISO(t *testing.T) []byte {
	t.Helper()
	iw, err := iso9660.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer iw.Cleanup()
	if err := iw.AddFile(strings.NewReader(`{"uuid":"n1"}`), "openstack/latest/meta_data.json"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := iw.WriteTo(&buf, "config-2"); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gptImage is a 4 MiB whole-disk image with one partition.
func gptImage(t *testing.T) []byte {
	t.Helper()
	img := make(memdisk.Disk, 4*mib)
	if err := partition.NewGPT(img, 4*mib, [16]byte{9}, []partition.GPTEntry{
		{Type: partition.LinuxFS, FirstLBA: 2048, LastLBA: 8191 - 33, Name: "root"},
	}); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestWriteLoopDevice writes an image with a zero block and a config
// drive onto a real block device (a loop device): BLKGETSIZE64,
// BLKZEROOUT and BLKRRPART run for real. Root only, where loop devices
// work.
func TestWriteLoopDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices")
	}
	backing := disk(t, 16*mib) // 0xEE everywhere: zero blocks must really be zeroed
	out, err := exec.Command("losetup", "-f", "--show", backing).Output()
	if err != nil {
		t.Skipf("loop devices unavailable: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })

	img := make([]byte, 4*mib+4*mib) // GPT image, then a zero block
	copy(img, gptImage(t))
	srv := &server{files: map[string][]byte{"/img": img, "/cd": configDriveISO(t)}}
	w := &Writer{Fetch: srv, Log: slog.New(slog.DiscardHandler)}
	st, err := w.Write(context.Background(), loop, Image{Path: "/img", SHA256: sum(img), Size: int64(len(img))})
	if err != nil {
		t.Fatal(err)
	}
	if st.ZeroBlocks != 1 {
		t.Errorf("zero blocks = %d, want 1", st.ZeroBlocks)
	}
	got, err := os.ReadFile(backing)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[34*512:4*mib-33*512], img[34*512:4*mib-33*512]) {
		t.Error("backing file does not hold the image")
	}
	if !bytes.Equal(got[4*mib:8*mib], make([]byte, 4*mib)) {
		t.Error("zero block not zeroed on the device")
	}
	p, err := w.ConfigDrive(context.Background(), loop, "/cd", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err = os.ReadFile(backing); err != nil {
		t.Fatal(err)
	}
	tbl, err := partition.Read(bytes.NewReader(got), int64(len(got)))
	if err != nil || tbl.Kind != partition.KindGPT || len(tbl.GPT.Entries) != 2 {
		t.Errorf("table = %+v, %v", tbl, err)
	}
	// The partition goes after the image's last partition (the image's
	// zero tail is free space), up to the disk end.
	if p.Offset < 4*mib-33*512 || p.Offset+p.Size > 16*mib {
		t.Errorf("config drive at %+v", p)
	}
}
