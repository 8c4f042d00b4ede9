package imagecache

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"metalsync.dev/metalsync/imagecache/qcow2"
)

// copyBuf is the chunk size for downloads, conversion and hashing.
const copyBuf = 1 << 20

// prepare downloads, verifies and (for qcow2) converts src, then commits
// the raw file and its index entry. On error the temporary files go.
// stored reports that a raw file was moved into the cache: it is pinned
// against eviction (res.SHA256), and the caller unpins it.
func (c *Cache) prepare(ctx context.Context, src source) (res entry, stored bool, err error) {
	if e, ok := c.hit(src); ok { // prepared while this call was starting
		return e, false, nil
	}
	res, err = c.store(ctx, src, func(sha string) { c.pin(sha); stored = true })
	if err != nil && stored {
		c.unpin(res.SHA256)
		stored = false
	}
	return res, stored, err
}

// store is prepare past the lookup. It calls pin with the raw file's
// sha256 before moving the file into the cache, and returns it in the
// entry even on error once pinned.
func (c *Cache) store(ctx context.Context, src source, pin func(sha256 string)) (entry, error) {
	tmp := filepath.Join(c.dir, "tmp")
	dl, err := os.CreateTemp(tmp, "download-*")
	if err != nil {
		return entry{}, fmt.Errorf("create download file in the cache directory: %w", err)
	}
	defer func() { dl.Close(); os.Remove(dl.Name()) }()

	limit := c.maxDownload
	if src.format == "raw" {
		limit = min(limit, c.maxVirtual)
	}
	n, got, rawSHA, err := c.download(ctx, src, dl, limit)
	if err != nil {
		return entry{}, err
	}
	if got != src.digest {
		return entry{}, fmt.Errorf("%w: expected %s, got %s:%s; fix the checksum in the inventory or the image at the URL",
			ErrChecksumMismatch, src.checksum, src.algo, got)
	}

	out, size := dl, n
	if src.format == "qcow2" {
		img, err := qcow2.Open(dl, n, qcow2.Limits{MaxVirtualSize: c.maxVirtual})
		if err != nil {
			return entry{}, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		out, err = os.CreateTemp(tmp, "raw-*")
		if err != nil {
			return entry{}, fmt.Errorf("create raw file in the cache directory: %w", err)
		}
		defer func() { out.Close(); os.Remove(out.Name()) }()
		if rawSHA, err = convert(ctx, img, out); err != nil {
			if errors.Is(err, qcow2.ErrInvalid) || errors.Is(err, qcow2.ErrUnsupported) {
				err = fmt.Errorf("%w: %w", ErrRefused, err)
			}
			return entry{}, fmt.Errorf("convert qcow2 to raw: %w", err)
		}
		size = img.VirtualSize()
	}

	if err := out.Sync(); err != nil {
		return entry{}, fmt.Errorf("sync raw image: %w", err)
	}
	// Pinned before it is in raw/, so that no eviction pass of another
	// preparation removes it before this one's pass is over.
	pin(rawSHA)
	pinned := entry{SHA256: rawSHA}
	if err := os.Rename(out.Name(), c.rawPath(rawSHA)); err != nil {
		return pinned, fmt.Errorf("commit raw image: %w", err)
	}
	if err := syncDir(filepath.Join(c.dir, "raw")); err != nil {
		return pinned, err
	}
	c.useMu.Lock()
	c.touchLocked(rawSHA) // the rename kept the temporary file's time
	c.useMu.Unlock()
	e := entry{Source: src.display, Checksum: src.checksum, Format: src.format, SHA256: rawSHA, Size: size, Prepared: c.clock.Now().UTC()}
	if err := c.writeIndex(src.key, e); err != nil {
		return pinned, err
	}
	return e, nil
}

// download copies the bytes at src into dst (sparsely) while hashing them.
// It returns their length, their digest in src's algorithm and, for raw
// images, their sha256.
func (c *Cache) download(ctx context.Context, src source, dst *os.File, limit int64) (n int64, digest, rawSHA string, err error) {
	body, err := c.openSource(ctx, src)
	if err != nil {
		return 0, "", "", err
	}
	defer body.Close()

	var h, h256 hash.Hash
	w := []io.Writer{}
	if src.algo == "sha512" {
		h = sha512.New()
		w = append(w, h)
		if src.format == "raw" {
			h256 = sha256.New()
			w = append(w, h256)
		}
	} else {
		h = sha256.New()
		h256 = h
		w = append(w, h)
	}
	sw := &sparseWriter{f: dst}
	w = append(w, sw)
	// LimitReader also hides any WriterTo, so CopyBuffer uses our buffer.
	n, err = io.CopyBuffer(io.MultiWriter(w...), io.LimitReader(body, limit+1), make([]byte, copyBuf))
	if err != nil {
		return 0, "", "", fmt.Errorf("download broke off after %d bytes: %w", n, stripURL(err))
	}
	if n > limit {
		return 0, "", "", fmt.Errorf("%w: larger than the limit of %d bytes", ErrRefused, limit)
	}
	if err := dst.Truncate(n); err != nil { // trailing zeros were skipped
		return 0, "", "", fmt.Errorf("size download file: %w", err)
	}
	digest = hex.EncodeToString(h.Sum(nil))
	if h256 != nil {
		rawSHA = hex.EncodeToString(h256.Sum(nil))
	}
	return n, digest, rawSHA, nil
}

func (c *Cache) openSource(ctx context.Context, src source) (io.ReadCloser, error) {
	if src.url.Scheme == "file" {
		f, err := os.Open(src.url.Path)
		if err != nil {
			return nil, fmt.Errorf("open: %w", err)
		}
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("%w: not a regular file", ErrRefused)
		}
		return f, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: build request: %w", ErrRefused, stripURL(err))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET: %w", stripURL(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		hint := "check the image URL"
		if resp.StatusCode >= 500 {
			hint = "the image server failed; retry later"
		}
		return nil, fmt.Errorf("GET: server answered %s; %s", resp.Status, hint)
	}
	return resp.Body, nil
}

// stripURL drops the *url.Error layer, whose text holds the unredacted
// URL; the caller names the redacted one.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
