package redfish

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"metalsync.dev/metalsync/drivers"
)

// DefaultFirmwareTimeout bounds a firmware update whose ctx has no deadline.
const DefaultFirmwareTimeout = time.Hour

// UpdateFirmware asks the UpdateService to fetch and apply an image
// (SimpleUpdate) and follows the task it starts until it ends, ctx ends, or
// DefaultFirmwareTimeout passes.
func (b *BMC) UpdateFirmware(ctx context.Context, imageURL string, targets []string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redfish: update firmware: %w", err)
	}
	u, err := url.Parse(imageURL)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("redfish: update firmware: image %q is not an absolute URL", imageURL)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFirmwareTimeout)
		defer cancel()
	}
	if b.root.UpdateService.ID == "" {
		return fmt.Errorf("redfish: update firmware: no UpdateService: %w", drivers.ErrUnsupported)
	}
	var us struct {
		Actions struct {
			SimpleUpdate struct {
				Target string `json:"target"`
			} `json:"#UpdateService.SimpleUpdate"`
		}
	}
	if _, err := b.get(ctx, b.root.UpdateService.ID, &us); err != nil {
		return fmt.Errorf("redfish: update firmware: %w", err)
	}
	target := us.Actions.SimpleUpdate.Target
	if target == "" {
		return fmt.Errorf("redfish: update firmware: UpdateService declares no SimpleUpdate: %w", drivers.ErrUnsupported)
	}
	body := map[string]any{"ImageURI": imageURL}
	if len(targets) == 0 {
		// A service that manages several systems must be told which one:
		// it refuses SimpleUpdate without Targets.
		n, err := b.systemCount(ctx)
		if err != nil {
			return fmt.Errorf("redfish: update firmware: %w", err)
		}
		if n > 1 {
			targets = []string{b.system()}
		}
	}
	if len(targets) > 0 {
		body["Targets"] = targets
	}
	resp, err := b.do(ctx, request{method: http.MethodPost, path: target, body: body})
	if err == nil {
		err = b.waitTask(ctx, resp)
	}
	if err != nil {
		return fmt.Errorf("redfish: update firmware: %w", err)
	}
	return nil
}
