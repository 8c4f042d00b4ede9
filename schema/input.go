package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Inventory files are regular files inside the repository. Every symbolic
// link is refused, including one that points inside the repository: the
// CLI reads the working tree through os.DirFS, which follows links out of
// the directory (to /etc/shadow, or to another repository's nodes), while
// the daemon reads a Git tree, where a link is a blob holding the target's
// name. Refusing all of them gives both the same answer and leaves no
// resolution rules to get wrong; a file shared by several resources is
// what templates are for. Named pipes, devices and sockets are refused
// from their directory entry, before anything opens them: opening a FIFO
// blocks until a writer comes.

// entryProblem says what is wrong with a directory entry's type for an
// inventory file or directory, or "" when it is a regular file or a
// directory.
func entryProblem(t fs.FileMode) string {
	switch {
	case t&fs.ModeSymlink != 0:
		return "is a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "is a named pipe (FIFO)"
	case t&fs.ModeDevice != 0, t&fs.ModeCharDevice != 0:
		return "is a device"
	case t&fs.ModeSocket != 0:
		return "is a socket"
	case t&fs.ModeIrregular != 0:
		return "is not a regular file"
	}
	return ""
}

// entryHint says what to do about an entry entryProblem refused.
func entryHint(t fs.FileMode) string {
	if t&fs.ModeSymlink != 0 {
		return "replace the link with a regular file; symbolic links are refused because they can point outside the repository"
	}
	return "remove it; inventory files are regular files committed to the repository"
}

// entryDiag is the error for an entry of the wrong type.
func entryDiag(p string, t fs.FileMode) Diagnostic {
	return Diagnostic{File: p, Severity: SevError, Code: CodeYAML, Message: entryProblem(t), Hint: entryHint(t)}
}

// lstat returns the type of p without following a symbolic link at p or at
// any directory on the way to it, so that a path never leads outside fsys.
// It reads the parent directories' entries: fs.Stat follows links, and not
// every fs.FS implements fs.ReadLinkFS. The error wraps fs.ErrNotExist when
// p does not exist; a link on the way is reported as the link's type with
// the path of the link.
func lstat(fsys fs.FS, p string) (string, fs.FileMode, error) {
	if p == "." {
		return p, fs.ModeDir, nil
	}
	if !fs.ValidPath(p) {
		return p, 0, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrInvalid}
	}
	parts := strings.Split(p, "/")
	dir := "."
	for i, name := range parts {
		t, err := entryType(fsys, dir, name)
		if err != nil {
			return p, 0, err
		}
		cur := path.Join(dir, name)
		if i == len(parts)-1 || t&fs.ModeType != fs.ModeDir {
			return cur, t, nil
		}
		dir = cur
	}
	return p, 0, nil // not reached
}

// entryType finds name in dir. With fs.ReadLinkFS it asks for that one
// entry; otherwise it lists dir, which the callers only do for the
// repository's root and top-level directories.
func entryType(fsys fs.FS, dir, name string) (fs.FileMode, error) {
	p := path.Join(dir, name)
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		fi, err := rl.Lstat(p)
		if err != nil {
			return 0, err
		}
		return fi.Mode().Type(), nil
	}
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if e.Name() == name {
			return e.Type(), nil
		}
	}
	return 0, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
}

// readSite reads the site file if it is a regular file of the
// repository. ok is false when there is no site file; a site file that
// cannot be read is reported in the diagnostic.
func readSite(fsys fs.FS) (data []byte, d *Diagnostic, ok bool) {
	_, t, err := lstat(fsys, SiteFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false
	}
	if err != nil {
		return nil, &Diagnostic{File: SiteFile, Severity: SevError, Code: CodeYAML, Message: "cannot read: " + err.Error()}, true
	}
	if entryProblem(t) != "" {
		d := entryDiag(SiteFile, t)
		return nil, &d, true
	}
	if t.IsDir() {
		return nil, &Diagnostic{File: SiteFile, Severity: SevError, Code: CodeYAML, Message: "is a directory", Hint: "metalsync.yaml is the Site resource (kind: Site)"}, true
	}
	data, r, readOK := readJob(fsys, job{path: SiteFile, kind: KindSite})
	if !readOK {
		return nil, &r.diags[0], true
	}
	return data, nil, true
}

// sizeDiag is the error for a file over maxFileSize.
func sizeDiag(p string, size int64) Diagnostic {
	return Diagnostic{File: p, Severity: SevError, Code: CodeYAML,
		Message: fmt.Sprintf("file is %d bytes; inventory files are limited to %d", size, maxFileSize),
		Hint:    "one resource per file; an inventory resource is a few kilobytes"}
}
