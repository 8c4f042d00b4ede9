//go:build unix

package imagecache

import (
	"io/fs"
	"syscall"
)

// diskBytes is the space fi takes on disk: sparse raw images take less
// than their size.
func diskBytes(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
