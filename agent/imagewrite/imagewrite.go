// Package imagewrite streams a whole-disk image from the daemon onto the
// target disk (deploy.write_image): received bytes are hashed in-line
// (sha256 of the bytes served), gzip is decompressed when the stream
// starts with its magic, and the output goes to the disk in 4 MiB blocks,
// all-zero blocks as BLKZEROOUT (the disk is not known to be zero). A
// broken download resumes with a Range request from the next byte not
// yet received. A GPT image's backup table then moves to the real end of
// the disk (sgdisk -e). When the checksum or the size is wrong, or anything
// fails after the first write, the first and last MiB of what was
// written are zeroed: a half-written image must never boot.
package imagewrite

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"metalsync.dev/metalsync/agent/blockdev"
	"metalsync.dev/metalsync/agent/partition"
	"metalsync.dev/metalsync/internal/backoff"
)

// BlockSize is the write unit.
const BlockSize = 4 << 20

// DefaultRetries bounds how often a broken download is resumed: with
// the agent's backoff (1 s doubling to 30 s) that is about eight minutes,
// enough for the daemon to restart (or a new one to take the lease) while
// the agent waits with the half-written disk.
const DefaultRetries = 20

// ErrChecksum means the bytes served do not hash to the expected sum.
var ErrChecksum = errors.New("image checksum mismatch")

// Writer writes images.
type Writer struct {
	Fetch   Fetcher
	Log     *slog.Logger
	Retries int            // resume attempts; DefaultRetries when 0
	Backoff backoff.Policy // delay between resume attempts
}

// Image names what to write.
type Image struct {
	Path   string // daemon path, agentapi.PathImage + sha256
	SHA256 string // hex
	Size   int64  // bytes served
}

// Stats says what a write did.
type Stats struct {
	Received   int64 // bytes served (compressed when gzip)
	Written    int64 // bytes on the disk
	ZeroBlocks int   // blocks written as BLKZEROOUT
	Gzip       bool
	Elapsed    time.Duration
}

// MiBps is the write throughput.
func (s Stats) MiBps() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Written) / (1 << 20) / s.Elapsed.Seconds()
}

// Write streams img onto target (a block device or, in tests, a file),
// verifies it, syncs and asks the kernel to re-read the partition table.
func (w *Writer) Write(ctx context.Context, target string, img Image) (Stats, error) {
	start := time.Now()
	want, err := hex.DecodeString(img.SHA256)
	if err != nil || len(want) != sha256.Size {
		return Stats{}, fmt.Errorf("image %s: sha256 %q is not 64 hex digits", img.Path, img.SHA256)
	}
	if img.Size <= 0 {
		return Stats{}, fmt.Errorf("image %s: size %d", img.Path, img.Size)
	}
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("open target %s: %w", target, err)
	}
	defer f.Close()
	diskSize, err := blockdev.Size(f)
	if err != nil {
		return Stats{}, fmt.Errorf("target %s: %w", target, err)
	}
	retries := w.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	// copy cancels readCtx when it returns, which aborts a read in flight
	// so its reader goroutine can end.
	readCtx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	src := &resumable{ctx: readCtx, fetch: w.Fetch, path: img.Path, log: w.Log, policy: w.Backoff,
		retries: retries, limit: img.Size, sum: sha256.New()}
	defer src.drop()

	var st Stats
	written, err := w.copy(readCtx, cancelRead, f, diskSize, src, &st)
	st.Received, st.Written = src.off, written
	if err == nil {
		if got := src.sum.Sum(nil); src.off != img.Size {
			err = fmt.Errorf("image %s: received %d bytes, want %d", img.Path, src.off, img.Size)
		} else if hex.EncodeToString(got) != strings.ToLower(img.SHA256) {
			err = fmt.Errorf("image %s: %w: got sha256 %x, want %s", img.Path, ErrChecksum, got, strings.ToLower(img.SHA256))
		}
	}
	if err == nil {
		if serr := f.Sync(); serr != nil {
			err = fmt.Errorf("sync target %s: %w", target, serr)
		}
	}
	if err != nil {
		if written > 0 {
			if werr := spoil(f, written); werr != nil {
				err = errors.Join(err, fmt.Errorf("target %s may boot a partial image: %w", target, werr))
			}
		}
		return st, err
	}
	// A GPT image on a bigger disk has its backup table mid-disk; the
	// image is verified, so its table is trusted enough to rewrite.
	if moved, err := partition.MoveBackupGPT(f, diskSize); err != nil {
		w.Log.WarnContext(ctx, "backup GPT left where the image put it", "device", target, "err", err)
	} else if moved {
		if err := f.Sync(); err != nil {
			return st, fmt.Errorf("sync target %s: %w", target, err)
		}
	}
	if err := blockdev.RereadPartitions(f); err != nil {
		w.Log.WarnContext(ctx, "re-read partition table", "device", target, "err", err)
	}
	st.Elapsed = time.Since(start)
	w.Log.InfoContext(ctx, "image written", "device", target, "bytes", written,
		"gzip", st.Gzip, "zeroBlocks", st.ZeroBlocks, "MiBps", fmt.Sprintf("%.1f", st.MiBps()))
	return st, nil
}

// copy decompresses when needed and writes blocks; it returns how far
// the disk was written. Reading (network, hashing, gzip) runs in its own
// goroutine, a few blocks ahead of the writes, so the two overlap.
func (w *Writer) copy(ctx context.Context, cancel context.CancelFunc, f *os.File, diskSize int64, src io.Reader, st *Stats) (int64, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	var r io.Reader = br
	magic, err := br.Peek(2)
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("read image: %w", err)
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, fmt.Errorf("gzip header: %w", err)
		}
		zr.Multistream(true)
		r, st.Gzip = zr, true
	}
	// Cancelling on the way out unblocks a read in flight (the fetcher's
	// body follows ctx), so the reader goroutine ends.
	type chunk struct {
		b   []byte
		n   int
		err error
	}
	const depth = 3
	free := make(chan []byte, depth)
	full := make(chan chunk, depth)
	for range depth {
		free <- make([]byte, BlockSize)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(full)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-ctx.Done():
				return
			}
			n, err := io.ReadFull(r, b)
			if (err == io.EOF || err == io.ErrUnexpectedEOF) && st.Gzip {
				// Let the hash see the whole body, trailer included.
				_, err = io.Copy(io.Discard, br)
				if err == nil {
					err = io.EOF
				}
			}
			select {
			case full <- chunk{b, n, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	var off int64
	for c := range full {
		if err := ctx.Err(); err != nil {
			return off, err
		}
		if c.n > 0 {
			if off+int64(c.n) > diskSize {
				return off, fmt.Errorf("image does not fit on %s: more than %d bytes for a %d-byte disk", f.Name(), off+int64(c.n), diskSize)
			}
			if allZero(c.b[:c.n]) {
				if err := blockdev.ZeroRange(f, off, int64(c.n)); err != nil {
					return off, fmt.Errorf("write %s: %w", f.Name(), err)
				}
				st.ZeroBlocks++
			} else if _, err := f.WriteAt(c.b[:c.n], off); err != nil {
				return off, fmt.Errorf("write %s at %d: %w", f.Name(), off, err)
			}
			off += int64(c.n)
		}
		switch {
		case c.err == io.EOF || c.err == io.ErrUnexpectedEOF:
			return off, nil
		case c.err != nil:
			return off, fmt.Errorf("read image: %w", c.err)
		}
		free <- c.b
	}
	return off, ctx.Err()
}

// zeroBlock is compared against, never written.
var zeroBlock = make([]byte, BlockSize)

// allZero reports whether b (at most BlockSize bytes) holds only zeros;
// bytes.Equal runs as vectorised memcmp.
func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// spoil zeros the first and last MiB of the written range, where the
// partition tables and boot code of a whole-disk image live.
func spoil(f *os.File, written int64) error {
	regions := [][2]int64{{0, min(written, blockdev.MiB)}}
	if written > blockdev.MiB {
		start := max(written-blockdev.MiB, blockdev.MiB)
		regions = append(regions, [2]int64{start, written - start})
	}
	for _, r := range regions {
		if err := blockdev.ZeroRange(f, r[0], r[1]); err != nil {
			return err
		}
	}
	return f.Sync()
}
