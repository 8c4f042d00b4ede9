package imagewrite

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"time"

	"metalsync.dev/metalsync/internal/backoff"
)

// Fetcher opens a daemon path at a byte offset (HTTP Range).
type Fetcher interface {
	Open(ctx context.Context, path string, offset int64) (io.ReadCloser, error)
}

// resumable reads path from the daemon and, when the connection breaks,
// reopens it at the next byte it has not received: the reader above it
// (gzip, the block writer) never sees the break. Every byte received is
// hashed and counted here, so the checksum covers exactly the bytes
// served, once each.
type resumable struct {
	ctx     context.Context
	fetch   Fetcher
	path    string
	log     *slog.Logger
	policy  backoff.Policy
	retries int // reopen attempts left

	body  io.ReadCloser
	off   int64 // bytes received
	limit int64 // bytes expected; reading past it is an error
	sum   hash.Hash
	tries int   // consecutive failures, for the backoff
	err   error // sticky: once given up, every Read says so
}

func (r *resumable) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func (r *resumable) read(p []byte) (int, error) {
	for {
		if r.body == nil {
			body, err := r.fetch.Open(r.ctx, r.path, r.off)
			if err != nil {
				if err := r.retry(fmt.Errorf("open %s at %d: %w", r.path, r.off, err)); err != nil {
					return 0, err
				}
				continue
			}
			r.body = body
		}
		if r.off >= r.limit {
			// Anything beyond the announced size means the image is not
			// the one named: read one byte to find out.
			var one [1]byte
			n, err := r.body.Read(one[:])
			if n > 0 {
				return 0, fmt.Errorf("image %s is larger than its announced %d bytes", r.path, r.limit)
			}
			if err == io.EOF {
				return 0, io.EOF
			}
			if err != nil {
				if err := r.retry(fmt.Errorf("read %s at %d: %w", r.path, r.off, err)); err != nil {
					return 0, err
				}
			}
			continue
		}
		if int64(len(p)) > r.limit-r.off {
			p = p[:r.limit-r.off]
		}
		n, err := r.body.Read(p)
		if n > 0 {
			r.sum.Write(p[:n])
			r.off += int64(n)
			r.tries = 0
		}
		if err == io.EOF && n == 0 {
			// Short of the announced size: a cut connection looks the
			// same, so resume; a really short image fails when the
			// retries are spent.
			err = io.ErrUnexpectedEOF
		}
		if err == nil || err == io.EOF {
			return n, nil
		}
		if n > 0 {
			// Report the bytes now; the next Read reopens.
			r.drop()
			return n, nil
		}
		if err := r.retry(fmt.Errorf("read %s at %d: %w", r.path, r.off, err)); err != nil {
			return 0, err
		}
	}
}

// retry drops the connection and waits before the next attempt, or
// gives up with cause when the retries are spent or ctx is done.
func (r *resumable) retry(cause error) error {
	r.drop()
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) || r.ctx.Err() != nil {
		return cause
	}
	if r.retries <= 0 {
		return fmt.Errorf("giving up: %w", cause)
	}
	r.retries--
	d := r.policy.Jittered(r.tries)
	r.tries++
	r.log.WarnContext(r.ctx, "image download broke, resuming", "offset", r.off, "delay", d, "err", cause)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return fmt.Errorf("%w (while waiting to resume)", r.ctx.Err())
	case <-t.C:
		return nil
	}
}

func (r *resumable) drop() {
	if r.body != nil {
		_ = r.body.Close()
		r.body = nil
	}
}
