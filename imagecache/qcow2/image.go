package qcow2

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Image is an opened qcow2 image. ReadAt is safe for concurrent use.
type Image struct {
	r           io.ReaderAt
	fileSize    int64
	h           header
	clusterSize int64
	l2Entries   int64
	// l1 holds the validated L2 table offsets (0: unallocated) for the
	// entries the virtual size needs; entries beyond it are never read.
	l1 []int64

	mu sync.Mutex
	// l2Off is the host offset of the table cached in l2 (guarded by mu).
	l2Off int64
	l2    []uint64 // guarded by mu
	// cluster is the last decompressed cluster (virtual index cIndex);
	// ReadAt callers rarely align to clusters, so keep it (guarded by mu).
	cIndex  int64
	cluster []byte
	in      []byte        // compressed input buffer (guarded by mu)
	inflate io.ReadCloser // reused deflate reader (guarded by mu)
	zstd    *zstd.Decoder // reused zstd decoder (guarded by mu)
}

// Open validates the header and the L1 table of the qcow2 image in r,
// whose length is size. No data cluster is read.
func Open(r io.ReaderAt, size int64, lim Limits) (*Image, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: negative file size", ErrInvalid)
	}
	hb := make([]byte, v3HeaderLen+1)
	n, err := r.ReadAt(hb, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("qcow2: read header: %w", err)
	}
	h, err := parseHeader(hb[:min(int64(n), size)], size, lim)
	if err != nil {
		return nil, err
	}
	img := &Image{
		r:           r,
		fileSize:    size,
		h:           h,
		clusterSize: 1 << h.clusterBits,
		l2Entries:   1 << (h.clusterBits - 3),
		cIndex:      -1,
	}
	if err := img.readL1(); err != nil {
		return nil, err
	}
	return img, nil
}

// VirtualSize is the size of the disk the image holds.
func (img *Image) VirtualSize() int64 { return img.h.virtualSize }

// ClusterSize is the image's cluster size in bytes.
func (img *Image) ClusterSize() int64 { return img.clusterSize }

// Version is the qcow2 format version, 2 or 3.
func (img *Image) Version() int { return int(img.h.version) }

// Compression is the algorithm of the image's compressed clusters.
func (img *Image) Compression() Compression { return img.h.compression }

const (
	l1OffsetMask  = 0x00fffffffffffe00
	l1Reserved    = 0x7f000000000001ff
	l2Compressed  = 1 << 62
	l2Copied      = 1 << 63
	l2Zero        = 1
	l2OffsetMask  = 0x00fffffffffffe00
	l2Reserved    = 0x3f000000000001fe
	compressedSec = 512
)

func (img *Image) readL1() error {
	perL1 := img.clusterSize * img.l2Entries
	need := (img.h.virtualSize + perL1 - 1) / perL1 // <= l1Size, checked
	buf := make([]byte, need*8)                     // <= maxL1Bytes and inside the file, checked
	if err := img.readFull(buf, img.h.l1Offset); err != nil {
		return fmt.Errorf("qcow2: read L1 table: %w", err)
	}
	img.l1 = make([]int64, need)
	for i := range img.l1 {
		e := binary.BigEndian.Uint64(buf[i*8:])
		if e&l1Reserved != 0 {
			return fmt.Errorf("%w: L1 entry %d has reserved bits set (%#x)", ErrInvalid, i, e)
		}
		off := int64(e & l1OffsetMask)
		if off == 0 {
			continue
		}
		if off%img.clusterSize != 0 {
			return fmt.Errorf("%w: L2 table %d at %#x not cluster aligned", ErrInvalid, i, off)
		}
		if off > img.fileSize-img.clusterSize {
			return fmt.Errorf("%w: L2 table %d at %#x beyond the end of the %d-byte file", ErrInvalid, i, off, img.fileSize)
		}
		img.l1[i] = off
	}
	return nil
}

// readFull reads exactly len(p) bytes at off, which the caller has checked
// lie inside the file.
func (img *Image) readFull(p []byte, off int64) error {
	n, err := img.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readHost reads p at off; bytes past the end of the file read as zeros,
// as in QEMU (a last data cluster may be only partly written).
func (img *Image) readHost(p []byte, off int64) error {
	n, err := img.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	clear(p[n:])
	return nil
}

type kind uint8

const (
	kindUnallocated kind = iota
	kindZero
	kindData
	kindCompressed
)

// mapping is where one virtual cluster's bytes come from.
type mapping struct {
	kind  kind
	off   int64 // host offset of data or compressed bytes
	csize int64 // compressed bytes available at off
}

// decodeL2 validates one L2 entry of the table at tableOff.
func (img *Image) decodeL2(e uint64, tableOff int64, i int) (mapping, error) {
	if e&l2Compressed != 0 {
		if e&l2Copied != 0 {
			return mapping{}, fmt.Errorf("%w: L2 table %#x entry %d: compressed cluster with the copied flag", ErrInvalid, tableOff, i)
		}
		x := 62 - (img.h.clusterBits - 8)
		off := int64(e & (1<<x - 1))
		sectors := int64((e>>x)&(1<<(img.h.clusterBits-8)-1)) + 1
		if off >= img.fileSize {
			return mapping{}, fmt.Errorf("%w: L2 table %#x entry %d: compressed cluster at %#x beyond the end of the file", ErrInvalid, tableOff, i, off)
		}
		csize := min(sectors*compressedSec-off%compressedSec, img.fileSize-off)
		return mapping{kind: kindCompressed, off: off, csize: csize}, nil
	}
	if e&l2Reserved != 0 {
		return mapping{}, fmt.Errorf("%w: L2 table %#x entry %d has reserved bits set (%#x)", ErrInvalid, tableOff, i, e)
	}
	off := int64(e & l2OffsetMask)
	if e&l2Zero != 0 {
		if img.h.version < 3 {
			return mapping{}, fmt.Errorf("%w: L2 table %#x entry %d: zero flag in a version 2 image", ErrInvalid, tableOff, i)
		}
		return mapping{kind: kindZero}, nil
	}
	if off == 0 {
		return mapping{kind: kindUnallocated}, nil
	}
	if off%img.clusterSize != 0 {
		return mapping{}, fmt.Errorf("%w: L2 table %#x entry %d: data cluster %#x not cluster aligned", ErrInvalid, tableOff, i, off)
	}
	if off >= img.fileSize {
		return mapping{}, fmt.Errorf("%w: L2 table %#x entry %d: data cluster %#x beyond the end of the %d-byte file", ErrInvalid, tableOff, i, off, img.fileSize)
	}
	return mapping{kind: kindData, off: off}, nil
}

// loadL2 reads and validates the whole L2 table at off into dst (len
// l2Entries), so no data is read through a table with a bad entry.
func (img *Image) loadL2(dst []uint64, raw []byte, off int64) error {
	if err := img.readFull(raw, off); err != nil {
		return fmt.Errorf("qcow2: read L2 table %#x: %w", off, err)
	}
	for i := range dst {
		e := binary.BigEndian.Uint64(raw[i*8:])
		if _, err := img.decodeL2(e, off, i); err != nil {
			return err
		}
		dst[i] = e
	}
	return nil
}

// lookupLocked maps virtual cluster index ci through the cached L2 table.
func (img *Image) lookupLocked(ci int64) (mapping, error) {
	tableOff := img.l1[ci/img.l2Entries]
	if tableOff == 0 {
		return mapping{kind: kindUnallocated}, nil
	}
	if img.l2 == nil || img.l2Off != tableOff {
		if img.l2 == nil {
			img.l2 = make([]uint64, img.l2Entries)
		}
		img.l2Off = 0
		raw := make([]byte, img.clusterSize)
		if err := img.loadL2(img.l2, raw, tableOff); err != nil {
			return mapping{}, err
		}
		img.l2Off = tableOff
	}
	i := int(ci % img.l2Entries)
	return img.decodeL2(img.l2[i], tableOff, i)
}

// ReadAt reads the virtual disk. It returns io.EOF with n < len(p) when
// the read reaches the end of the disk.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("qcow2: negative offset %d", off)
	}
	if off >= img.h.virtualSize {
		return 0, io.EOF
	}
	want := min(int64(len(p)), img.h.virtualSize-off)
	img.mu.Lock()
	defer img.mu.Unlock()
	var done int64
	for done < want {
		v := off + done
		ci := v >> img.h.clusterBits
		in := v & (img.clusterSize - 1)
		m, err := img.lookupLocked(ci)
		if err != nil {
			return int(done), err
		}
		chunk := min(img.clusterSize-in, want-done)
		dst := p[done : done+chunk]
		switch m.kind {
		case kindUnallocated, kindZero:
			clear(dst)
		case kindData:
			// Coalesce clusters that are contiguous on the host too, so a
			// large read is one large read of the file.
			for done+chunk < want {
				next, err := img.lookupLocked(ci + (chunk+in)/img.clusterSize)
				if err != nil || next.kind != kindData || next.off != m.off+in+chunk {
					break
				}
				chunk = min(chunk+img.clusterSize, want-done)
			}
			dst = p[done : done+chunk]
			if err := img.readHost(dst, m.off+in); err != nil {
				return int(done), fmt.Errorf("qcow2: read data cluster %#x: %w", m.off, err)
			}
		case kindCompressed:
			if err := img.decompressLocked(ci, m); err != nil {
				return int(done), err
			}
			copy(dst, img.cluster[in:])
		}
		done += chunk
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

// decompressLocked fills img.cluster with virtual cluster ci.
func (img *Image) decompressLocked(ci int64, m mapping) error {
	if img.cIndex == ci {
		return nil
	}
	img.cIndex = -1
	if img.cluster == nil {
		img.cluster = make([]byte, img.clusterSize)
	}
	if int64(cap(img.in)) < m.csize { // csize <= 2*clusterSize by the L2 layout
		img.in = make([]byte, m.csize)
	}
	in := img.in[:m.csize]
	if err := img.readFull(in, m.off); err != nil {
		return fmt.Errorf("qcow2: read compressed cluster %#x: %w", m.off, err)
	}
	var dec io.Reader
	switch img.h.compression {
	case CompressionZlib:
		if img.inflate == nil {
			img.inflate = flate.NewReader(bytes.NewReader(in))
		} else if err := img.inflate.(flate.Resetter).Reset(bytes.NewReader(in), nil); err != nil {
			return fmt.Errorf("qcow2: reset deflate: %w", err)
		}
		dec = img.inflate
	case CompressionZstd:
		if img.zstd == nil {
			// One goroutine-free synchronous decoder; the window bound
			// keeps a hostile frame from asking for much memory.
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderMaxMemory(16<<20))
			if err != nil {
				return fmt.Errorf("qcow2: zstd decoder: %w", err)
			}
			img.zstd = d
		}
		if err := img.zstd.Reset(bytes.NewReader(in)); err != nil {
			return fmt.Errorf("%w: compressed cluster %#x: %w", ErrInvalid, m.off, err)
		}
		dec = img.zstd
	}
	// Compressed data is followed by the next cluster's bytes: read exactly
	// one cluster and ignore the rest, as QEMU does.
	if _, err := io.ReadFull(dec, img.cluster); err != nil {
		return fmt.Errorf("%w: compressed cluster %#x: %w", ErrInvalid, m.off, err)
	}
	img.cIndex = ci
	return nil
}
