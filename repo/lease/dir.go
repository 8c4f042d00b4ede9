package lease

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// FileName is the lease file of a directory inventory.
const FileName = ".metalsync.lease"

// ForDir returns the lease kept in dir (FileName).
func ForDir(dir string) *Lease {
	return New(DirStore(dir), Options{})
}

// DirStore keeps the record in the file FileName of dir, as JSON. A swap
// holds an exclusive flock(2) on dir itself while it compares and writes,
// so only processes that take that lock (metalsync) are excluded; the
// record is written to a temporary file and renamed into place, so a
// reader never sees half a record. A crashed holder leaves the file behind
// until it expires or is broken. The version is the SHA-256 of the file.
func DirStore(dir string) Store { return &dirStore{dir: dir} }

type dirStore struct{ dir string }

func (d *dirStore) path() string { return filepath.Join(d.dir, FileName) }

func (d *dirStore) String() string { return d.path() }

func (d *dirStore) Load(ctx context.Context) (*Record, Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	return d.read()
}

func (d *dirStore) read() (*Record, Version, error) {
	b, err := os.ReadFile(d.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	rec, err := parseRecord(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w (remove the file if no metalsync run is active)", d.path(), err)
	}
	sum := sha256.Sum256(b)
	return rec, Version(hex.EncodeToString(sum[:])), nil
}

func (d *dirStore) Swap(ctx context.Context, old Version, rec *Record) (Version, error) {
	unlock, err := lockDir(ctx, d.dir)
	if err != nil {
		return "", fmt.Errorf("lock %s: %w", d.dir, err)
	}
	defer unlock()
	_, cur, err := d.read()
	if err != nil {
		return "", err
	}
	if cur != old {
		return "", fmt.Errorf("%w: %s changed", ErrConflict, d.path())
	}
	if rec == nil {
		if err := os.Remove(d.path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", nil
	}
	b := rec.marshal()
	tmp, err := os.CreateTemp(d.dir, FileName+".tmp-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: already gone
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), d.path()); err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return Version(hex.EncodeToString(sum[:])), nil
}

// pollLock is how often lockDir retries a lock another process holds (for
// the microseconds of its swap).
const pollLock = 5 * time.Millisecond
