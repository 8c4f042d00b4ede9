package imagecache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// entry is one index file: what a source checksum and format became.
type entry struct {
	Source   string    `json:"source"` // redacted URL, for people reading the cache
	Checksum string    `json:"checksum"`
	Format   string    `json:"format"`
	SHA256   string    `json:"sha256"`
	Size     int64     `json:"size"`
	Prepared time.Time `json:"prepared"`
}

func (c *Cache) indexPath(key string) string {
	return filepath.Join(c.dir, "index", key+".json")
}

// lookup returns the entry for src if its raw file is present with the
// recorded size. The raw file was complete and synced before the entry was
// written, so size is a cheap, sufficient check against truncation and
// deletion; the agent verifies the content's sha256 as it writes anyway.
func (c *Cache) lookup(src source) (entry, bool) {
	var e entry
	b, err := os.ReadFile(c.indexPath(src.key))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("image cache index unreadable; preparing again", "checksum", src.checksum, "err", err)
		}
		return e, false
	}
	if err := json.Unmarshal(b, &e); err != nil || !isHex(e.SHA256, 64) || e.Checksum != src.checksum {
		c.log.Warn("image cache index entry malformed; preparing again", "checksum", src.checksum)
		return e, false
	}
	st, err := os.Stat(c.rawPath(e.SHA256))
	if err != nil || !st.Mode().IsRegular() || st.Size() != e.Size {
		c.log.Warn("cached raw image missing or truncated; preparing again", "checksum", src.checksum, "sha256", e.SHA256)
		return e, false
	}
	return e, true
}

// hit is lookup for a Prepare: an image found is used, so its last use is
// recorded, in step with eviction.
func (c *Cache) hit(src source) (entry, bool) {
	c.useMu.Lock()
	defer c.useMu.Unlock()
	e, ok := c.lookup(src)
	if ok {
		c.touchLocked(e.SHA256)
	}
	return e, ok
}

// writeIndex records e atomically: a reader sees the whole entry or none.
func (c *Cache) writeIndex(key string, e entry) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("encode index entry: %w", err)
	}
	f, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "index-*")
	if err != nil {
		return fmt.Errorf("create index entry: %w", err)
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write index entry: %w", err)
	}
	if err := os.Rename(f.Name(), c.indexPath(key)); err != nil {
		return fmt.Errorf("commit index entry: %w", err)
	}
	return syncDir(filepath.Join(c.dir, "index"))
}

// syncDir makes a rename into dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
