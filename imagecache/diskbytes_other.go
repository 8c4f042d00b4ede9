//go:build !unix

package imagecache

import "io/fs"

// diskBytes is fi's size where the block count is not known.
func diskBytes(fi fs.FileInfo) int64 { return fi.Size() }
