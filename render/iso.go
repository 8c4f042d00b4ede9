package render

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kdomanski/iso9660"
)

// File is one file of an image.
type File struct {
	// Path is slash-separated and relative, like openstack/latest/user_data.
	Path string
	Data []byte
}

// ISO is an ISO 9660 image to write. Every input is explicit: the same ISO
// value gives the same bytes.
type ISO struct {
	// VolumeID is the volume label (blkid's LABEL), at most 32 bytes.
	VolumeID string
	// ModTime is written as the volume's creation, modification and
	// effective time (blkid derives the filesystem UUID from it).
	ModTime time.Time
	Files   []File
}

// Offsets in the primary volume descriptor (sector 16) of the timestamps
// kdomanski/iso9660 fills with time.Now(): creation, modification and
// effective date (ECMA-119 8.4.26-8.4.29; expiration at 847 stays zero).
const (
	sectorSize    = 2048
	pvdOffset     = 16 * sectorSize
	tsCreation    = 813
	tsModified    = 830
	tsEffective   = 864
	tsLen         = 17
	rootRecord    = 156 // the root directory record in the descriptor
	maxLabelBytes = 32
)

// WriteISO writes img to w and returns the number of bytes written. Names
// are checked first: kdomanski/iso9660 writes plain ISO 9660 names (no Rock
// Ridge, no Joliet) and silently lowercases, shortens, replaces characters
// and lets colliding names overwrite each other, so any name it would
// change is an error here instead.
func WriteISO(w io.Writer, img ISO) (int64, error) {
	if err := checkLabel(img.VolumeID); err != nil {
		return 0, fmt.Errorf("volume id %q: %w", img.VolumeID, err)
	}
	// Directory records store the year as 1900 + one byte.
	if y := img.ModTime.UTC().Year(); y < 1970 || y > 2155 {
		return 0, fmt.Errorf("modification time %s: want a time between 1970 and 2155", img.ModTime)
	}
	if err := checkPaths(img.Files); err != nil {
		return 0, err
	}
	iw, err := iso9660.NewWriter()
	if err != nil {
		return 0, fmt.Errorf("iso: staging: %w", err)
	}
	defer iw.Cleanup()
	for _, f := range img.Files {
		if err := iw.AddFile(bytes.NewReader(f.Data), f.Path); err != nil {
			return 0, fmt.Errorf("iso: add %s: %w", f.Path, err)
		}
	}
	// Boot media are small (tens of KiB): build the image in memory so its
	// timestamps can be fixed before anything reaches w.
	var buf bytes.Buffer
	if err := iw.WriteTo(&buf, img.VolumeID); err != nil {
		return 0, fmt.Errorf("iso: write: %w", err)
	}
	if err := stampTimes(buf.Bytes(), img.ModTime); err != nil {
		return 0, fmt.Errorf("iso: %w", err)
	}
	n, err := w.Write(buf.Bytes())
	if err != nil {
		return int64(n), fmt.Errorf("iso: write: %w", err)
	}
	return int64(n), nil
}

// stampTimes replaces the library's timestamps with t: the volume
// descriptor's creation, modification and effective time (it writes
// time.Now) and every directory record's recording time (it writes Go's
// zero time, which reads back as 2049-01-01).
func stampTimes(img []byte, t time.Time) error {
	if len(img) < pvdOffset+sectorSize || img[pvdOffset] != 1 || string(img[pvdOffset+1:pvdOffset+6]) != "CD001" {
		return errors.New("no primary volume descriptor at sector 16")
	}
	vts := iso9660.VolumeDescriptorTimestampFromTime(t)
	stamp, err := vts.MarshalBinary()
	if err != nil || len(stamp) != tsLen {
		return fmt.Errorf("timestamp %s: %v", t, err)
	}
	for _, at := range []int{tsCreation, tsModified, tsEffective} {
		copy(img[pvdOffset+at:], stamp)
	}
	var rec [7]byte
	iso9660.RecordingTimestamp(t.UTC()).MarshalBinary(rec[:])
	root := img[pvdOffset+rootRecord : pvdOffset+rootRecord+34]
	copy(root[18:25], rec[:])
	seen := map[uint32]bool{}
	var walk func(lba, size uint32, depth int) error
	walk = func(lba, size uint32, depth int) error {
		if depth > 8 {
			return errors.New("directory tree deeper than 8 levels")
		}
		if seen[lba] {
			return nil
		}
		seen[lba] = true
		start, end := int(lba)*sectorSize, int(lba)*sectorSize+int(size)
		if start < 0 || end > len(img) || end < start {
			return fmt.Errorf("directory extent %d+%d outside the image", lba, size)
		}
		for off := start; off < end; {
			l := int(img[off])
			if l == 0 { // records do not cross sectors: the rest is padding
				off = (off/sectorSize + 1) * sectorSize
				continue
			}
			if l < 34 || off+l > end || 33+int(img[off+32]) > l {
				return fmt.Errorf("bad directory record at byte %d", off)
			}
			r := img[off : off+l]
			copy(r[18:25], rec[:])
			name := r[33 : 33+int(r[32])]
			self := len(name) == 1 && (name[0] == 0 || name[0] == 1)
			if r[25]&2 != 0 && !self {
				if err := walk(binary.LittleEndian.Uint32(r[2:6]), binary.LittleEndian.Uint32(r[10:14]), depth+1); err != nil {
					return err
				}
			}
			off += l
		}
		return nil
	}
	return walk(binary.LittleEndian.Uint32(root[2:6]), binary.LittleEndian.Uint32(root[10:14]), 0)
}

func checkLabel(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	// The library cuts it silently at 32 bytes.
	if len(s) > maxLabelBytes {
		return fmt.Errorf("longer than %d bytes", maxLabelBytes)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("character %q not allowed", r)
		}
	}
	return nil
}

// checkPaths accepts only names kdomanski/iso9660 keeps as they are (and
// that Linux's isofs shows as they are): lowercase letters, digits, '-'
// and '_'; file names with at most one dot, an extension of at most 8
// characters and at most 28 characters in all (30 minus ";1"); directory
// names of at most 31 characters, at most 7 deep. Two files at one path,
// or a file where a directory is, are errors.
func checkPaths(files []File) error {
	seen := map[string]bool{} // path -> is a directory
	for _, f := range files {
		segs := strings.Split(f.Path, "/")
		if len(segs) > 8 {
			return fmt.Errorf("iso: %s: more than 7 directory levels", f.Path)
		}
		for i, s := range segs {
			p := strings.Join(segs[:i+1], "/")
			last := i == len(segs)-1
			var err error
			if last {
				err = checkFileName(s)
			} else {
				err = checkDirName(s)
			}
			if err != nil {
				return fmt.Errorf("iso: %s: %q: %w", f.Path, s, err)
			}
			isDir, exists := seen[p]
			switch {
			case exists && last:
				if isDir {
					return fmt.Errorf("iso: %s: is also a directory", f.Path)
				}
				return fmt.Errorf("iso: %s: two files with this name", f.Path)
			case exists && !isDir:
				return fmt.Errorf("iso: %s: %s is a file, not a directory", f.Path, p)
			}
			seen[p] = !last
		}
	}
	return nil
}

func checkISOChars(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("character %q would be changed (ISO 9660 names without Rock Ridge: a-z 0-9 - _ .)", r)
		}
	}
	return nil
}

func checkDirName(s string) error {
	if err := checkISOChars(s); err != nil {
		return err
	}
	if strings.Contains(s, ".") {
		return errors.New("directory names cannot contain a dot")
	}
	if len(s) > 31 {
		return errors.New("directory name longer than 31 characters")
	}
	return nil
}

func checkFileName(s string) error {
	if err := checkISOChars(s); err != nil {
		return err
	}
	base, ext, hasExt := strings.Cut(s, ".")
	switch {
	case strings.Contains(ext, "."):
		return errors.New("more than one dot (the library would replace all but the last)")
	case base == "":
		return errors.New("name starts with a dot")
	case hasExt && ext == "":
		return errors.New("name ends with a dot")
	case len(ext) > 8:
		return errors.New("extension longer than 8 characters")
	case len(s) > 28:
		return errors.New("name longer than 28 characters")
	}
	return nil
}
