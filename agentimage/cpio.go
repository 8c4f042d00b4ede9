package agentimage

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// A newc ("070701") cpio writer, the initramfs format the kernel unpacks
// (Documentation/driver-api/early-userspace/buffer-format.rst). It is
// ~100 lines, so owning it beats pulling u-root's module graph into
// metalsync for one writer; it makes every archive reproducible by
// construction: sorted names, one mtime, uid/gid 0, inodes by position.

// File type bits of a cpio mode.
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// cpioEntry is one archive member. Name has no leading slash.
type cpioEntry struct {
	Name string
	Mode uint32 // type bits | permissions
	// Data is the file's content, or a symlink's target.
	Data []byte
	// Major and Minor are a device node's number.
	Major, Minor uint32
}

// writeNewc writes entries (plus any missing parent directories, 0755)
// sorted by name, every one stamped with mtime, and the trailer.
func writeNewc(w io.Writer, entries []cpioEntry, mtime int64) error {
	byName := map[string]cpioEntry{}
	for _, e := range entries {
		name := path.Clean(strings.TrimPrefix(e.Name, "/"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("cpio: entry %q: invalid name", e.Name)
		}
		if _, dup := byName[name]; dup {
			return fmt.Errorf("cpio: entry %s: listed twice", name)
		}
		e.Name = name
		byName[name] = e
	}
	for name := range byName {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if p, ok := byName[d]; ok {
				if p.Mode&0o170000 != modeDir {
					return fmt.Errorf("cpio: %s: parent %s is not a directory", name, d)
				}
				continue
			}
			byName[d] = cpioEntry{Name: d, Mode: modeDir | 0o755}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	bw := bufio.NewWriterSize(w, 1<<20)
	for i, n := range names {
		if err := writeNewcRecord(bw, uint32(i+1), byName[n], mtime); err != nil {
			return err
		}
	}
	if err := writeNewcRecord(bw, 0, cpioEntry{Name: "TRAILER!!!"}, 0); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cpio: %w", err)
	}
	return nil
}

var zeros [4]byte

func writeNewcRecord(w *bufio.Writer, ino uint32, e cpioEntry, mtime int64) error {
	nlink := uint32(1)
	if e.Mode&0o170000 == modeDir {
		nlink = 2
	}
	if len(e.Data) > 0xffffffff {
		return fmt.Errorf("cpio: %s: too large", e.Name)
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.Mode, 0, 0, nlink, uint32(mtime), len(e.Data), 0, 0, e.Major, e.Minor, len(e.Name)+1, 0)
	w.WriteString(hdr)
	w.WriteString(e.Name)
	w.WriteByte(0)
	w.Write(zeros[:pad4(len(hdr)+len(e.Name)+1)])
	w.Write(e.Data)
	if _, err := w.Write(zeros[:pad4(len(e.Data))]); err != nil {
		return fmt.Errorf("cpio: %s: %w", e.Name, err)
	}
	return nil
}

// pad4 is the padding that brings n to a multiple of 4.
func pad4(n int) int { return (4 - n%4) % 4 }
