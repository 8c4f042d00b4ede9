package ipmi

import (
	"context"
	"fmt"
	"strings"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/app"
	"github.com/bougou/go-ipmi/pkg/types"

	"metalsync.dev/metalsync/drivers"
)

// Inventory reads what IPMI can tell without an agent: Get Device ID (BMC
// firmware, manufacturer number), the system GUID, and FRU device 0
// (product, then board, then chassis fields). CPUs, memory, disks and NICs
// need the deploy agent.
func (b *BMC) Inventory(ctx context.Context) (drivers.Inventory, error) {
	var dev *app.GetDeviceIDResponse
	err := b.do(ctx, "get device id", true, func(ctx context.Context, c *client.Client) error {
		var err error
		dev, err = c.GetDeviceID(ctx)
		return err
	})
	if err != nil {
		return drivers.Inventory{}, err
	}
	inv := drivers.Inventory{
		Firmware: []drivers.Firmware{{
			Component: "BMC",
			Version:   fmt.Sprintf("%d.%02d", dev.MajorFirmwareRevision, dev.MinorFirmwareRevision),
		}},
	}

	var guid *app.GetSystemGUIDResponse
	err = b.do(ctx, "get system guid", true, func(ctx context.Context, c *client.Client) error {
		var err error
		guid, err = c.GetSystemGUID(ctx)
		return err
	})
	switch {
	case err == nil:
		// The IPMI spec stores the GUID least-significant byte first, as
		// SMBIOS does, so this matches what the OS and Redfish report.
		if u, perr := types.ParseGUID(guid.GUID[:], types.GUIDModeSMBIOS); perr == nil && guid.GUID != [16]byte{} {
			inv.System.UUID = u.String()
		}
	case !isUnsupportedCC(err):
		return drivers.Inventory{}, err
	}

	if dev.AdditionalDeviceSupport.SupportFRUInventory {
		var fru *types.FRU
		err = b.do(ctx, "read fru 0", true, func(ctx context.Context, c *client.Client) error {
			var err error
			fru, err = c.GetFRU(ctx, 0, "")
			return err
		})
		if err != nil && !isUnsupportedCC(err) {
			return drivers.Inventory{}, err
		}
		if fru != nil && fru.Present() {
			inv.System = fruSystem(fru, inv.System)
		}
	}
	if inv.System.Manufacturer == "" && dev.ManufacturerID != 0 {
		inv.System.Manufacturer = manufacturerName(dev.ManufacturerID)
	}
	return inv, nil
}

// fruSystem fills sys from the FRU's product area, falling back to the
// board and chassis areas field by field.
func fruSystem(fru *types.FRU, sys drivers.SystemInfo) drivers.SystemInfo {
	first := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	var pMfg, pName, pSerial, bMfg, bName, bSerial, cSerial string
	if p := fru.ProductInfoArea; p != nil {
		pMfg = fruString(p.ManufacturerTypeLength, p.Manufacturer)
		pName = fruString(p.NameTypeLength, p.Name)
		pSerial = fruString(p.SerialNumberTypeLength, p.SerialNumber)
	}
	if bd := fru.BoardInfoArea; bd != nil {
		bMfg = fruString(bd.ManufacturerTypeLength, bd.Manufacturer)
		bName = fruString(bd.ProductNameTypeLength, bd.ProductName)
		bSerial = fruString(bd.SerialNumberTypeLength, bd.SerialNumber)
	}
	if c := fru.ChassisInfoArea; c != nil {
		cSerial = fruString(c.SerialNumberTypeLength, c.SerialNumber)
	}
	sys.Manufacturer = first(pMfg, bMfg)
	sys.Model = first(pName, bName)
	sys.Serial = first(pSerial, bSerial, cSerial)
	return sys
}

// fruString decodes a FRU type/length field (BCD plus, 6-bit or 8-bit
// ASCII) and trims the padding BMCs leave.
func fruString(tl types.TypeLength, raw []byte) string {
	chars, err := tl.Chars(raw)
	if err != nil {
		chars = raw
	}
	return strings.Trim(string(chars), " \x00")
}

// manufacturerName names an IANA enterprise number go-ipmi knows, or
// prints the number.
func manufacturerName(id uint32) string {
	name := types.OEM(id).String()
	if name == "" || strings.Contains(strings.ToLower(name), "unknown") {
		return fmt.Sprintf("IANA %d", id)
	}
	return name
}
