package gitstatus

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Writer coalesces status updates from many goroutines into few commits:
// the first update after a quiet spell is committed at once, later ones
// wait so that commits are at least Interval apart.
type Writer struct {
	c        *Committer
	interval time.Duration
	onFlush  func(Result, error)

	mu      sync.Mutex
	pending map[string]Change // guarded by mu; node → latest change
	kick    chan struct{}     // buffered 1: pending became non-empty
	// seq numbers updates; an update is durable once durable reaches its
	// number. Both guarded by mu.
	seq, durable uint64
	pendSeq      map[string]uint64 // guarded by mu; key → seq of its pending change

	flushMu sync.Mutex // one flush at a time, so commits keep their order
}

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Interval is the least time between two commits (default 10s).
	Interval time.Duration
	// OnFlush, when set, is called after every flush attempt with its result
	// (from Run's or Flush's goroutine): Result.SpecMoved tells the daemon
	// to fetch and re-plan.
	OnFlush func(Result, error)
}

// NewWriter returns a Writer committing through c.
func NewWriter(c *Committer, cfg WriterConfig) *Writer {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	return &Writer{
		c:        c,
		interval: cfg.Interval,
		onFlush:  cfg.OnFlush,
		pending:  map[string]Change{},
		pendSeq:  map[string]uint64{},
		kick:     make(chan struct{}, 1),
	}
}

// Update records node's new status file content (nil: delete it, for a
// forgotten node) with a summary for the commit message ("available→
// active"). A later update of the same node before the flush replaces it.
func (w *Writer) Update(node string, data []byte, summary string) error {
	return w.UpdateAt("", node, data, summary)
}

// UpdateAt is Update for a status file in a sub-directory of the status
// directory (see Change.Dir).
func (w *Writer) UpdateAt(dir, node string, data []byte, summary string) error {
	if err := ValidNode(node); err != nil {
		return err
	}
	if dir != "" && !validDir(dir) {
		return fmt.Errorf("node %s: status sub-directory %q is not a clean relative path", node, dir)
	}
	w.put(Change{Node: node, Dir: dir, Data: data, Summary: summary})
	return nil
}

// UpdateFile records the content of a status-directory file that is not a
// node's status (nil deletes it); see Change.File.
func (w *Writer) UpdateFile(file string, data []byte, summary string) error {
	if err := validFile(file); err != nil {
		return err
	}
	w.put(Change{Node: file, File: file, Data: data, Summary: summary})
	return nil
}

// put replaces the pending change of the same file and wakes Run.
func (w *Writer) put(ch Change) {
	w.mu.Lock()
	w.seq++
	w.pending[pendingKey(ch)] = ch
	w.pendSeq[pendingKey(ch)] = w.seq
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Pending is the number of nodes waiting for a commit.
func (w *Writer) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// Flush commits everything pending now. On failure the changes stay pending
// (behind any newer update of the same node) for the next flush.
func (w *Writer) Flush(ctx context.Context) (Result, error) {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	batch := make([]Change, 0, len(w.pending))
	seqs := make(map[string]uint64, len(w.pending))
	for k, ch := range w.pending {
		batch = append(batch, ch)
		seqs[k] = w.pendSeq[k]
	}
	upTo := w.seq
	w.pending, w.pendSeq = map[string]Change{}, map[string]uint64{}
	w.mu.Unlock()
	if len(batch) == 0 {
		w.markDurable(upTo)
		return Result{}, nil
	}
	res, err := w.c.Commit(ctx, batch)
	if err != nil {
		w.mu.Lock()
		for _, ch := range batch {
			k := pendingKey(ch)
			if _, newer := w.pending[k]; !newer {
				w.pending[k], w.pendSeq[k] = ch, seqs[k]
			}
		}
		w.mu.Unlock()
	} else {
		w.markDurable(upTo)
	}
	if w.onFlush != nil {
		w.onFlush(res, err)
	}
	return res, err
}

// markDurable records that every update numbered up to n is pushed, except
// those still pending (a failed earlier batch put back).
func (w *Writer) markDurable(n uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.pendSeq {
		if s <= n {
			n = s - 1
		}
	}
	w.durable = max(w.durable, n)
}

// Sync returns once every update made before the call is committed and
// pushed, flushing at once rather than waiting for the interval. Syncs that
// arrive while a flush is under way share the next commit (group commit),
// so many nodes' write-ahead intents cost one push, not one each.
func (w *Writer) Sync(ctx context.Context) error {
	w.mu.Lock()
	target := w.seq
	w.mu.Unlock()
	for {
		w.mu.Lock()
		done := w.durable >= target
		w.mu.Unlock()
		if done {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := w.Flush(ctx); err != nil {
			return err
		}
	}
}

// Run flushes pending updates, at most one commit per interval, until ctx
// is done; then it makes a last flush bounded by shutdownTimeout and returns
// ctx's error. A failed flush is retried after the interval.
func (w *Writer) Run(ctx context.Context, shutdownTimeout time.Duration) error {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			_, _ = w.Flush(fctx)
			cancel()
			return ctx.Err()
		case <-w.kick:
		}
		if wait := time.Until(last.Add(w.interval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				continue // the shutdown flush above takes it
			case <-t.C:
			}
		}
		last = time.Now()
		if _, err := w.Flush(ctx); err != nil && w.Pending() > 0 {
			// Come back after the interval even if nothing new arrives.
			select {
			case w.kick <- struct{}{}:
			default:
			}
		}
	}
}

// pendingKey keeps node statuses and other files apart in the pending set.
func pendingKey(ch Change) string {
	if ch.File != "" {
		return "file:" + ch.File
	}
	if ch.Dir != "" {
		return ch.Dir + "/" + ch.Node
	}
	return ch.Node
}
