// Package imagecache fetches deploy images once per checksum, verifies
// them, converts qcow2 to raw (Ironic's force_raw_images model) and keeps
// the raw files for the agent server to stream. The deploy agent then only
// writes raw bytes, verifying their sha256 in-line.
//
// Layout under the cache directory, which the Cache owns (one Cache per
// directory):
//
//	raw/<sha256>        complete raw images, named by their own sha256
//	index/<key>.json    source checksum and format -> raw sha256 and size,
//	                    written only after the raw file is complete
//	tmp/                downloads and conversions in progress; emptied by New
//
// With Options.MaxBytes, least recently used raw images are evicted to
// keep the directory under it (evict.go).
package imagecache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"metalsync.dev/metalsync/imagecache/qcow2"
	"metalsync.dev/metalsync/internal/clock"
)

// ErrChecksumMismatch means the bytes at the URL are not the ones the
// inventory names: fix the checksum or the image, then retry.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// ErrRefused means the image itself is refused: bad arguments, an
// unsupported or malformed qcow2, or an image above the size limit.
// Retrying does not help; the image or the inventory must change.
var ErrRefused = errors.New("image refused")

// Options configure a Cache.
type Options struct {
	// HTTPClient fetches http(s) URLs; nil means a client whose transport
	// gives up on a server that sends no response headers within a minute
	// (the body may take as long as the caller's context allows).
	HTTPClient *http.Client
	// Log receives one line per image prepared or failed; nil discards.
	Log *slog.Logger
	// MaxVirtualSize bounds the raw image (a raw download, or a qcow2's
	// virtual disk); 0 means qcow2.DefaultMaxVirtualSize (16 TiB).
	MaxVirtualSize int64
	// MaxDownloadSize bounds the bytes fetched from a URL; 0 means
	// MaxVirtualSize plus an eighth for qcow2 metadata.
	MaxDownloadSize int64
	// MaxBytes bounds the disk space of the raw images and the
	// preparations in progress: after an image is stored, least recently
	// used raw images are evicted until they are under. 0 means no bound. Images open for serving, the one
	// just stored and preparations in progress are never evicted, so the
	// directory can exceed the bound while they last.
	MaxBytes int64
	// Clock stamps each raw image's last use; nil means the wall clock.
	Clock clock.Clock
	// Registerer takes the cache's metrics (evictions, bytes used); nil:
	// none are exported.
	Registerer prometheus.Registerer
}

// Cache prepares and serves raw deploy images.
type Cache struct {
	dir    string
	client *http.Client
	log    *slog.Logger
	maxVirtual,
	maxDownload int64
	maxBytes int64
	clock    clock.Clock
	metrics  *cacheMetrics

	mu sync.Mutex
	// calls holds the preparations in flight, by key (guarded by mu).
	calls map[string]*call
	// closed is set by Close; later Prepares fail (guarded by mu).
	closed bool
	wg     sync.WaitGroup // running preparations

	// useMu orders uses of raw images (Open, a Prepare finding one)
	// against eviction.
	useMu sync.Mutex
	// open holds the files Open handed out, by raw sha256, until seen
	// closed (guarded by useMu).
	open map[string][]*os.File
	// pinned counts the stores of each raw sha256 whose eviction pass is
	// not over (guarded by useMu).
	pinned map[string]int
}

// call is one preparation that concurrent Prepares for the same key share.
type call struct {
	done   chan struct{} // closed when res and err are set
	res    entry
	err    error
	cancel context.CancelFunc
	// waiters counts the Prepares still waiting; the last one to give up
	// cancels the preparation (guarded by Cache.mu).
	waiters int
}

// New returns a Cache keeping its files in dir, created if missing.
// Leftovers of an interrupted preparation are removed.
func New(dir string, opts Options) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("imagecache: empty cache directory")
	}
	if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		return nil, fmt.Errorf("imagecache: clear %s: %w", filepath.Join(dir, "tmp"), err)
	}
	for _, sub := range []string{"raw", "index", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("imagecache: create cache directory: %w", err)
		}
	}
	metrics, err := newCacheMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("imagecache: %w", err)
	}
	c := &Cache{
		dir:        dir,
		client:     opts.HTTPClient,
		log:        opts.Log,
		maxVirtual: opts.MaxVirtualSize,
		maxBytes:   opts.MaxBytes,
		clock:      clock.Or(opts.Clock),
		metrics:    metrics,
		calls:      map[string]*call{},
		open:       map[string][]*os.File{},
		pinned:     map[string]int{},
	}
	if c.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = time.Minute
		c.client = &http.Client{Transport: t}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.maxVirtual <= 0 {
		c.maxVirtual = qcow2.DefaultMaxVirtualSize
	}
	c.maxDownload = opts.MaxDownloadSize
	if c.maxDownload <= 0 {
		c.maxDownload = c.maxVirtual + c.maxVirtual/8
	}
	c.evict() // a bound lowered since the last run applies now
	return c, nil
}

// Prepare makes the image at url (http, https or file) available as a raw
// file and returns that file's sha256 (hex) and size; Open then serves it.
// checksum ("sha256:<hex>" or "sha512:<hex>") is of the bytes at url, and
// format is "raw" or "qcow2". An image already prepared for the same
// checksum and format costs a stat; concurrent calls for it share one
// download. A failed preparation leaves nothing behind and is retried by
// the next call.
func (c *Cache) Prepare(ctx context.Context, url, checksum, format string) (sha256 string, size int64, err error) {
	src, err := parseSource(url, checksum, format)
	if err != nil {
		return "", 0, fmt.Errorf("image %s: %w", redactURL(url), err)
	}
	if e, ok := c.hit(src); ok {
		return e.SHA256, e.Size, nil
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", 0, fmt.Errorf("image %s: imagecache: cache closed", src.display)
	}
	cl, ok := c.calls[src.key]
	if !ok {
		// The preparation outlives any one caller: it stops when the last
		// waiter gives up or the cache closes.
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cl = &call{done: make(chan struct{}), cancel: cancel}
		c.calls[src.key] = cl
		c.wg.Add(1)
		go c.run(pctx, src, cl)
	}
	cl.waiters++
	c.mu.Unlock()

	select {
	case <-cl.done:
		if cl.err != nil {
			return "", 0, cl.err
		}
		return cl.res.SHA256, cl.res.Size, nil
	case <-ctx.Done():
		c.mu.Lock()
		cl.waiters--
		if cl.waiters == 0 {
			cl.cancel()
			// A later Prepare starts afresh instead of joining a cancelled one.
			if c.calls[src.key] == cl {
				delete(c.calls, src.key)
			}
		}
		c.mu.Unlock()
		return "", 0, fmt.Errorf("image %s: wait for preparation: %w", src.display, ctx.Err())
	}
}

func (c *Cache) run(ctx context.Context, src source, cl *call) {
	defer c.wg.Done()
	defer cl.cancel()
	start := time.Now()
	res, stored, err := c.prepare(ctx, src)
	if err != nil {
		err = fmt.Errorf("image %s: %w", src.display, err)
		c.log.Warn("image preparation failed", "url", src.display, "checksum", src.checksum, "err", err)
	} else {
		c.log.Info("image prepared", "url", src.display, "checksum", src.checksum, "format", src.format,
			"sha256", res.SHA256, "size", res.Size, "duration", time.Since(start).Round(time.Millisecond))
	}
	if stored {
		c.evict()
		c.unpin(res.SHA256)
	}
	c.mu.Lock()
	if c.calls[src.key] == cl {
		delete(c.calls, src.key)
	}
	cl.res, cl.err = res, err
	c.mu.Unlock()
	close(cl.done)
}

// Open opens the prepared raw image whose sha256 (hex) Prepare returned,
// and records its use. The image is not evicted while the file is open.
func (c *Cache) Open(sha256 string) (*os.File, error) {
	if !isHex(sha256, 64) {
		return nil, fmt.Errorf("imagecache: open %q: %w: not a sha256 in lower-case hex", sha256, fs.ErrInvalid)
	}
	c.useMu.Lock()
	defer c.useMu.Unlock()
	f, err := os.Open(c.rawPath(sha256))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("imagecache: image %s is not prepared; call Prepare first: %w", sha256, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("imagecache: open image %s: %w", sha256, err)
	}
	c.touchLocked(sha256)
	c.open[sha256] = append(c.openLocked(sha256), f)
	return f, nil
}

// Close cancels the preparations in flight and waits for them to stop.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	for _, cl := range c.calls {
		cl.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

func (c *Cache) rawPath(sha256 string) string { return filepath.Join(c.dir, "raw", sha256) }
