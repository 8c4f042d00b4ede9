package qcow2

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"testing"
)

// spec describes a small image for build: one L1 cluster, one L2 table per
// L1 entry that maps anything, then data.
type spec struct {
	version     uint32
	clusterBits uint32
	size        uint64
	data        map[int64][]byte // virtual cluster -> contents (a full cluster)
	compressed  map[int64][]byte // virtual cluster -> contents, stored deflated
	zero        []int64          // virtual clusters with the zero flag
}

// build writes a qcow2 image by the spec in QEMU's layout, without qemu-img,
// so the validation tests run everywhere.
func build(t testing.TB, s spec) []byte {
	t.Helper()
	cs := int64(1) << s.clusterBits
	l2n := cs / 8
	perL1 := cs * l2n
	l1n := (int64(s.size) + perL1 - 1) / perL1
	if l1n*8 > cs {
		t.Fatalf("spec too large for a one-cluster L1")
	}
	hdr := make([]byte, cs)
	be := binary.BigEndian
	be.PutUint32(hdr[0:], magic)
	be.PutUint32(hdr[4:], s.version)
	be.PutUint32(hdr[20:], s.clusterBits)
	be.PutUint64(hdr[24:], s.size)
	be.PutUint32(hdr[36:], uint32(l1n))
	be.PutUint64(hdr[40:], uint64(cs)) // L1 in cluster 1
	if s.version == 3 {
		be.PutUint32(hdr[96:], 4)
		be.PutUint32(hdr[100:], 112)
	}
	file := append(hdr, make([]byte, cs)...) // header, L1
	l2s := map[int64]int64{}                 // l1 index -> L2 table host offset
	entry := func(ci int64, e uint64) {
		li := ci / l2n
		off, ok := l2s[li]
		if !ok {
			off = int64(len(file))
			file = append(file, make([]byte, cs)...)
			l2s[li] = off
			be.PutUint64(file[cs+li*8:], uint64(off)|l2Copied)
		}
		be.PutUint64(file[off+(ci%l2n)*8:], e)
	}
	for ci, b := range s.data {
		off := int64(len(file))
		file = append(file, b...)
		file = append(file, make([]byte, cs-int64(len(b)))...)
		entry(ci, uint64(off)|l2Copied)
	}
	for _, ci := range s.zero {
		entry(ci, l2Zero)
	}
	for ci, b := range s.compressed {
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestCompression)
		w.Write(b)
		w.Close()
		off := int64(len(file)) + 7 // compressed data need not be aligned
		file = append(file, make([]byte, 7)...)
		file = append(file, z.Bytes()...)
		x := 62 - (s.clusterBits - 8)
		sectors := (off+int64(z.Len())-1)/512 - off/512
		entry(ci, l2Compressed|uint64(sectors)<<x|uint64(off))
	}
	return file
}

func fill(n int64, b byte) []byte { return bytes.Repeat([]byte{b}, int(n)) }
