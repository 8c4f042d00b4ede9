// Package memdisk is a fixed-size disk in memory, for testing the disk
// steps without a block device.
package memdisk

import (
	"errors"
	"io"
)

// Disk is a fixed-size disk: reads past its end end with io.EOF, writes
// past it fail.
type Disk []byte

// ReadAt implements io.ReaderAt.
func (m Disk) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(b, m[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements io.WriterAt.
func (m Disk) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > int64(len(m)) {
		return 0, errors.New("write past the end of the disk")
	}
	return copy(m[off:], b), nil
}
