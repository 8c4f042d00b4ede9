package imagecache

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Eviction keeps the cache directory under Options.MaxBytes. Each raw
// image's last use is its file's modification time, which a Prepare that
// finds it and every Open set, so the order survives a restart. After an
// image is stored, the least recently used raw images go until the
// directory is under the bound, except the ones Open handed out that are
// still open and the ones just stored. Downloads and conversions in
// progress (tmp/) count but stay.

// cacheMetrics are the cache's Prometheus metrics.
type cacheMetrics struct {
	evictions prometheus.Counter
	bytes     prometheus.Gauge
}

func newCacheMetrics(reg prometheus.Registerer) (*cacheMetrics, error) {
	m := &cacheMetrics{
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metalsync_image_cache_evictions_total", Help: "Raw images removed from the image cache to keep it under its size bound.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "metalsync_image_cache_bytes", Help: "Disk space the image cache uses (raw images and preparations in progress), as of its last store.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.evictions, m.bytes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("image cache metrics: %w", err)
		}
	}
	return m, nil
}

// rawFile is one raw image on disk.
type rawFile struct {
	sha     string
	lastUse time.Time
	bytes   int64 // disk space, not apparent size: raw images are sparse
}

// touchLocked records a use of the raw image sha (c.useMu held). A failure
// only makes the image look older than it is.
func (c *Cache) touchLocked(sha string) {
	now := c.clock.Now()
	if err := os.Chtimes(c.rawPath(sha), now, now); err != nil {
		c.log.Warn("image cache: record last use", "sha256", sha, "err", err)
	}
}

// openLocked returns the files Open handed out for sha that are still
// open, forgetting the closed ones (c.useMu held). The agent server only
// gets an *os.File, so the cache asks each file: Stat on a closed
// *os.File fails with os.ErrClosed, safely against a concurrent Close.
func (c *Cache) openLocked(sha string) []*os.File {
	files := c.open[sha]
	live := files[:0]
	for _, f := range files {
		if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
			live = append(live, f)
		}
	}
	clear(files[len(live):]) // let closed files be collected
	if len(live) == 0 {
		delete(c.open, sha)
		return nil
	}
	c.open[sha] = live
	return live
}

// pin keeps sha from eviction until unpin: an image being stored, from
// before its rename into raw/ until its store's eviction pass is over.
func (c *Cache) pin(sha string) {
	c.useMu.Lock()
	c.pinned[sha]++
	c.useMu.Unlock()
}

func (c *Cache) unpin(sha string) {
	c.useMu.Lock()
	if c.pinned[sha]--; c.pinned[sha] <= 0 {
		delete(c.pinned, sha)
	}
	c.useMu.Unlock()
}

// evict removes least recently used raw images until the cache directory
// is under the bound, and reports the space used.
func (c *Cache) evict() {
	c.useMu.Lock()
	defer c.useMu.Unlock()
	raws, total, err := c.scanLocked()
	if err != nil {
		c.log.Warn("image cache: measure", "err", err)
		return
	}
	defer func() { c.metrics.bytes.Set(float64(total)) }()
	if c.maxBytes <= 0 || total <= c.maxBytes {
		return
	}
	slices.SortFunc(raws, func(a, b rawFile) int {
		return cmp.Or(a.lastUse.Compare(b.lastUse), strings.Compare(a.sha, b.sha))
	})
	sources := c.indexBySHALocked()
	for _, r := range raws {
		if total <= c.maxBytes {
			return
		}
		if c.pinned[r.sha] > 0 || len(c.openLocked(r.sha)) > 0 {
			continue
		}
		// The index entries go first: a crash in between leaves a raw file
		// no entry names, which the next pass may evict.
		var urls []string
		for _, s := range sources[r.sha] {
			if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.log.Warn("image cache: remove index entry", "sha256", r.sha, "err", err)
			}
			urls = append(urls, s.url)
		}
		if err := os.Remove(c.rawPath(r.sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("image cache: evict", "sha256", r.sha, "err", err)
			continue
		}
		total -= r.bytes
		c.metrics.evictions.Inc()
		c.log.Info("image evicted", "sha256", r.sha, "bytes", r.bytes, "last_use", r.lastUse.UTC().Format(time.RFC3339),
			"urls", strings.Join(urls, " "), "cache_bytes", total, "max_bytes", c.maxBytes)
	}
	if total > c.maxBytes {
		c.log.Warn("image cache above its bound: the rest is in use, just stored or being prepared",
			"cache_bytes", total, "max_bytes", c.maxBytes)
	}
}

// scanLocked lists the raw images and adds up the disk space they and the
// preparations in progress take.
func (c *Cache) scanLocked() ([]rawFile, int64, error) {
	var raws []rawFile
	var total int64
	for _, sub := range []string{"raw", "tmp"} { // index entries are tiny
		entries, err := os.ReadDir(filepath.Join(c.dir, sub))
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", filepath.Join(c.dir, sub), err)
		}
		for _, e := range entries {
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // a preparation finished or failed meanwhile
			}
			if err != nil {
				return nil, 0, fmt.Errorf("stat %s: %w", filepath.Join(c.dir, sub, e.Name()), err)
			}
			if !fi.Mode().IsRegular() {
				continue
			}
			n := diskBytes(fi)
			total += n
			if sub == "raw" && isHex(e.Name(), 64) {
				raws = append(raws, rawFile{sha: e.Name(), lastUse: fi.ModTime(), bytes: n})
			}
		}
	}
	return raws, total, nil
}

type indexRef struct{ path, url string }

// indexBySHALocked maps raw sha256 to the index entries naming it. An
// unreadable entry names nothing: lookup prepares its image again anyway.
func (c *Cache) indexBySHALocked() map[string][]indexRef {
	out := map[string][]indexRef{}
	dir := filepath.Join(c.dir, "index")
	entries, err := os.ReadDir(dir)
	if err != nil {
		c.log.Warn("image cache: read index", "err", err)
		return out
	}
	for _, de := range entries {
		p := filepath.Join(dir, de.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var e entry
		if json.Unmarshal(b, &e) == nil && isHex(e.SHA256, 64) {
			out[e.SHA256] = append(out[e.SHA256], indexRef{path: p, url: e.Source})
		}
	}
	return out
}
