package redfish

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/stmcginnis/gofish/schemas"

	"metalsync.dev/metalsync/drivers"
)

var bootTargets = map[drivers.BootDevice]schemas.BootSource{
	drivers.BootPXE:  schemas.PxeBootSource,
	drivers.BootCD:   schemas.CdBootSource,
	drivers.BootDisk: schemas.HddBootSource,
	drivers.BootBIOS: schemas.BiosSetupBootSource,
}

var bootModes = map[drivers.BootMode]schemas.BootSourceOverrideMode{
	drivers.BootModeUEFI:   schemas.UEFIBootSourceOverrideMode,
	drivers.BootModeLegacy: schemas.LegacyBootSourceOverrideMode,
}

// SetBoot sets the boot source override of the system: once or
// continuous, in UEFI or legacy mode when asked.
func (b *BMC) SetBoot(ctx context.Context, opts drivers.BootOptions) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redfish: set boot: %w", err)
	}
	target, ok := bootTargets[opts.Device]
	if !ok {
		return fmt.Errorf("redfish: set boot: unknown device %q: %w", opts.Device, drivers.ErrUnsupported)
	}
	var sys systemDoc
	resp, err := b.get(ctx, b.system(), &sys)
	if err != nil {
		return fmt.Errorf("redfish: set boot %s: %w", opts.Device, err)
	}
	if len(sys.Boot.AllowedTargets) > 0 && !slices.Contains(sys.Boot.AllowedTargets, target) {
		return fmt.Errorf("redfish: set boot %s: BMC allows boot targets %v, not %s: %w", opts.Device, sys.Boot.AllowedTargets, target, drivers.ErrUnsupported)
	}
	boot := map[string]any{
		"BootSourceOverrideTarget":  target,
		"BootSourceOverrideEnabled": schemas.OnceBootSourceOverrideEnabled,
	}
	if opts.Persistent {
		boot["BootSourceOverrideEnabled"] = schemas.ContinuousBootSourceOverrideEnabled
	}
	if opts.Mode != drivers.BootModeUnset {
		mode, ok := bootModes[opts.Mode]
		if !ok {
			return fmt.Errorf("redfish: set boot: unknown boot mode %q: %w", opts.Mode, drivers.ErrUnsupported)
		}
		if len(sys.Boot.AllowedModes) > 0 && !slices.Contains(sys.Boot.AllowedModes, mode) {
			return fmt.Errorf("redfish: set boot %s: BMC allows boot modes %v, not %s: %w", opts.Device, sys.Boot.AllowedModes, mode, drivers.ErrUnsupported)
		}
		boot["BootSourceOverrideMode"] = mode
	}
	body := map[string]any{"Boot": boot}
	etag := resp.etag()
	_, err = b.patch(ctx, b.system(), etag, body)
	// Some BMCs keep the system read-only and take boot changes at the
	// @Redfish.Settings object instead.
	if settings := sys.Settings.SettingsObject.ID; err != nil && settings != "" && settings != b.system() &&
		statusIs(err, http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusForbidden) {
		_, err = b.patch(ctx, settings, "", body)
	}
	if err != nil {
		return fmt.Errorf("redfish: set boot %s: %w", opts.Device, err)
	}
	return nil
}
