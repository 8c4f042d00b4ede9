package fake

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"metalsync.dev/metalsync/drivers"
)

// BMC is an open session to a System. It implements every capability
// interface of package drivers.
type BMC struct {
	sys *System
}

var (
	_ drivers.BMC             = (*BMC)(nil)
	_ drivers.BootSetter      = (*BMC)(nil)
	_ drivers.MediaManager    = (*BMC)(nil)
	_ drivers.InventoryReader = (*BMC)(nil)
	_ drivers.BIOSManager     = (*BMC)(nil)
	_ drivers.RAIDManager     = (*BMC)(nil)
	_ drivers.FirmwareUpdater = (*BMC)(nil)
)

// System returns the system behind the session.
func (b *BMC) System() *System { return b.sys }

// Close ends the session.
func (b *BMC) Close(ctx context.Context) error { return nil }

// PowerState reads power.
func (b *BMC) PowerState(ctx context.Context) (drivers.PowerState, error) {
	var p drivers.PowerState
	err := b.sys.call(ctx, "power state", 0, func() error {
		p = b.sys.power
		return nil
	})
	return p, err
}

// SetPower changes power and returns once the change is done, after the
// system's power delay.
func (b *BMC) SetPower(ctx context.Context, action drivers.PowerAction) error {
	s := b.sys
	switch action {
	case drivers.ActionOn, drivers.ActionOff, drivers.ActionGracefulOff, drivers.ActionReboot, drivers.ActionGracefulReboot:
	default:
		return drivers.Unsupported("fake", "power action "+strconv.Quote(string(action)))
	}
	s.mu.Lock()
	delay := s.powerDelay
	if action.Target() == s.power && action != drivers.ActionReboot && action != drivers.ActionGracefulReboot {
		delay = 0 // nothing to wait for
	}
	s.mu.Unlock()
	return s.call(ctx, "set power "+string(action), delay, func() error {
		if s.faults.IgnorePower {
			return nil
		}
		switch action {
		case drivers.ActionOn:
			if s.power != drivers.PowerOn {
				s.powerOnLocked()
				s.countLocked("power on")
			}
		case drivers.ActionOff, drivers.ActionGracefulOff:
			if s.power != drivers.PowerOff {
				s.power = drivers.PowerOff
				s.countLocked("power off")
			}
		case drivers.ActionReboot, drivers.ActionGracefulReboot:
			s.powerOnLocked()
			s.countLocked("reboot")
		}
		return nil
	})
}

// SetBoot sets the boot override.
func (b *BMC) SetBoot(ctx context.Context, opts drivers.BootOptions) error {
	switch opts.Device {
	case drivers.BootPXE, drivers.BootCD, drivers.BootDisk, drivers.BootBIOS:
	default:
		return drivers.Unsupported("fake", "boot device "+strconv.Quote(string(opts.Device)))
	}
	switch opts.Mode {
	case drivers.BootModeUnset, drivers.BootModeUEFI, drivers.BootModeLegacy:
	default:
		return drivers.Unsupported("fake", "boot mode "+strconv.Quote(string(opts.Mode)))
	}
	return b.sys.call(ctx, "set boot", 0, func() error {
		b.sys.boot = opts
		b.sys.countLocked("set-boot")
		return nil
	})
}

func mediaKind(kind drivers.MediaKind) error {
	switch kind {
	case drivers.MediaCD, drivers.MediaUSB:
		return nil
	}
	return drivers.Unsupported("fake", "media kind "+strconv.Quote(string(kind)))
}

// InsertMedia attaches an image URL (the fake does not fetch it).
func (b *BMC) InsertMedia(ctx context.Context, kind drivers.MediaKind, imageURL string) error {
	if err := mediaKind(kind); err != nil {
		return err
	}
	if imageURL == "" {
		return fmt.Errorf("fake: %s: insert media: no image URL", b.sys.name)
	}
	return b.sys.call(ctx, "insert media", 0, func() error {
		b.sys.media[kind] = drivers.MediaStatus{Kind: kind, Image: imageURL, Inserted: true}
		b.sys.countLocked("insert-media")
		return nil
	})
}

// EjectMedia detaches whatever the slot holds; an empty slot is fine.
func (b *BMC) EjectMedia(ctx context.Context, kind drivers.MediaKind) error {
	if err := mediaKind(kind); err != nil {
		return err
	}
	return b.sys.call(ctx, "eject media", 0, func() error {
		delete(b.sys.media, kind)
		b.sys.countLocked("eject-media")
		return nil
	})
}

// MediaStatus reads what the slot holds.
func (b *BMC) MediaStatus(ctx context.Context, kind drivers.MediaKind) (drivers.MediaStatus, error) {
	if err := mediaKind(kind); err != nil {
		return drivers.MediaStatus{}, err
	}
	var st drivers.MediaStatus
	err := b.sys.call(ctx, "media status", 0, func() error {
		st = b.sys.mediaLocked(kind)
		return nil
	})
	return st, err
}

// Inventory reads the hardware inventory.
func (b *BMC) Inventory(ctx context.Context) (drivers.Inventory, error) {
	var inv drivers.Inventory
	err := b.sys.call(ctx, "inventory", 0, func() error {
		inv = b.sys.inventory
		inv.CPUs = slices.Clone(inv.CPUs)
		inv.Disks = slices.Clone(inv.Disks)
		inv.NICs = slices.Clone(inv.NICs)
		inv.Firmware = slices.Clone(b.sys.firmware)
		return nil
	})
	return inv, err
}

// BIOSAttributes reads the current (not pending) BIOS attributes.
func (b *BMC) BIOSAttributes(ctx context.Context) (map[string]any, error) {
	var attrs map[string]any
	err := b.sys.call(ctx, "bios attributes", 0, func() error {
		attrs = maps.Clone(b.sys.bios)
		return nil
	})
	return attrs, err
}

// ApplyBIOS stages attributes; they take effect at the next power on or
// reboot. Unknown attributes are refused, all or nothing.
func (b *BMC) ApplyBIOS(ctx context.Context, attrs map[string]any) error {
	return b.sys.call(ctx, "apply bios", 0, func() error {
		for _, k := range slices.Sorted(maps.Keys(attrs)) {
			if _, ok := b.sys.bios[k]; !ok {
				return fmt.Errorf("fake: %s: apply bios: unknown attribute %q", b.sys.name, k)
			}
		}
		maps.Copy(b.sys.pending, attrs)
		b.sys.countLocked("apply-bios")
		return nil
	})
}

// Volumes lists the RAID volumes.
func (b *BMC) Volumes(ctx context.Context) ([]drivers.Volume, error) {
	var vs []drivers.Volume
	err := b.sys.call(ctx, "volumes", 0, func() error {
		vs = slices.Clone(b.sys.volumes)
		return nil
	})
	return vs, err
}

var raidLevels = map[string]bool{"RAID0": true, "RAID1": true, "RAID5": true, "RAID6": true, "RAID10": true}

// CreateVolume creates a RAID volume over the given drives (all when none).
func (b *BMC) CreateVolume(ctx context.Context, spec drivers.VolumeSpec) (drivers.Volume, error) {
	var v drivers.Volume
	err := b.sys.call(ctx, "create volume", 0, func() error {
		s := b.sys
		if !raidLevels[spec.RAIDLevel] {
			return fmt.Errorf("fake: %s: create volume: unknown RAID level %q", s.name, spec.RAIDLevel)
		}
		drives := spec.Drives
		if len(drives) == 0 {
			for _, d := range s.inventory.Disks {
				drives = append(drives, d.ID)
			}
		}
		s.nextVolume++
		v = drivers.Volume{ID: fmt.Sprintf("vol%d", s.nextVolume), Name: spec.Name, RAIDLevel: spec.RAIDLevel,
			CapacityBytes: spec.CapacityBytes, Drives: slices.Clone(drives)}
		s.volumes = append(s.volumes, v)
		s.countLocked("create-volume")
		return nil
	})
	return v, err
}

// DeleteVolume deletes a volume by ID.
func (b *BMC) DeleteVolume(ctx context.Context, id string) error {
	return b.sys.call(ctx, "delete volume", 0, func() error {
		s := b.sys
		i := slices.IndexFunc(s.volumes, func(v drivers.Volume) bool { return v.ID == id })
		if i < 0 {
			return fmt.Errorf("fake: %s: delete volume: no volume %q", s.name, id)
		}
		s.volumes = slices.Delete(s.volumes, i, i+1)
		s.countLocked("delete-volume")
		return nil
	})
}

// UpdateFirmware records an update; the fake bumps the BIOS version.
func (b *BMC) UpdateFirmware(ctx context.Context, imageURL string, targets []string) error {
	if imageURL == "" {
		return fmt.Errorf("fake: %s: update firmware: no image URL", b.sys.name)
	}
	return b.sys.call(ctx, "update firmware", 0, func() error {
		b.sys.firmware = append(b.sys.firmware, drivers.Firmware{Component: "update", Version: imageURL})
		b.sys.countLocked("update-firmware")
		return nil
	})
}
