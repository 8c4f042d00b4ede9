package imagecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"metalsync.dev/metalsync/imagecache/qcow2"
)

// holeBlock is the granularity of hole detection: the file system block.
const holeBlock = 4096

var zeroBlock [copyBuf]byte // read-only

// writeSparse writes p at off, leaving all-zero blocks as holes. The file
// must read as zeros there already (fresh or truncated).
func writeSparse(f *os.File, p []byte, off int64) error {
	start := -1 // start in p of the pending non-zero run
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		_, err := f.WriteAt(p[start:end], off+int64(start))
		start = -1
		return err
	}
	for i := 0; i < len(p); {
		n := min(holeBlock-int((off+int64(i))%holeBlock), len(p)-i)
		if bytes.Equal(p[i:i+n], zeroBlock[:n]) {
			if err := flush(i); err != nil {
				return fmt.Errorf("write %s: %w", f.Name(), err)
			}
		} else if start < 0 {
			start = i
		}
		i += n
	}
	if err := flush(len(p)); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

// sparseWriter writes a stream sparsely; the caller truncates the file to
// the stream's length at the end, as trailing zeros are never written.
type sparseWriter struct {
	f   *os.File
	off int64
}

func (w *sparseWriter) Write(p []byte) (int, error) {
	if err := writeSparse(w.f, p, w.off); err != nil {
		return 0, err
	}
	w.off += int64(len(p))
	return len(p), nil
}

// convert writes img's virtual disk to out as a sparse raw file, reading
// only the data extents, and returns the raw's sha256.
func convert(ctx context.Context, img *qcow2.Image, out *os.File) (string, error) {
	if err := out.Truncate(img.VirtualSize()); err != nil {
		return "", fmt.Errorf("size raw file: %w", err)
	}
	h := sha256.New()
	buf := make([]byte, copyBuf)
	var pos int64
	for e, err := range img.Extents() {
		if err != nil {
			return "", err
		}
		if err := hashZeros(ctx, h, e.Offset-pos); err != nil {
			return "", err
		}
		end := e.Offset + e.Length
		for off := e.Offset; off < end; {
			if err := ctx.Err(); err != nil {
				return "", err
			}
			p := buf[:min(int64(len(buf)), end-off)]
			if _, err := img.ReadAt(p, off); err != nil && !errors.Is(err, io.EOF) {
				return "", err
			}
			h.Write(p)
			if err := writeSparse(out, p, off); err != nil {
				return "", err
			}
			off += int64(len(p))
		}
		pos = end
	}
	if err := hashZeros(ctx, h, img.VirtualSize()-pos); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashZeros feeds n zero bytes to h; a hole of terabytes takes a while, so
// it heeds ctx.
func hashZeros(ctx context.Context, h hash.Hash, n int64) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(n, int64(len(zeroBlock)))
		h.Write(zeroBlock[:k])
		n -= k
	}
	return nil
}
