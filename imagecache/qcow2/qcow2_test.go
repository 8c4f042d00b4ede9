package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadBuilt(t *testing.T) {
	const cs = 4096
	for _, version := range []uint32{2, 3} {
		s := spec{
			version: version, clusterBits: 12, size: 10*cs + 100,
			data:       map[int64][]byte{0: fill(cs, 1), 1: fill(cs, 2), 4: fill(cs, 4), 10: fill(cs, 10)},
			compressed: map[int64][]byte{5: fill(cs, 5), 6: fill(cs, 6)},
		}
		if version == 3 {
			s.zero = []int64{2}
		}
		file := build(t, s)
		img, err := Open(bytes.NewReader(file), int64(len(file)), Limits{})
		if err != nil {
			t.Fatalf("v%d Open: %v", version, err)
		}
		want := make([]byte, s.size)
		for ci, b := range s.data {
			copy(want[ci*cs:], b)
		}
		for ci, b := range s.compressed {
			copy(want[ci*cs:], b)
		}
		for _, chunk := range []int{1, 1000, cs, 3 * cs, 1 << 20} {
			got := readAllChunked(t, img, chunk)
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d chunk %d: read differs from spec", version, chunk)
			}
		}
		var got []Extent
		for e, err := range img.Extents() {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		wantExt := []Extent{{0, 2 * cs}, {4 * cs, 3 * cs}, {10 * cs, 100}}
		if d := cmp.Diff(wantExt, got); d != "" {
			t.Errorf("v%d Extents (-want +got):\n%s", version, d)
		}
	}
}

func TestReadAtBounds(t *testing.T) {
	file := build(t, spec{version: 3, clusterBits: 9, size: 1000, data: map[int64][]byte{1: fill(512, 7)}})
	img, err := Open(bytes.NewReader(file), int64(len(file)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 600)
	n, err := img.ReadAt(p, 900)
	if n != 100 || !errors.Is(err, io.EOF) || p[0] != 7 {
		t.Errorf("ReadAt past the end: n=%d err=%v p[0]=%d", n, err, p[0])
	}
	if n, err := img.ReadAt(p, 1000); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt at the end: n=%d err=%v", n, err)
	}
	if _, err := img.ReadAt(p, -1); err == nil {
		t.Error("ReadAt(-1) succeeded")
	}
}

// TestRefusesMalformed corrupts one field of a valid image per case.
func TestRefusesMalformed(t *testing.T) {
	const cs = 4096
	base := spec{version: 3, clusterBits: 12, size: 4 * cs,
		data: map[int64][]byte{0: fill(cs, 1)}, compressed: map[int64][]byte{1: fill(cs, 2)}}
	be := binary.BigEndian
	l2 := func(f []byte) int64 { return int64(be.Uint64(f[cs:]) & l1OffsetMask) }
	tests := []struct {
		name   string
		mutate func(f []byte) []byte
		lim    Limits
		atOpen bool // refused by Open, not later by reads
		want   error
	}{
		{name: "bad magic", mutate: func(f []byte) []byte { f[3] = 0; return f }, atOpen: true, want: ErrInvalid},
		{name: "short file", mutate: func(f []byte) []byte { return f[:50] }, atOpen: true, want: ErrInvalid},
		{name: "version 4", mutate: func(f []byte) []byte { be.PutUint32(f[4:], 4); return f }, atOpen: true, want: ErrUnsupported},
		{name: "backing file", mutate: func(f []byte) []byte { be.PutUint64(f[8:], 512); be.PutUint32(f[16:], 4); return f }, atOpen: true, want: ErrUnsupported},
		{name: "cluster bits 8", mutate: func(f []byte) []byte { be.PutUint32(f[20:], 8); return f }, atOpen: true, want: ErrInvalid},
		{name: "cluster bits 22", mutate: func(f []byte) []byte { be.PutUint32(f[20:], 22); return f }, atOpen: true, want: ErrInvalid},
		{name: "size above limit", mutate: func(f []byte) []byte { return f }, lim: Limits{MaxVirtualSize: cs}, atOpen: true, want: ErrInvalid},
		{name: "size above default limit", mutate: func(f []byte) []byte { be.PutUint64(f[24:], 1<<62); return f }, atOpen: true, want: ErrInvalid},
		{name: "encrypted", mutate: func(f []byte) []byte { be.PutUint32(f[32:], 1); return f }, atOpen: true, want: ErrUnsupported},
		{name: "L1 too small", mutate: func(f []byte) []byte { be.PutUint64(f[24:], 1<<40); return f }, atOpen: true, want: ErrInvalid},
		{name: "L1 beyond file", mutate: func(f []byte) []byte { be.PutUint64(f[40:], 1<<30); return f }, atOpen: true, want: ErrInvalid},
		{name: "L1 misaligned", mutate: func(f []byte) []byte { be.PutUint64(f[40:], cs+8); return f }, atOpen: true, want: ErrInvalid},
		{name: "L1 huge", mutate: func(f []byte) []byte { be.PutUint32(f[36:], 1<<30); return f }, atOpen: true, want: ErrInvalid},
		{name: "unknown incompatible", mutate: func(f []byte) []byte { be.PutUint64(f[72:], 1<<40); return f }, atOpen: true, want: ErrUnsupported},
		{name: "corrupt bit", mutate: func(f []byte) []byte { be.PutUint64(f[72:], incompatCorrupt); return f }, atOpen: true, want: ErrInvalid},
		{name: "data file bit", mutate: func(f []byte) []byte { be.PutUint64(f[72:], incompatDataFile); return f }, atOpen: true, want: ErrUnsupported},
		{name: "compression type 2", mutate: func(f []byte) []byte { be.PutUint64(f[72:], incompatCompression); f[104] = 2; return f }, atOpen: true, want: ErrUnsupported},
		{name: "zstd without bit", mutate: func(f []byte) []byte { f[104] = 1; return f }, atOpen: true, want: ErrInvalid},
		{name: "refcount order 7", mutate: func(f []byte) []byte { be.PutUint32(f[96:], 7); return f }, atOpen: true, want: ErrInvalid},
		{name: "header length odd", mutate: func(f []byte) []byte { be.PutUint32(f[100:], 105); return f }, atOpen: true, want: ErrInvalid},
		{name: "L2 misaligned", mutate: func(f []byte) []byte { be.PutUint64(f[cs:], uint64(l2(f)+512)); return f }, atOpen: true, want: ErrInvalid},
		{name: "L2 beyond file", mutate: func(f []byte) []byte { be.PutUint64(f[cs:], 1<<40); return f }, atOpen: true, want: ErrInvalid},
		{name: "L1 reserved bits", mutate: func(f []byte) []byte { f[cs+7] |= 1; return f }, atOpen: true, want: ErrInvalid},
		{name: "data beyond file", mutate: func(f []byte) []byte { be.PutUint64(f[l2(f):], 1<<40); return f }, want: ErrInvalid},
		{name: "data misaligned", mutate: func(f []byte) []byte { be.PutUint64(f[l2(f):], 3*cs+512); return f }, want: ErrInvalid},
		{name: "L2 reserved bits", mutate: func(f []byte) []byte { be.PutUint64(f[l2(f):], 3*cs|2); return f }, want: ErrInvalid},
		{name: "compressed beyond file", mutate: func(f []byte) []byte { be.PutUint64(f[l2(f)+8:], l2Compressed|1<<30); return f }, want: ErrInvalid},
		{name: "compressed garbage", mutate: func(f []byte) []byte { be.PutUint64(f[l2(f)+8:], l2Compressed|0); return f }, want: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.mutate(build(t, base))
			img, err := Open(bytes.NewReader(f), int64(len(f)), tt.lim)
			if tt.atOpen {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Open: got %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			_, err = img.ReadAt(make([]byte, 4*cs), 0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadAt: got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestConcurrentReadAt: ReadAt shares the L2 and decompression caches
// between callers, as io.ReaderAt allows parallel calls.
func TestConcurrentReadAt(t *testing.T) {
	const cs = 512
	s := spec{version: 3, clusterBits: 9, size: 200 * cs, data: map[int64][]byte{}, compressed: map[int64][]byte{}}
	want := make([]byte, s.size)
	for ci := int64(0); ci < 200; ci += 3 {
		b := fill(cs, byte(ci))
		if ci%2 == 0 {
			s.data[ci] = b
		} else {
			s.compressed[ci] = b
		}
		copy(want[ci*cs:], b)
	}
	file := build(t, s)
	img, err := Open(bytes.NewReader(file), int64(len(file)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, chunk := range []int{100, 512, 1000, 4096} {
		wg.Go(func() {
			if got := readAllChunked(t, img, chunk); !bytes.Equal(got, want) {
				t.Errorf("chunk %d: concurrent read differs", chunk)
			}
		})
	}
	wg.Wait()
}
