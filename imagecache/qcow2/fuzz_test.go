package qcow2

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds hostile images to Open, Extents and ReadAt: no panics, no
// unbounded allocations, and the extents must cover every non-zero byte.
// The seeds in testdata/ were made by qemu-img (cluster_size=512, a 24 KiB
// disk): plain, deflate, zstd, v2 and zero clusters. Inputs are large, so
// run it with a short -fuzzminimizetime (e.g. 2s).
func FuzzOpen(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.qcow2")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(build(f, spec{version: 3, clusterBits: 9, size: 4096,
		data: map[int64][]byte{0: fill(512, 1)}, compressed: map[int64][]byte{2: fill(512, 2)}, zero: []int64{3}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Open(bytes.NewReader(b), int64(len(b)), Limits{MaxVirtualSize: 64 << 10}) // seeds are 24 KiB; keeps execs fast
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("Open: unclassified error %v", err)
			}
			return
		}
		disk := make([]byte, img.VirtualSize())
		if _, err := img.ReadAt(disk, 0); err != nil && !errors.Is(err, io.EOF) {
			return // refused a table or cluster: fine
		}
		var next int64
		for e, err := range img.Extents() {
			if err != nil {
				t.Fatalf("Extents failed after ReadAt succeeded: %v", err)
			}
			if e.Offset < next || e.Length <= 0 || e.Offset+e.Length > img.VirtualSize() {
				t.Fatalf("bad extent %+v after %d", e, next)
			}
			if bytes.ContainsFunc(disk[next:e.Offset], func(r rune) bool { return r != 0 }) {
				t.Fatalf("data in the hole %d..%d", next, e.Offset)
			}
			next = e.Offset + e.Length
		}
		if bytes.ContainsFunc(disk[next:], func(r rune) bool { return r != 0 }) {
			t.Fatalf("data in the tail hole from %d", next)
		}
	})
}
