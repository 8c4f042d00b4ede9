package qcow2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// needTool skips when a tool is missing, except in CI where it must exist.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}

// testRaw writes a disk of random, compressible and zero regions whose
// size is not a multiple of 64 KiB, so the last cluster is partial.
func testRaw(t testing.TB, dir string, size int64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, size)
	for off := int64(0); off < size; off += 192 << 10 {
		end := min(off+192<<10, size)
		switch (off / (192 << 10)) % 4 {
		case 0: // random
			for i := off; i < end; i++ {
				b[i] = byte(rng.Uint32())
			}
		case 1: // compressible text
			copy(b[off:end], bytes.Repeat([]byte("metalsync qcow2 "), int(end-off)/16+1))
		case 2: // zeros
		case 3: // sparse bytes in a zero field
			for i := off; i < end; i += 4093 {
				b[i] = 0xa5
			}
		}
	}
	p := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fileSHA(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func openFile(t testing.TB, p string, lim Limits) (*Image, error) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return Open(f, st.Size(), lim)
}

// readAllChunked reads the whole virtual disk in chunks of n bytes.
func readAllChunked(t testing.TB, img *Image, n int) []byte {
	t.Helper()
	out := make([]byte, 0, img.VirtualSize())
	buf := make([]byte, n)
	for off := int64(0); ; {
		got, err := img.ReadAt(buf, off)
		out = append(out, buf[:got]...)
		off += int64(got)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil { // Errorf: callers may run this in goroutines
			t.Errorf("ReadAt(%d): %v", off, err)
			break
		}
	}
	return out
}

func TestReadMatchesQemuImg(t *testing.T) {
	qemuImg := needTool(t, "qemu-img")
	dir := t.TempDir()
	raw := testRaw(t, dir, 8<<20+3*4096)
	type tc struct {
		name string
		args []string // qemu-img convert options
		zero bool     // punch zero clusters with qemu-io write -z
	}
	tests := []tc{
		{name: "v3 64K", args: nil},
		{name: "v3 compressed", args: []string{"-c"}},
		{name: "v3 zstd compressed", args: []string{"-c", "-o", "compression_type=zstd"}},
		{name: "v2", args: []string{"-o", "compat=0.10"}},
		{name: "v2 compressed", args: []string{"-c", "-o", "compat=0.10"}},
		{name: "v3 2M clusters", args: []string{"-o", "cluster_size=2M"}},
		{name: "v3 2M compressed", args: []string{"-c", "-o", "cluster_size=2M"}},
		{name: "v3 2M zstd compressed", args: []string{"-c", "-o", "cluster_size=2M,compression_type=zstd"}},
		{name: "v3 512B clusters", args: []string{"-o", "cluster_size=512"}},
		{name: "v3 512B compressed", args: []string{"-c", "-o", "cluster_size=512"}},
		{name: "v3 zero clusters", zero: true},
		{name: "v3 compressed zero clusters", args: []string{"-c"}, zero: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := filepath.Join(dir, "img"+string(rune('a'+i))+".qcow2")
			args := append([]string{"convert", "-f", "raw", "-O", "qcow2"}, tt.args...)
			run(t, qemuImg, append(args, raw, q)...)
			if tt.zero {
				qemuIO := needTool(t, "qemu-io")
				run(t, qemuIO, "-f", "qcow2", "-c", "write -z 0 1M", "-c", "write -z 3M 128k", "-c", "write -P 0x5a 5M 64k", q)
			}
			oracle := q + ".raw"
			run(t, qemuImg, "convert", "-f", "qcow2", "-O", "raw", q, oracle)
			want := fileSHA(t, oracle)

			img, err := openFile(t, q, Limits{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			for _, chunk := range []int{1 << 20, 77777} {
				got := readAllChunked(t, img, chunk)
				if s := sha256.Sum256(got); hex.EncodeToString(s[:]) != want {
					t.Fatalf("chunk %d: sha256 %x, qemu-img says %s", chunk, s, want)
				}
			}
			checkExtents(t, img, oracle)
		})
	}
}

// checkExtents checks that everything outside the reported extents is zero
// in the oracle's raw conversion.
func checkExtents(t *testing.T, img *Image, oracle string) {
	t.Helper()
	want, err := os.ReadFile(oracle)
	if err != nil {
		t.Fatal(err)
	}
	var next int64
	for e, err := range img.Extents() {
		if err != nil {
			t.Fatalf("Extents: %v", err)
		}
		if e.Offset < next || e.Length <= 0 || e.Offset+e.Length > img.VirtualSize() {
			t.Fatalf("extent %+v out of order or bounds (next %d)", e, next)
		}
		if i := bytes.IndexFunc(want[next:e.Offset], func(r rune) bool { return r != 0 }); i >= 0 {
			t.Fatalf("hole %d..%d has data at %d", next, e.Offset, next+int64(i))
		}
		next = e.Offset + e.Length
	}
	if bytes.ContainsFunc(want[next:], func(r rune) bool { return r != 0 }) {
		t.Fatalf("tail hole from %d has data", next)
	}
}

func TestRefusesQemuFeatures(t *testing.T) {
	qemuImg := needTool(t, "qemu-img")
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	run(t, qemuImg, "create", "-f", "qcow2", p("base.qcow2"), "1M")
	tests := []struct {
		name string
		args []string
		lim  Limits
		want error
	}{
		{name: "backing file", args: []string{"create", "-f", "qcow2", "-b", p("base.qcow2"), "-F", "qcow2", p("overlay.qcow2")}, want: ErrUnsupported},
		{name: "external data file", args: []string{"create", "-f", "qcow2", "-o", "data_file=" + p("data.raw"), p("data.qcow2"), "1M"}, want: ErrUnsupported},
		{name: "encrypted", args: []string{"create", "-f", "qcow2", "--object", "secret,id=s0,data=hunter2", "-o", "encrypt.format=luks,encrypt.key-secret=s0", p("luks.qcow2"), "1M"}, want: ErrUnsupported},
		{name: "extended L2", args: []string{"create", "-f", "qcow2", "-o", "extended_l2=on", p("ext.qcow2"), "1M"}, want: ErrUnsupported},
		{name: "virtual size above limit", args: []string{"create", "-f", "qcow2", p("big.qcow2"), "2T"}, lim: Limits{MaxVirtualSize: 1 << 40}, want: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// LUKS creation times PBKDF2 and fails now and then on a
			// loaded machine ("Unable to get accurate CPU usage").
			for try := 1; ; try++ {
				out, err := exec.Command(qemuImg, tt.args...).CombinedOutput()
				if err == nil {
					break
				}
				if try == 5 || !bytes.Contains(out, []byte("accurate CPU usage")) {
					t.Fatalf("qemu-img %q: %v\n%s", tt.args, err, out)
				}
			}
			file := tt.args[len(tt.args)-1]
			if file[0] != '/' { // a size
				file = tt.args[len(tt.args)-2]
			}
			_, err := openFile(t, file, tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: got %v, want %v", err, tt.want)
			}
			t.Log(err)
		})
	}
}
