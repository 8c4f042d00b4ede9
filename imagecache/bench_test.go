package imagecache

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"metalsync.dev/metalsync/imagecache/qcow2"
)

// benchImage writes a 256 MiB qcow2 whose every other MiB holds data
// (half allocated) and returns its path. With -c the data is 4 random bits
// a byte, so clusters really compress (qemu-img stores incompressible
// clusters plainly).
func benchImage(b *testing.B, opts ...string) string {
	b.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatalf("qemu-img is required in CI: %v", err)
		}
		b.Skip("qemu-img not installed")
	}
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	raw := make([]byte, 256<<20)
	for off := 0; off < len(raw); off += 2 << 20 {
		for i := off; i < off+1<<20; i += 8 {
			v := rng.Uint64()
			for k := range 8 {
				raw[i+k] = byte(v >> (8 * k))
				if len(opts) > 0 && opts[0] == "-c" {
					raw[i+k] = 'a' + raw[i+k]&15
				}
			}
		}
	}
	in, out := filepath.Join(dir, "in.raw"), filepath.Join(dir, "bench.qcow2")
	if err := os.WriteFile(in, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	args := append(append([]string{"convert", "-f", "raw", "-O", "qcow2"}, opts...), in, out)
	if o, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		b.Fatalf("qemu-img: %v\n%s", err, o)
	}
	os.Remove(in)
	return out
}

// BenchmarkConvert converts the qcow2 to a sparse raw, hashing it, as
// Prepare does. Compare with BenchmarkQemuImgConvert.
func BenchmarkConvert(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []string
	}{{"plain", nil}, {"compressed", []string{"-c"}}} {
		b.Run(tc.name, func(b *testing.B) {
			src := benchImage(b, tc.opts...)
			f, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			dst := filepath.Join(b.TempDir(), "out.raw")
			b.SetBytes(256 << 20)
			for b.Loop() {
				img, err := qcow2.Open(f, st.Size(), qcow2.Limits{})
				if err != nil {
					b.Fatal(err)
				}
				out, err := os.Create(dst)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := convert(b.Context(), img, out); err != nil {
					b.Fatal(err)
				}
				out.Close()
				os.Remove(dst)
			}
		})
	}
}

// BenchmarkQemuImgConvert is the oracle's speed on the same images
// (it does not hash; BenchmarkConvert does).
func BenchmarkQemuImgConvert(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []string
	}{{"plain", nil}, {"compressed", []string{"-c"}}} {
		b.Run(tc.name, func(b *testing.B) {
			src := benchImage(b, tc.opts...)
			dst := filepath.Join(b.TempDir(), "out.raw")
			b.SetBytes(256 << 20)
			for b.Loop() {
				if o, err := exec.Command("qemu-img", "convert", "-f", "qcow2", "-O", "raw", src, dst).CombinedOutput(); err != nil {
					b.Fatalf("qemu-img: %v\n%s", err, o)
				}
				os.Remove(dst)
			}
		})
	}
}
