package ipmi

import (
	"context"
	"fmt"
	"strings"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"

	"metalsync.dev/metalsync/drivers"
)

var bootDevices = map[drivers.BootDevice]types.BootDeviceSelector{
	drivers.BootPXE:  types.BootDeviceSelectorForcePXE,
	drivers.BootCD:   types.BootDeviceSelectorForceCDROM,
	drivers.BootDisk: types.BootDeviceSelectorForceHardDrive,
	drivers.BootBIOS: types.BootDeviceSelectorForceBIOSSetup,
}

// SetBoot writes the boot flags (boot option parameter 5) and reads them
// back. IPMI has no "unset" boot type: unset means PC-compatible (legacy),
// as with ipmitool. A BMC that keeps the device but drops the persistent or
// EFI flag (OpenIPMI's ipmi_sim does) gets an error matching
// drivers.ErrUnsupported, because the request was only half done: the
// device holds for the next boot.
func (b *BMC) SetBoot(ctx context.Context, opts drivers.BootOptions) error {
	op := fmt.Sprintf("set boot %s", describeBoot(opts))
	sel, ok := bootDevices[opts.Device]
	if !ok {
		return drivers.Unsupported("ipmi", op)
	}
	var efi types.BIOSBootType
	switch opts.Mode {
	case drivers.BootModeUnset, drivers.BootModeLegacy:
		efi = types.BIOSBootTypeLegacy
	case drivers.BootModeUEFI:
		efi = types.BIOSBootTypeEFI
	default:
		return drivers.Unsupported("ipmi", op)
	}
	// Parameter 5 alone: a set-in-progress bracket (parameter 0) is
	// optional and some BMCs (ipmi_sim) refuse it.
	err := b.do(ctx, op, true, func(ctx context.Context, c *client.Client) error {
		return c.SetBootDevice(ctx, sel, efi, opts.Persistent)
	})
	if err != nil {
		return err
	}
	got, err := b.bootFlags(ctx)
	if err != nil {
		return err
	}
	if got.BootDeviceSelector != sel {
		return fmt.Errorf("ipmi %s: %s: BMC reports boot device %q after the change", b.host, op, got.BootDeviceSelector)
	}
	var dropped []string
	if got.Persist != opts.Persistent {
		dropped = append(dropped, "persistent")
	}
	if got.BIOSBootType != efi {
		dropped = append(dropped, "EFI")
	}
	if len(dropped) > 0 {
		return fmt.Errorf("ipmi %s: %s: BMC kept the device but not the %s flag (the device holds for the next boot): %w",
			b.host, op, strings.Join(dropped, " and "), drivers.ErrUnsupported)
	}
	return nil
}

// bootFlags reads boot option parameter 5 alone: reading all boot
// parameters at once fails on some BMCs (ipmi_sim).
func (b *BMC) bootFlags(ctx context.Context) (*types.BootOptionParam_BootFlags, error) {
	f := &types.BootOptionParam_BootFlags{}
	err := b.do(ctx, "get boot flags", true, func(ctx context.Context, c *client.Client) error {
		return c.GetSystemBootOptionsParamFor(ctx, f)
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

func describeBoot(o drivers.BootOptions) string {
	s := string(o.Device)
	if o.Mode != drivers.BootModeUnset {
		s += " " + string(o.Mode)
	}
	if o.Persistent {
		s += " persistent"
	}
	return s
}
