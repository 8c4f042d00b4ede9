// Package wipe erases disk metadata the way IPA's erase_devices_metadata
// does (wipefs + dd over both GPTs + sgdisk -Z): it zeros the first and
// last MiB of every partition, then of every disk. Those two regions hold
// every signature a later boot or installer could trip on: MBR, primary
// and backup GPT, md superblocks 0.90 (last 64 KiB-aligned 64 KiB) and
// 1.0 (end) and 1.1/1.2 (start), LVM and LUKS headers, and the
// superblocks of ext*, xfs, btrfs, swap and ISO 9660 (within 64 KiB of the
// start). Stopping md arrays first is the caller's job (package swraid).
package wipe

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"metalsync.dev/metalsync/agent/blockdev"
	"metalsync.dev/metalsync/agent/hw"
)

// Region is a byte range to zero.
type Region struct{ Off, Len int64 }

// Regions are the ranges zeroed on a device of size bytes: the first and
// the last MiB, merged into one when they overlap.
func Regions(size int64) []Region {
	if size <= 0 {
		return nil
	}
	if size <= 2*blockdev.MiB {
		return []Region{{0, size}}
	}
	return []Region{{0, blockdev.MiB}, {size - blockdev.MiB, blockdev.MiB}}
}

// Device zeros the Regions of the device or file at path and syncs it.
func Device(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("erase %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("erase %s: %w", path, err)
	}
	defer f.Close()
	size, err := blockdev.Size(f)
	if err != nil {
		return fmt.Errorf("erase %s: %w", path, err)
	}
	for _, r := range Regions(size) {
		if err := blockdev.ZeroRange(f, r.Off, r.Len); err != nil {
			return fmt.Errorf("erase %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("erase %s: sync: %w", path, err)
	}
	return f.Close()
}

// Metadata erases every partition of every disk, then the disks
// themselves, then asks the kernel to re-read each disk's (now empty)
// partition table. A partition erased before its disk's table goes means
// signatures inside partitions are gone even if the table is rebuilt.
func Metadata(ctx context.Context, log *slog.Logger, disks []hw.Disk) error {
	for _, d := range disks {
		for _, p := range d.Partitions {
			if err := Device(ctx, p.Path); err != nil {
				return err
			}
			log.InfoContext(ctx, "erased partition metadata", "device", p.Path)
		}
		if err := Device(ctx, d.Path); err != nil {
			return err
		}
		if err := reread(d.Path); err != nil {
			// The table is gone on disk; a busy kernel view only lingers
			// until the next boot, so this is no reason to fail.
			log.WarnContext(ctx, "re-read partition table", "device", d.Path, "err", err)
		}
		log.InfoContext(ctx, "erased disk metadata", "device", d.Path)
	}
	return nil
}

func reread(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	return blockdev.RereadPartitions(f)
}
