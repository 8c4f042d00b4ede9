package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"metalsync.dev/metalsync/agentapi"
)

// maxLogBatch bounds one POST of log lines.
const maxLogBatch = 64 << 10

// LogBuffer keeps the agent's log lines for the daemon. Write never
// blocks and never fails: when the daemon is away, the oldest lines go
// first. Give it to the logger's writer from the start of the boot; the
// client ships what it holds once it runs.
type LogBuffer struct {
	max    int
	notify chan struct{}

	mu      sync.Mutex
	buf     []byte // guarded by mu: whole lines, oldest first
	dropped int    // guarded by mu: lines dropped since the last ship
}

// NewLogBuffer keeps up to max bytes of lines.
func NewLogBuffer(max int) *LogBuffer {
	return &LogBuffer{max: max, notify: make(chan struct{}, 1)}
}

// Write appends p (one or more lines) and wakes the shipper.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	if len(p) > 0 && p[len(p)-1] != '\n' {
		b.buf = append(b.buf, '\n')
	}
	b.trimLocked()
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

// trimLocked drops whole lines from the front until the buffer fits.
func (b *LogBuffer) trimLocked() {
	for len(b.buf) > b.max {
		i := bytes.IndexByte(b.buf, '\n')
		if i < 0 || i+1 >= len(b.buf) {
			b.buf = b.buf[:0]
		} else {
			b.buf = b.buf[i+1:]
		}
		b.dropped++
	}
}

// take removes up to limit bytes of whole lines (at least one line), led
// by a note of lines dropped.
func (b *LogBuffer) take(limit int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) == 0 && b.dropped == 0 {
		return nil
	}
	var out []byte
	if b.dropped > 0 {
		out = fmt.Appendf(out, "metalsync-agent: %d log lines dropped\n", b.dropped)
		b.dropped = 0
	}
	n := len(b.buf)
	if n > limit {
		if i := bytes.LastIndexByte(b.buf[:limit], '\n'); i >= 0 {
			n = i + 1
		} else if i := bytes.IndexByte(b.buf, '\n'); i >= 0 {
			n = i + 1
		}
	}
	out = append(out, b.buf[:n]...)
	b.buf = append(b.buf[:0], b.buf[n:]...)
	return out
}

// putBack returns an unshipped batch to the front.
func (b *LogBuffer) putBack(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(append([]byte(nil), p...), b.buf...)
	b.trimLocked()
}

// shipLogs posts buffered lines as they come, best effort. It logs
// nothing itself: its failures would only feed the buffer it drains.
func (c *Client) shipLogs(ctx context.Context, cancel context.CancelCauseFunc) {
	b := c.cfg.Logs
	token := []byte(c.cfg.Token.Reveal())
	retry := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.notify:
		}
		for batch := b.take(maxLogBatch); batch != nil; batch = b.take(maxLogBatch) {
			// The agent never logs the token; this guards the daemon's
			// copy against a step that would.
			batch = bytes.ReplaceAll(batch, token, []byte("[redacted]"))
			err := c.postLog(ctx, batch)
			if err == nil {
				retry = 0
				continue
			}
			if errors.Is(err, ErrUnauthorized) {
				cancel(err)
				return
			}
			if !permanent(err) {
				b.putBack(batch)
			}
			if c.clock.Sleep(ctx, c.cfg.Backoff.Jittered(retry)) != nil {
				return
			}
			retry++
		}
	}
}

func (c *Client) postLog(ctx context.Context, lines []byte) error {
	req, err := c.newRequest(ctx, http.MethodPost, agentapi.PathLog, lines, "text/plain; charset=utf-8")
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", agentapi.PathLog, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusError(http.MethodPost, agentapi.PathLog, resp)
	}
	return nil
}
