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
	"sync"

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
// only the data extents, and returns the raw's sha256. Hashing runs in a
// second goroutine, overlapping the reads and writes.
func convert(ctx context.Context, img *qcow2.Image, out *os.File) (string, error) {
	if err := out.Truncate(img.VirtualSize()); err != nil {
		return "", fmt.Errorf("size raw file: %w", err)
	}
	h := newPipedHash(sha256.New())
	defer h.stop()
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
			p := h.buffer()[:min(copyBuf, end-off)]
			if _, err := img.ReadAt(p, off); err != nil && !errors.Is(err, io.EOF) {
				return "", err
			}
			if err := writeSparse(out, p, off); err != nil {
				return "", err
			}
			h.write(p, true)
			off += int64(len(p))
		}
		pos = end
	}
	if err := hashZeros(ctx, h, img.VirtualSize()-pos); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.sum()), nil
}

// hashZeros feeds n zero bytes to h; a hole of terabytes takes a while, so
// it heeds ctx.
func hashZeros(ctx context.Context, h *pipedHash, n int64) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(n, int64(len(zeroBlock)))
		h.write(zeroBlock[:k], false)
		n -= k
	}
	return nil
}

// pipedHash hashes, in order, the chunks written to it in its own
// goroutine. Chunks from buffer() return to the pool once hashed.
type pipedHash struct {
	h    hash.Hash
	work chan chunk
	free chan []byte
	done chan struct{}
	once sync.Once // closes work
}

type chunk struct {
	b       []byte
	recycle bool // b came from buffer()
}

// pipeDepth buffers in flight: one being filled, one being hashed, one spare.
const pipeDepth = 3

func newPipedHash(h hash.Hash) *pipedHash {
	p := &pipedHash{h: h, work: make(chan chunk, pipeDepth), free: make(chan []byte, pipeDepth), done: make(chan struct{})}
	for range pipeDepth {
		p.free <- make([]byte, copyBuf)
	}
	go func(work <-chan chunk) {
		defer close(p.done)
		for c := range work {
			h.Write(c.b)
			if c.recycle {
				p.free <- c.b[:cap(c.b)]
			}
		}
	}(p.work)
	return p
}

// buffer waits for a free copyBuf-sized buffer.
func (p *pipedHash) buffer() []byte { return <-p.free }

func (p *pipedHash) write(b []byte, recycle bool) { p.work <- chunk{b, recycle} }

// sum stops the goroutine and returns the digest.
func (p *pipedHash) sum() []byte {
	p.stop()
	return p.h.Sum(nil)
}

// stop ends the goroutine; it may be called more than once.
func (p *pipedHash) stop() {
	p.once.Do(func() { close(p.work) })
	<-p.done
}
