package redfish

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"path"
	"strings"

	"github.com/stmcginnis/gofish/schemas"

	"metalsync.dev/metalsync/drivers"
)

// inventorySystem is the part of a ComputerSystem the inventory reads.
type inventorySystem struct {
	Manufacturer       string
	Model              string
	SerialNumber       string
	UUID               string
	BiosVersion        string
	MemorySummary      struct{ TotalSystemMemoryGiB *float64 }
	Processors         link
	Memory             link
	Storage            link
	SimpleStorage      link
	EthernetInterfaces link
	Links              struct{ ManagedBy []link }
}

// Inventory reads the system's identity, CPUs, memory, disks, NICs and
// firmware versions, each section on its own. Sections the BMC does not
// publish stay empty. A section it links but cannot serve (absent, not
// implemented, failing) stays empty too, with a warning in the inventory:
// real BMCs link Memory or FirmwareInventory and answer 404 or 501 there.
// NICs that cannot be read set NICsUnknown. Only what the node cannot be
// managed without fails the call: the system itself, the credentials, the
// BMC answering at all.
func (b *BMC) Inventory(ctx context.Context) (drivers.Inventory, error) {
	var sys inventorySystem
	if _, err := b.get(ctx, b.system(), &sys); err != nil {
		return drivers.Inventory{}, fmt.Errorf("redfish: inventory: %w", err)
	}
	inv := drivers.Inventory{System: drivers.SystemInfo{
		Manufacturer: sys.Manufacturer,
		Model:        sys.Model,
		Serial:       sys.SerialNumber,
		UUID:         strings.ToLower(sys.UUID),
		BIOSVersion:  sys.BiosVersion,
	}}
	steps := []struct {
		name string
		run  func() error
	}{
		{"processors", func() (err error) { inv.CPUs, err = b.cpus(ctx, sys.Processors.ID); return }},
		{"memory", func() (err error) { inv.MemoryMiB, err = b.memoryMiB(ctx, sys); return }},
		{"storage", func() (err error) { inv.Disks, err = b.disks(ctx, sys); return }},
		{"network", func() (err error) { inv.NICs, err = b.nics(ctx, sys.EthernetInterfaces.ID); return }},
		{"firmware", func() (err error) { inv.Firmware, err = b.firmware(ctx, sys, &inv.Warnings); return }},
	}
	for _, s := range steps {
		err := s.run()
		if err == nil {
			continue
		}
		if fatalForInventory(err) {
			return drivers.Inventory{}, fmt.Errorf("redfish: inventory: %s: %w", s.name, err)
		}
		inv.Warnings = append(inv.Warnings, fmt.Sprintf("%s: not read: %v", s.name, err))
		if s.name == "network" {
			inv.NICs, inv.NICsUnknown = nil, true
		}
	}
	if sys.EthernetInterfaces.ID == "" {
		inv.NICsUnknown = true
		inv.Warnings = append(inv.Warnings, "network: the system links no EthernetInterfaces: NICs and MACs unknown")
	}
	return inv, nil
}

// fatalForInventory reports errors that end an inventory: without
// credentials or an answering BMC nothing read would be worth keeping, and
// the caller's cancellation is its own.
func fatalForInventory(err error) bool {
	return errors.Is(err, drivers.ErrAuth) || errors.Is(err, drivers.ErrUnreachable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// members lists a collection; a missing link is an empty list.
func (b *BMC) members(ctx context.Context, path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	return b.collection(ctx, path)
}

func (b *BMC) cpus(ctx context.Context, path string) ([]drivers.CPU, error) {
	paths, err := b.members(ctx, path)
	if err != nil {
		return nil, err
	}
	var out []drivers.CPU
	for _, p := range paths {
		var doc struct {
			ProcessorType         schemas.ProcessorType
			Model                 string
			TotalCores            int
			TotalThreads          int
			InstructionSet        string
			ProcessorArchitecture string
			Status                struct{ State string }
		}
		if _, err := b.get(ctx, p, &doc); err != nil {
			return nil, err
		}
		if doc.Status.State == "Absent" || (doc.ProcessorType != "" && doc.ProcessorType != schemas.CPUProcessorType) {
			continue
		}
		arch := doc.InstructionSet
		if arch == "" {
			arch = doc.ProcessorArchitecture
		}
		out = append(out, drivers.CPU{Model: strings.TrimSpace(doc.Model), Cores: doc.TotalCores, Threads: doc.TotalThreads, Arch: arch})
	}
	return out, nil
}

// memoryMiB takes the system's summary when it has one (no extra GET), else
// adds up the DIMMs.
func (b *BMC) memoryMiB(ctx context.Context, sys inventorySystem) (int64, error) {
	if g := sys.MemorySummary.TotalSystemMemoryGiB; g != nil && *g > 0 {
		return int64(math.Round(*g * 1024)), nil
	}
	paths, err := b.members(ctx, sys.Memory.ID)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, p := range paths {
		var doc struct {
			CapacityMiB int64
			Status      struct{ State string }
		}
		if _, err := b.get(ctx, p, &doc); err != nil {
			return 0, err
		}
		if doc.Status.State != "Absent" {
			total += doc.CapacityMiB
		}
	}
	return total, nil
}

// disks reads Storage (drives by link) or, on older services, SimpleStorage.
func (b *BMC) disks(ctx context.Context, sys inventorySystem) ([]drivers.Disk, error) {
	if sys.Storage.ID != "" {
		return b.storageDisks(ctx, sys.Storage.ID)
	}
	paths, err := b.members(ctx, sys.SimpleStorage.ID)
	if err != nil {
		return nil, err
	}
	var out []drivers.Disk
	for _, p := range paths {
		var doc struct {
			ID      string `json:"Id"`
			Devices []struct {
				Name          string
				Model         string
				CapacityBytes int64
				Status        struct{ State string }
			}
		}
		if _, err := b.get(ctx, p, &doc); err != nil {
			return nil, err
		}
		for _, d := range doc.Devices {
			if d.Status.State == "Absent" {
				continue
			}
			out = append(out, drivers.Disk{ID: doc.ID + "/" + d.Name, Model: d.Model, SizeBytes: d.CapacityBytes})
		}
	}
	return out, nil
}

// driveDoc is the part of a Drive the inventory and RAID calls read.
type driveDoc struct {
	ODataID          string `json:"@odata.id"`
	ID               string `json:"Id"`
	Model            string
	SerialNumber     string
	CapacityBytes    int64
	MediaType        schemas.MediaType
	Protocol         string
	RotationSpeedRPM float64
	Status           struct{ State string }
}

func (b *BMC) storageDisks(ctx context.Context, storagePath string) ([]drivers.Disk, error) {
	storages, err := b.members(ctx, storagePath)
	if err != nil {
		return nil, err
	}
	var out []drivers.Disk
	seen := map[string]bool{}
	for _, s := range storages {
		var st struct{ Drives []link }
		if _, err := b.get(ctx, s, &st); err != nil {
			return nil, err
		}
		for _, l := range st.Drives {
			if seen[l.ID] {
				continue
			}
			seen[l.ID] = true
			var d driveDoc
			if _, err := b.get(ctx, l.ID, &d); err != nil {
				return nil, err
			}
			if d.Status.State == "Absent" {
				continue
			}
			id := d.ID
			if id == "" {
				id = path.Base(l.ID)
			}
			out = append(out, drivers.Disk{
				ID:         id,
				Model:      strings.TrimSpace(d.Model),
				Serial:     strings.TrimSpace(d.SerialNumber),
				SizeBytes:  d.CapacityBytes,
				Media:      string(d.MediaType),
				Protocol:   d.Protocol,
				Rotational: d.MediaType == schemas.HDDMediaType || d.RotationSpeedRPM > 0,
			})
		}
	}
	return out, nil
}

// nics reads the host's physical Ethernet interfaces (VLANs, which the
// BMC lists as virtual interfaces, are configuration, not hardware).
func (b *BMC) nics(ctx context.Context, path string) ([]drivers.NIC, error) {
	paths, err := b.members(ctx, path)
	if err != nil {
		return nil, err
	}
	var out []drivers.NIC
	for _, p := range paths {
		var doc struct {
			ID                    string `json:"Id"`
			MACAddress            string
			PermanentMACAddress   string
			SpeedMbps             int
			LinkStatus            string
			EthernetInterfaceType string
			Status                struct{ State string }
		}
		if _, err := b.get(ctx, p, &doc); err != nil {
			return nil, err
		}
		if doc.EthernetInterfaceType == "Virtual" || doc.Status.State == "Absent" {
			continue
		}
		mac := normalMAC(doc.MACAddress)
		if mac == "" {
			mac = normalMAC(doc.PermanentMACAddress)
		}
		out = append(out, drivers.NIC{ID: doc.ID, MAC: mac, SpeedMbps: doc.SpeedMbps, LinkStatus: doc.LinkStatus})
	}
	return out, nil
}

// normalMAC writes a MAC the way the rest of metalsync compares them:
// lowercase, colon-separated. Unparseable values are dropped.
func normalMAC(s string) string {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return hw.String()
}

// firmware lists the UpdateService's firmware inventory, or, without one
// (or when it cannot be read, with a warning), the BIOS and BMC versions.
func (b *BMC) firmware(ctx context.Context, sys inventorySystem, warnings *[]string) ([]drivers.Firmware, error) {
	if b.root.UpdateService.ID != "" {
		var us struct{ FirmwareInventory link }
		_, err := b.get(ctx, b.root.UpdateService.ID, &us)
		switch {
		case err != nil && fatalForInventory(err):
			return nil, err
		case err != nil && !statusIs(err, http.StatusNotFound):
			*warnings = append(*warnings, fmt.Sprintf("firmware: update service not read, versions of BIOS and BMC only: %v", err))
		case us.FirmwareInventory.ID != "":
			out, err := b.firmwareInventory(ctx, us.FirmwareInventory.ID)
			if err == nil {
				return out, nil
			}
			if fatalForInventory(err) {
				return nil, err
			}
			*warnings = append(*warnings, fmt.Sprintf("firmware: inventory not read, versions of BIOS and BMC only: %v", err))
		}
	}
	var out []drivers.Firmware
	if sys.BiosVersion != "" {
		out = append(out, drivers.Firmware{Component: "BIOS", Version: sys.BiosVersion})
	}
	for _, m := range sys.Links.ManagedBy {
		var mgr struct {
			ID              string `json:"Id"`
			FirmwareVersion string
		}
		if _, err := b.get(ctx, m.ID, &mgr); err != nil {
			return nil, err
		}
		comp := "BMC"
		if len(sys.Links.ManagedBy) > 1 {
			comp += " " + mgr.ID
		}
		if mgr.FirmwareVersion != "" {
			out = append(out, drivers.Firmware{Component: comp, Version: mgr.FirmwareVersion})
		}
	}
	return out, nil
}

// firmwareInventory reads the components of a FirmwareInventory
// collection that carry a version.
func (b *BMC) firmwareInventory(ctx context.Context, path string) ([]drivers.Firmware, error) {
	paths, err := b.collection(ctx, path)
	if err != nil {
		return nil, err
	}
	var out []drivers.Firmware
	for _, p := range paths {
		var doc struct {
			ID      string `json:"Id"`
			Name    string
			Version string
		}
		if _, err := b.get(ctx, p, &doc); err != nil {
			return nil, err
		}
		if doc.Version != "" {
			out = append(out, drivers.Firmware{Component: doc.ID, Version: doc.Version})
		}
	}
	return out, nil
}
