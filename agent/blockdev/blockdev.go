// Package blockdev holds the few block-device operations the disk steps
// share (size, zeroing a range, asking the kernel to re-read the
// partition table). Each works on a regular file too, the way tests and
// disk images use it: a file has no ioctls, so the file path of each
// operation does the plain-write equivalent.
package blockdev

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MiB is the unit of the metadata regions the steps zero.
const MiB = 1 << 20

// IsBlock reports whether f is a block device.
func IsBlock(f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0, nil
}

// Size is the byte size of a block device (BLKGETSIZE64) or a file.
func Size(f *os.File) (int64, error) {
	blk, err := IsBlock(f)
	if err != nil {
		return 0, err
	}
	if !blk {
		fi, err := f.Stat()
		if err != nil {
			return 0, fmt.Errorf("stat %s: %w", f.Name(), err)
		}
		return fi.Size(), nil
	}
	var n uint64
	if err := ioctl(f, unix.BLKGETSIZE64, unsafe.Pointer(&n)); err != nil {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	return int64(n), nil
}

// ZeroRange makes [off, off+n) read as zeros. Block devices use
// BLKZEROOUT (the device may offload it; aligned to 512 bytes), falling
// back to writing zeros where the driver refuses. Files get the range
// punched (it reads as zeros, the size stays) or, where the file system
// cannot punch, zeros written.
func ZeroRange(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	blk, err := IsBlock(f)
	if err != nil {
		return err
	}
	if blk && off%512 == 0 && n%512 == 0 {
		r := [2]uint64{uint64(off), uint64(n)}
		if err := ioctl(f, unix.BLKZEROOUT, unsafe.Pointer(&r)); err == nil {
			return nil
		}
	}
	if !blk {
		fi, err := f.Stat()
		// Punching past the end would not extend the file as writing does.
		if err == nil && off+n <= fi.Size() && punch(f, off, n) == nil {
			return nil
		}
	}
	return writeZeros(f, off, n)
}

var zeros = make([]byte, MiB) // read-only

func writeZeros(f *os.File, off, n int64) error {
	for n > 0 {
		c := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:c], off); err != nil {
			return fmt.Errorf("zero %s at %d: %w", f.Name(), off, err)
		}
		off += c
		n -= c
	}
	return nil
}

// RereadPartitions asks the kernel to re-read f's partition table
// (BLKRRPART). It does nothing on files. EINVAL means the device has no
// partition support (a loop device without partscan, an md array without
// partitions) and is not an error.
func RereadPartitions(f *os.File) error {
	blk, err := IsBlock(f)
	if err != nil || !blk {
		return err
	}
	if err := ioctl(f, unix.BLKRRPART, nil); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("re-read partition table of %s: %w", f.Name(), err)
	}
	return nil
}

func ioctl(f *os.File, req uint, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

func punch(f *os.File, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	if err := rc.Control(func(fd uintptr) {
		perr = unix.Fallocate(int(fd), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}); err != nil {
		return err
	}
	return perr
}
