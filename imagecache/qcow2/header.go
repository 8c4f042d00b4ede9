// Package qcow2 reads QEMU qcow2 disk images (versions 2 and 3) without
// cgo or qemu-img, so the daemon can turn an untrusted qcow2 download into
// a raw file. It is read-only and strict: anything the reader does not
// fully understand (backing files, external data files, encryption,
// extended L2 entries, unknown incompatible features) is refused before a
// single data cluster is read, and every allocation is bounded by sizes the
// header validation has already checked against the file.
//
// Reference: QEMU docs/interop/qcow2.txt.
package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrUnsupported marks a well-formed image that uses a feature this reader
// refuses (backing file, encryption, ...). Convert it with
// `qemu-img convert -O qcow2` (which flattens it) or publish it as raw.
var ErrUnsupported = errors.New("qcow2: unsupported feature")

// ErrInvalid marks a malformed or hostile image: bad magic, offsets outside
// the file, misaligned tables, sizes above the caller's limits.
var ErrInvalid = errors.New("qcow2: invalid image")

// Limits bound what Open accepts.
type Limits struct {
	// MaxVirtualSize is the largest virtual disk accepted; 0 means
	// DefaultMaxVirtualSize.
	MaxVirtualSize int64
}

// DefaultMaxVirtualSize is 16 TiB.
const DefaultMaxVirtualSize int64 = 16 << 40

const (
	magic = 0x514649fb // "QFI\xfb"

	v2HeaderLen = 72
	v3HeaderLen = 104

	minClusterBits = 9
	maxClusterBits = 21

	// maxL1Bytes is QEMU's QCOW_MAX_L1_SIZE: QEMU itself refuses larger
	// L1 tables, so no legitimate image has one.
	maxL1Bytes = 32 << 20

	maxRefcountOrder = 6
)

// Incompatible feature bits (v3).
const (
	incompatDirty        = 1 << 0
	incompatCorrupt      = 1 << 1
	incompatDataFile     = 1 << 2
	incompatCompression  = 1 << 3
	incompatExtendedL2   = 1 << 4
	incompatKnownButBad  = incompatCorrupt | incompatDataFile | incompatExtendedL2
	incompatUnderstood   = incompatDirty | incompatCompression
	incompatAllKnownBits = incompatUnderstood | incompatKnownButBad
)

// Compression is the algorithm of compressed clusters.
type Compression uint8

// Compression types of the v3 header's compression_type field.
const (
	CompressionZlib Compression = 0 // raw deflate, despite the name
	CompressionZstd Compression = 1
)

func (c Compression) String() string {
	switch c {
	case CompressionZlib:
		return "zlib"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("compression type %d", uint8(c))
}

// header is the validated qcow2 header.
type header struct {
	version       uint32
	clusterBits   uint32
	virtualSize   int64
	l1Size        uint32
	l1Offset      int64
	refcountOrder uint32
	incompatible  uint64
	compression   Compression
}

// parseHeader decodes and validates the header against the file size and
// limits. It touches nothing beyond the header bytes in b.
func parseHeader(b []byte, fileSize int64, lim Limits) (header, error) {
	var h header
	if len(b) < v2HeaderLen {
		return h, fmt.Errorf("%w: file too short for a header (%d bytes)", ErrInvalid, len(b))
	}
	be := binary.BigEndian
	if m := be.Uint32(b[0:]); m != magic {
		return h, fmt.Errorf("%w: bad magic %#08x, not a qcow2 file", ErrInvalid, m)
	}
	h.version = be.Uint32(b[4:])
	if h.version != 2 && h.version != 3 {
		return h, fmt.Errorf("%w: version %d (only 2 and 3 are known)", ErrUnsupported, h.version)
	}
	backingOffset := be.Uint64(b[8:])
	backingSize := be.Uint32(b[16:])
	if backingOffset != 0 || backingSize != 0 {
		return h, fmt.Errorf("%w: image has a backing file; flatten it with qemu-img convert first", ErrUnsupported)
	}
	h.clusterBits = be.Uint32(b[20:])
	if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits {
		return h, fmt.Errorf("%w: cluster_bits %d outside %d..%d", ErrInvalid, h.clusterBits, minClusterBits, maxClusterBits)
	}
	size := be.Uint64(b[24:])
	limit := lim.MaxVirtualSize
	if limit <= 0 {
		limit = DefaultMaxVirtualSize
	}
	if size > uint64(limit) {
		return h, fmt.Errorf("%w: virtual size %d bytes above the limit of %d", ErrInvalid, size, limit)
	}
	h.virtualSize = int64(size)
	if crypt := be.Uint32(b[32:]); crypt != 0 {
		return h, fmt.Errorf("%w: image is encrypted (method %d)", ErrUnsupported, crypt)
	}
	h.l1Size = be.Uint32(b[36:])
	l1Offset := be.Uint64(b[40:])
	h.refcountOrder = 4 // v2 refcounts are always 16 bits

	if h.version == 3 {
		if len(b) < v3HeaderLen {
			return h, fmt.Errorf("%w: file too short for a version 3 header", ErrInvalid)
		}
		h.incompatible = be.Uint64(b[72:])
		h.refcountOrder = be.Uint32(b[96:])
		hlen := be.Uint32(b[100:])
		if hlen < v3HeaderLen || hlen%8 != 0 || uint64(hlen) > uint64(1)<<h.clusterBits {
			return h, fmt.Errorf("%w: header_length %d", ErrInvalid, hlen)
		}
		if hlen > v3HeaderLen {
			if len(b) <= v3HeaderLen {
				return h, fmt.Errorf("%w: file too short for header_length %d", ErrInvalid, hlen)
			}
			h.compression = Compression(b[v3HeaderLen])
		}
	}
	if err := checkFeatures(h); err != nil {
		return h, err
	}
	if h.refcountOrder > maxRefcountOrder {
		return h, fmt.Errorf("%w: refcount_order %d above %d", ErrInvalid, h.refcountOrder, maxRefcountOrder)
	}

	clusterSize := uint64(1) << h.clusterBits
	if l1Offset%clusterSize != 0 {
		return h, fmt.Errorf("%w: L1 table offset %#x not cluster aligned", ErrInvalid, l1Offset)
	}
	l1Bytes := uint64(h.l1Size) * 8
	if l1Bytes > maxL1Bytes {
		return h, fmt.Errorf("%w: L1 table of %d entries above QEMU's limit", ErrInvalid, h.l1Size)
	}
	if l1Offset > uint64(fileSize) || l1Bytes > uint64(fileSize)-l1Offset {
		return h, fmt.Errorf("%w: L1 table at %#x (+%d bytes) beyond the end of the %d-byte file", ErrInvalid, l1Offset, l1Bytes, fileSize)
	}
	h.l1Offset = int64(l1Offset)
	// Each L2 table maps clusterSize/8 clusters.
	perL1 := clusterSize * (clusterSize / 8)
	need := (size + perL1 - 1) / perL1
	if uint64(h.l1Size) < need {
		return h, fmt.Errorf("%w: L1 table of %d entries too small for %d bytes", ErrInvalid, h.l1Size, size)
	}
	return h, nil
}

func checkFeatures(h header) error {
	f := h.incompatible
	switch {
	case f&incompatDataFile != 0:
		return fmt.Errorf("%w: image keeps its data in an external data file", ErrUnsupported)
	case f&incompatCorrupt != 0:
		return fmt.Errorf("%w: image is marked corrupt; repair it with qemu-img check -r all", ErrInvalid)
	case f&incompatExtendedL2 != 0:
		return fmt.Errorf("%w: extended L2 entries (subclusters)", ErrUnsupported)
	case f&^incompatAllKnownBits != 0:
		return fmt.Errorf("%w: unknown incompatible features %#x", ErrUnsupported, f&^incompatAllKnownBits)
	}
	// QEMU: the compression bit is set exactly when the type is not zlib.
	switch {
	case h.compression == CompressionZlib && f&incompatCompression != 0:
		return fmt.Errorf("%w: compression feature bit set for zlib", ErrInvalid)
	case h.compression != CompressionZlib && f&incompatCompression == 0:
		return fmt.Errorf("%w: %v without the compression feature bit", ErrInvalid, h.compression)
	case h.compression != CompressionZlib && h.compression != CompressionZstd:
		return fmt.Errorf("%w: %v", ErrUnsupported, h.compression)
	}
	return nil
}
