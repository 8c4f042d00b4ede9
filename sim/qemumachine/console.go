package qemumachine

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
)

// console collects the guest's serial output: it appends every byte to
// console.log and keeps the lines for waiters. A line is complete at
// '\n'; a trailing '\r' is dropped.
type console struct {
	log io.Writer

	mu      sync.Mutex
	lines   []string      // guarded by mu; complete lines
	partial []byte        // guarded by mu; the line being received
	changed chan struct{} // guarded by mu; closed and replaced on every line
	err     error         // guarded by mu; why reading stopped
	done    chan struct{} // closed when reading stops
}

func newConsole(log io.Writer) *console {
	return &console{log: log, changed: make(chan struct{}), done: make(chan struct{})}
}

// copyFrom reads the serial stream until it ends.
func (c *console) copyFrom(r io.Reader) {
	buf := make([]byte, 4096)
	var err error
	for {
		var n int
		n, err = r.Read(buf)
		if n > 0 {
			_, _ = c.log.Write(buf[:n])
			c.add(buf[:n])
		}
		if err != nil {
			break
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("serial console: %w", err)
	c.mu.Unlock()
	close(c.done)
}

func (c *console) add(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	grew := false
	for _, ch := range b {
		if ch != '\n' {
			c.partial = append(c.partial, ch)
			continue
		}
		c.lines = append(c.lines, strings.TrimSuffix(string(c.partial), "\r"))
		c.partial = c.partial[:0]
		grew = true
	}
	if grew {
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// Lines returns the complete lines received so far.
func (c *console) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// wait returns the index of the first line at index from or later that
// contains substr, waiting for it until ctx ends.
func (c *console) wait(ctx context.Context, substr string, from int) (int, error) {
	for {
		c.mu.Lock()
		for i := max(from, 0); i < len(c.lines); i++ {
			if strings.Contains(c.lines[i], substr) {
				c.mu.Unlock()
				return i, nil
			}
		}
		changed, err := c.changed, c.err
		c.mu.Unlock()
		if err != nil {
			return -1, fmt.Errorf("console line %q: %w", substr, err)
		}
		select {
		case <-changed:
		case <-c.done:
		case <-ctx.Done():
			return -1, fmt.Errorf("console line %q: %w", substr, ctx.Err())
		}
	}
}
