package gitsource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// treeFS is an fs.FS over one commit's tree objects. Directories are decoded
// once and indexed by name, so opening every file of a 10k-entry directory
// is linear, not quadratic.
type treeFS struct {
	src   *Source                    // for its lock
	st    storer.EncodedObjectStorer // the store the commit was read from: kept across compaction
	root  plumbing.Hash
	mtime time.Time // the commit's time, for every entry

	mu   sync.Mutex
	dirs map[plumbing.Hash]*dirIndex // guarded by mu
}

type dirIndex struct {
	entries []object.TreeEntry // sorted by name, submodules left out
	byName  map[string]int
}

var (
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
)

func newTreeFS(src *Source, st storer.EncodedObjectStorer, root plumbing.Hash, mtime time.Time) *treeFS {
	return &treeFS{src: src, st: st, root: root, mtime: mtime, dirs: map[plumbing.Hash]*dirIndex{}}
}

func (t *treeFS) dir(h plumbing.Hash) (*dirIndex, error) {
	t.mu.Lock()
	d := t.dirs[h]
	t.mu.Unlock()
	if d != nil {
		return d, nil
	}
	t.src.mu.Lock()
	tree, err := object.GetTree(t.st, h)
	t.src.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", h, err)
	}
	d = &dirIndex{byName: make(map[string]int, len(tree.Entries))}
	for _, e := range tree.Entries {
		if e.Mode == filemode.Submodule {
			continue
		}
		d.entries = append(d.entries, e)
	}
	// Git orders a directory "a" as "a/", fs.ReadDir wants plain names.
	sort.Slice(d.entries, func(i, j int) bool { return d.entries[i].Name < d.entries[j].Name })
	for i, e := range d.entries {
		d.byName[e.Name] = i
	}
	t.mu.Lock()
	t.dirs[h] = d
	t.mu.Unlock()
	return d, nil
}

// lookup resolves a valid fs path to its tree entry; "." is the root.
func (t *treeFS) lookup(op, name string) (object.TreeEntry, error) {
	if !fs.ValidPath(name) {
		return object.TreeEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	e := object.TreeEntry{Name: ".", Mode: filemode.Dir, Hash: t.root}
	if name == "." {
		return e, nil
	}
	for _, part := range strings.Split(name, "/") {
		if e.Mode != filemode.Dir {
			return object.TreeEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		d, err := t.dir(e.Hash)
		if err != nil {
			return object.TreeEntry{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		i, ok := d.byName[part]
		if !ok {
			return object.TreeEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		e = d.entries[i]
	}
	return e, nil
}

func (t *treeFS) blob(h plumbing.Hash) ([]byte, error) {
	t.src.mu.Lock()
	defer t.src.mu.Unlock()
	obj, err := t.st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	r, err := obj.Reader()
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	defer r.Close()
	buf := make([]byte, 0, obj.Size())
	w := bytes.NewBuffer(buf)
	if _, err := io.Copy(w, r); err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	return w.Bytes(), nil
}

func (t *treeFS) blobSize(h plumbing.Hash) (int64, error) {
	t.src.mu.Lock()
	defer t.src.mu.Unlock()
	obj, err := t.st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", h, err)
	}
	return obj.Size(), nil
}

var errSymlink = errors.New("symbolic links are not followed")

func (t *treeFS) Open(name string) (fs.File, error) {
	e, err := t.lookup("open", name)
	if err != nil {
		return nil, err
	}
	switch e.Mode {
	case filemode.Dir:
		d, err := t.dir(e.Hash)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &openDir{fsys: t, info: t.info(path.Base(name), e, 0), d: d}, nil
	case filemode.Symlink:
		return nil, &fs.PathError{Op: "open", Path: name, Err: errSymlink}
	}
	data, err := t.blob(e.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &openFile{info: t.info(path.Base(name), e, int64(len(data))), r: bytes.NewReader(data)}, nil
}

func (t *treeFS) ReadFile(name string) ([]byte, error) {
	e, err := t.lookup("read", name)
	if err != nil {
		return nil, err
	}
	switch e.Mode {
	case filemode.Dir:
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	case filemode.Symlink:
		return nil, &fs.PathError{Op: "read", Path: name, Err: errSymlink}
	}
	data, err := t.blob(e.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := t.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if e.Mode != filemode.Dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	d, err := t.dir(e.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(d.entries))
	for i, e := range d.entries {
		out[i] = dirEntry{t: t, e: e}
	}
	return out, nil
}

func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	e, err := t.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	var size int64
	if e.Mode.IsFile() {
		if size, err = t.blobSize(e.Hash); err != nil {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
		}
	}
	return t.info(path.Base(name), e, size), nil
}

func (t *treeFS) info(name string, e object.TreeEntry, size int64) fileInfo {
	return fileInfo{name: name, size: size, mode: fsMode(e.Mode), mtime: t.mtime}
}

func fsMode(m filemode.FileMode) fs.FileMode {
	switch m {
	case filemode.Dir:
		return fs.ModeDir | 0o755
	case filemode.Executable:
		return 0o755
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	}
	return 0o644
}

type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return i.mtime }
func (i fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }

type dirEntry struct {
	t *treeFS
	e object.TreeEntry
}

func (d dirEntry) Name() string      { return d.e.Name }
func (d dirEntry) IsDir() bool       { return d.e.Mode == filemode.Dir }
func (d dirEntry) Type() fs.FileMode { return fsMode(d.e.Mode).Type() }
func (d dirEntry) Info() (fs.FileInfo, error) {
	var size int64
	if d.e.Mode.IsFile() {
		var err error
		if size, err = d.t.blobSize(d.e.Hash); err != nil {
			return nil, err
		}
	}
	return d.t.info(d.e.Name, d.e, size), nil
}
func (d dirEntry) String() string { return fs.FormatDirEntry(d) }

type openFile struct {
	info fileInfo
	r    *bytes.Reader
}

func (f *openFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *openFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *openFile) Close() error               { return nil }

// Seek and ReadAt let http.FileServer and fstest use the file fully.
func (f *openFile) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }
func (f *openFile) ReadAt(p []byte, off int64) (int, error)   { return f.r.ReadAt(p, off) }

type openDir struct {
	fsys *treeFS
	info fileInfo
	d    *dirIndex
	off  int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}
func (d *openDir) Close() error { return nil }

func (d *openDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.d.entries[d.off:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	d.off += len(rest)
	out := make([]fs.DirEntry, len(rest))
	for i, e := range rest {
		out[i] = dirEntry{t: d.fsys, e: e}
	}
	return out, nil
}
