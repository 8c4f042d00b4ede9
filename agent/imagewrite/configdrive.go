package imagewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"metalsync.dev/metalsync/agent/blockdev"
	"metalsync.dev/metalsync/agent/partition"
)

// ConfigDrive fetches the config drive ISO at path and writes it into a
// new partition at the end of target (after Write put the image of
// imageSize bytes there: the partition never overlaps it), then asks the
// kernel to re-read the partition table.
func (w *Writer) ConfigDrive(ctx context.Context, target, path string, imageSize int64) (partition.Placement, error) {
	iso, err := w.fetchSmall(ctx, path, partition.ConfigDriveMax)
	if err != nil {
		return partition.Placement{}, err
	}
	if len(iso) < 17*2048 || string(iso[16*2048+1:16*2048+6]) != "CD001" {
		return partition.Placement{}, fmt.Errorf("config drive %s: not an ISO 9660 image (%d bytes)", path, len(iso))
	}
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		return partition.Placement{}, fmt.Errorf("open target %s: %w", target, err)
	}
	defer f.Close()
	size, err := blockdev.Size(f)
	if err != nil {
		return partition.Placement{}, fmt.Errorf("target %s: %w", target, err)
	}
	p, err := partition.AddConfigDrive(f, size, int64(len(iso)), imageSize)
	if err != nil {
		return partition.Placement{}, fmt.Errorf("config drive partition on %s: %w", target, err)
	}
	if _, err := f.WriteAt(iso, p.Offset); err != nil {
		return p, fmt.Errorf("write config drive to %s at %d: %w", target, p.Offset, err)
	}
	// Old signatures past the ISO (an md 1.0 superblock, a backup GPT)
	// would make blkid see two file systems in the partition.
	if err := blockdev.ZeroRange(f, p.Offset+int64(len(iso)), p.Size-int64(len(iso))); err != nil {
		return p, fmt.Errorf("config drive partition on %s: %w", target, err)
	}
	if err := f.Sync(); err != nil {
		return p, fmt.Errorf("sync target %s: %w", target, err)
	}
	if err := blockdev.RereadPartitions(f); err != nil {
		w.Log.WarnContext(ctx, "re-read partition table", "device", target, "err", err)
	}
	w.Log.InfoContext(ctx, "config drive written", "device", target, "offset", p.Offset, "bytes", len(iso), "table", string(p.Kind))
	return p, nil
}

var errTooLarge = errors.New("too large")

// fetchSmall reads a whole small document (at most max bytes), retrying
// from the start when the transfer breaks.
func (w *Writer) fetchSmall(ctx context.Context, path string, max int64) ([]byte, error) {
	retries := w.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	r := &resumable{ctx: ctx, log: w.Log, policy: w.Backoff, retries: retries}
	for {
		b, err := w.fetchOnce(ctx, path, max)
		if err == nil || errors.Is(err, errTooLarge) {
			return b, err
		}
		if rerr := r.retry(err); rerr != nil {
			return nil, rerr
		}
	}
}

func (w *Writer) fetchOnce(ctx context.Context, path string, max int64) ([]byte, error) {
	body, err := w.Fetch.Open(ctx, path, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", path, errTooLarge, max)
	}
	return b, nil
}
