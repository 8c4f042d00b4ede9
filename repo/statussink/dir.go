package statussink

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"metalsync.dev/metalsync/schema"
)

// Dir writes status files (status/<node>.yaml) into a directory: the
// status sink of `metalsync apply` and of `serve --local`.
type Dir struct {
	Dir string
	// SubDir, when set, names the sub-directory of Dir for a node's status
	// (mirroring its place under nodes/); nil keeps every file in Dir.
	SubDir func(node string) string
	// Was, when set, returns where the node's status file is now, relative
	// to Dir ("" for none), so that a node whose place changed leaves no
	// stale copy behind.
	Was func(node string) string
}

func (d Dir) path(node string) string {
	if d.SubDir == nil {
		return filepath.Join(d.Dir, node+".yaml")
	}
	return filepath.Join(d.Dir, filepath.FromSlash(d.SubDir(node)), node+".yaml")
}

// WriteStatus writes the node's status file atomically.
func (d Dir) WriteStatus(node string, st schema.NodeStatusBody) error {
	b, err := schema.MarshalStatus(&schema.NodeStatus{Metadata: schema.Meta{Name: node}, Status: st})
	if err != nil {
		return err
	}
	target := d.path(node)
	if err := writeFile(target, "."+node+".*.tmp", b, 0o600); err != nil {
		return fmt.Errorf("status %s: %w", node, err)
	}
	if d.Was != nil {
		if was := d.Was(node); was != "" && filepath.Join(d.Dir, filepath.FromSlash(was)) != target {
			if err := os.Remove(filepath.Join(d.Dir, filepath.FromSlash(was))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("status %s: remove old copy: %w", node, err)
			}
		}
	}
	return nil
}

// ForgetStatus removes the node's status file.
func (d Dir) ForgetStatus(node string) error {
	p := d.path(node)
	if d.Was != nil {
		if was := d.Was(node); was != "" {
			p = filepath.Join(d.Dir, filepath.FromSlash(was))
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("status %s: %w", node, err)
	}
	return nil
}

// UpdateFile writes a file of the status directory that is not a node's
// status, such as the invalid-inventory report (nil data deletes it). The
// summary is for commit messages; a directory has none.
func (d Dir) UpdateFile(name string, data []byte, _ string) error {
	p := filepath.Join(d.Dir, name)
	if data == nil {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("status file %s: %w", name, err)
		}
		return nil
	}
	if err := writeFile(p, "."+name+".*.tmp", data, 0o644); err != nil {
		return fmt.Errorf("status file %s: %w", name, err)
	}
	return nil
}

// writeFile replaces target with data atomically and durably: a temporary
// file in the same directory, synced, then renamed over target.
func writeFile(target, pattern string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), pattern)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), target)
}
