package redfish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

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
	written := b.system()
	_, err = b.patch(ctx, written, etag, body)
	// Some BMCs keep the system read-only and take boot changes at the
	// @Redfish.Settings object instead.
	if settings := sys.Settings.SettingsObject.ID; err != nil && settings != "" && settings != b.system() &&
		statusIs(err, http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusForbidden) {
		written = settings
		_, err = b.patch(ctx, settings, "", body)
	}
	if err != nil {
		return fmt.Errorf("redfish: set boot %s: %w", opts.Device, err)
	}
	if err := b.checkBoot(ctx, written, opts); err != nil {
		return fmt.Errorf("redfish: set boot %s: %w", opts.Device, err)
	}
	return nil
}

// ErrBootNotApplied marks a boot override the BMC accepted but that reads
// back otherwise.
var ErrBootNotApplied = errors.New("boot override not applied")

// checkBoot reads the override back from where it was written: target,
// mode and once/continuous. A "Once" that reads back "Continuous" is
// accepted: some BMCs (sushy-tools with libvirt) only know persistent
// overrides, and the next boot still goes where it was asked; the
// override outlives it, which BootOverride shows.
func (b *BMC) checkBoot(ctx context.Context, path string, want drivers.BootOptions) error {
	var doc systemDoc
	if _, err := b.get(ctx, path, &doc); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	got := doc.Boot
	var diffs []string
	if got.BootSourceOverrideTarget != bootTargets[want.Device] {
		diffs = append(diffs, fmt.Sprintf("target %q, want %q", got.BootSourceOverrideTarget, bootTargets[want.Device]))
	}
	if want.Mode != drivers.BootModeUnset && got.BootSourceOverrideMode != "" && got.BootSourceOverrideMode != bootModes[want.Mode] {
		diffs = append(diffs, fmt.Sprintf("mode %q, want %q", got.BootSourceOverrideMode, bootModes[want.Mode]))
	}
	switch e := got.BootSourceOverrideEnabled; {
	case want.Persistent && e != schemas.ContinuousBootSourceOverrideEnabled:
		diffs = append(diffs, fmt.Sprintf("enabled %q, want %q", e, schemas.ContinuousBootSourceOverrideEnabled))
	case !want.Persistent && e != schemas.OnceBootSourceOverrideEnabled && e != schemas.ContinuousBootSourceOverrideEnabled:
		diffs = append(diffs, fmt.Sprintf("enabled %q, want %q", e, schemas.OnceBootSourceOverrideEnabled))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("read back %s: %s: %w", path, strings.Join(diffs, ", "), ErrBootNotApplied)
	}
	return nil
}

// BootOverride reads the system's boot override: one GET.
func (b *BMC) BootOverride(ctx context.Context) (drivers.BootOptions, error) {
	var doc systemDoc
	if _, err := b.get(ctx, b.system(), &doc); err != nil {
		return drivers.BootOptions{}, fmt.Errorf("redfish: boot override: %w", err)
	}
	return bootOptionsOf(doc), nil
}

func bootOptionsOf(doc systemDoc) drivers.BootOptions {
	var opts drivers.BootOptions
	if doc.Boot.BootSourceOverrideEnabled == schemas.DisabledBootSourceOverrideEnabled {
		return opts
	}
	for dev, src := range bootTargets {
		if src == doc.Boot.BootSourceOverrideTarget {
			opts.Device = dev
		}
	}
	for m, src := range bootModes {
		if src == doc.Boot.BootSourceOverrideMode {
			opts.Mode = m
		}
	}
	opts.Persistent = doc.Boot.BootSourceOverrideEnabled == schemas.ContinuousBootSourceOverrideEnabled
	return opts
}
