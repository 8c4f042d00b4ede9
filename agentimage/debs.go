package agentimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// fetchDeb returns the path of d's .deb in dir (named by its sha256),
// downloading it with apt-get when missing. A file whose sum differs from
// the lock is an error naming the package, never silently replaced.
func fetchDeb(ctx context.Context, dir string, d Deb) (string, error) {
	path := filepath.Join(dir, d.SHA256+".deb")
	if sum, err := fileSHA256(path); err == nil {
		if sum != d.SHA256 {
			return "", fmt.Errorf("package %s=%s: cached %s has sha256 %s, the lock says %s; delete it to download again", d.Name, d.Version, path, sum, d.SHA256)
		}
		return path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("package %s: %w", d.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("deb cache: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, "download-")
	if err != nil {
		return "", fmt.Errorf("deb cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	// apt-get download fetches exactly NAME=VERSION from the configured
	// sources, verified against the signed archive index.
	if _, err := run(ctx, nil, tmp, "apt-get", "download", "-q", d.Name+"="+d.Version); err != nil {
		return "", fmt.Errorf("package %s=%s: download: %w; %s", d.Name, d.Version, err, refreshHint)
	}
	got, err := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if err != nil || len(got) != 1 {
		return "", fmt.Errorf("package %s=%s: download: want one .deb, got %d", d.Name, d.Version, len(got))
	}
	sum, err := fileSHA256(got[0])
	if err != nil {
		return "", fmt.Errorf("package %s: %w", d.Name, err)
	}
	if sum != d.SHA256 {
		return "", fmt.Errorf("package %s=%s: downloaded .deb has sha256 %s, the lock says %s; %s", d.Name, d.Version, sum, d.SHA256, refreshHint)
	}
	if err := os.Rename(got[0], path); err != nil {
		return "", fmt.Errorf("package %s: %w", d.Name, err)
	}
	return path, nil
}

// extractDebs unpacks every deb into root (dpkg-deb -x: no scripts run).
func extractDebs(ctx context.Context, debs map[string]string, order []Deb, root string) error {
	for _, d := range order {
		if _, err := run(ctx, nil, "", "dpkg-deb", "-x", debs[d.Name], root); err != nil {
			return fmt.Errorf("package %s: extract: %w", d.Name, err)
		}
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
