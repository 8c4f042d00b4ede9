// Package hw reads the node's hardware in-band from sysfs and procfs: the
// inventory the daemon checks (CPUs, memory, boot mode, disks, NICs) and
// the disk list every disk step works on. Everything is read under
// injectable roots, so tests run on a fake tree of files; odd or missing
// files degrade a field, never the whole inventory.
package hw

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"metalsync.dev/metalsync/agentapi"
)

// Roots are where the kernel's views are mounted: "/sys", "/proc", "/dev"
// on a node, directories under t.TempDir() in tests.
type Roots struct {
	Sys  string
	Proc string
	Dev  string
}

// Disk is one whole block device with what the disk steps need besides
// the inventory fields.
type Disk struct {
	agentapi.Disk
	// Dev is the kernel name ("sda"); Path is where to open it (Roots.Dev
	// joined with Dev). Disk.Name stays "/dev/<dev>", the name hints and
	// the daemon use.
	Dev        string
	Path       string
	Removable  bool
	Partitions []Partition
}

// Partition is one partition of a disk as the kernel sees it.
type Partition struct {
	Dev         string
	Path        string
	StartSector int64 // 512-byte sectors, as sysfs counts
	Sectors     int64
}

// skipPrefixes are block devices that are never disks to deploy on:
// loop, RAM and optical devices, md and device-mapper volumes (built on
// disks, listed on their own), compressed swap, network block devices.
var skipPrefixes = []string{"loop", "ram", "sr", "md", "dm-", "zram", "nbd", "fd"}

// Disks lists the whole disks under Roots.Sys/block, sorted by name. The
// agent's own boot media (an ISO 9660 volume labelled config-2 that a BMC
// presents as a disk) and empty devices (card readers) are left out.
func Disks(r Roots) ([]Disk, error) {
	dir := filepath.Join(r.Sys, "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list block devices %s: %w", dir, err)
	}
	var disks []Disk
	for _, e := range ents {
		name := e.Name()
		if skipped(name) {
			continue
		}
		d := readDisk(r, name)
		if d.SizeBytes == 0 || isBootMedia(d.Path) {
			continue
		}
		disks = append(disks, d)
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Dev < disks[j].Dev })
	return disks, nil
}

func skipped(name string) bool {
	for _, p := range skipPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func readDisk(r Roots, name string) Disk {
	base := filepath.Join(r.Sys, "block", name)
	d := Disk{Dev: name, Path: filepath.Join(r.Dev, name)}
	d.Name = "/dev/" + name
	d.SizeBytes = readInt(filepath.Join(base, "size")) * 512
	d.Model = readString(filepath.Join(base, "device", "model"))
	d.Vendor = readString(filepath.Join(base, "device", "vendor"))
	d.Serial = firstString(
		filepath.Join(base, "device", "serial"), // NVMe, some SCSI
		filepath.Join(base, "serial"),           // virtio-blk
	)
	if d.Serial == "" {
		d.Serial = vpdSerial(filepath.Join(base, "device", "vpd_pg80"))
	}
	d.WWN = wwn(firstString(filepath.Join(base, "device", "wwid"), filepath.Join(base, "wwid")))
	d.HCTL = hctl(filepath.Join(base, "device", "scsi_device"))
	d.Rotational = readString(filepath.Join(base, "queue", "rotational")) == "1"
	d.Removable = readString(filepath.Join(base, "removable")) == "1"
	d.Partitions = partitions(r, base, name)
	return d
}

// partitions are the subdirectories named after the disk that carry a
// start file (sda1, nvme0n1p1).
func partitions(r Roots, base, disk string) []Partition {
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var ps []Partition
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, disk) || n == disk {
			continue
		}
		start, err := readIntErr(filepath.Join(base, n, "start"))
		if err != nil {
			continue
		}
		ps = append(ps, Partition{
			Dev:         n,
			Path:        filepath.Join(r.Dev, n),
			StartSector: start,
			Sectors:     readInt(filepath.Join(base, n, "size")),
		})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].StartSector < ps[j].StartSector })
	return ps
}

// vpdSerial reads the Unit Serial Number VPD page (SPC-4 7.8.15): page
// code 0x80 at byte 1, length at bytes 2-3, ASCII serial after byte 4.
func vpdSerial(path string) string {
	b, err := readLimited(path, 4096)
	if err != nil || len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[2])<<8 | int(b[3])
	end := min(4+n, len(b))
	return printable(string(b[4:end]))
}

// wwn turns the kernel's wwid into the form Ironic's hints use (udev's
// ID_WWN): NAA identifiers as 0x<hex>; EUI and NVMe ids stay as they are.
func wwn(wwid string) string {
	if hex, ok := strings.CutPrefix(wwid, "naa."); ok {
		return "0x" + strings.ToLower(hex)
	}
	return wwid
}

func hctl(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return ""
	}
	return ents[0].Name()
}

// isBootMedia reports whether the device holds an ISO 9660 volume
// labelled config-2: the agent's own virtual media shown as a disk.
func isBootMedia(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var pvd [72]byte
	if _, err := f.ReadAt(pvd[:], 16*2048); err != nil {
		return false
	}
	return pvd[0] == 1 && string(pvd[1:6]) == "CD001" &&
		strings.TrimRight(string(pvd[40:72]), " \x00") == "config-2"
}

// readLimited reads at most n bytes: sysfs files are small, but a fake
// or broken tree must not make the agent read without bound.
func readLimited(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

func readString(path string) string {
	b, err := readLimited(path, 4096)
	if err != nil {
		return ""
	}
	return printable(string(b))
}

func firstString(paths ...string) string {
	for _, p := range paths {
		if s := readString(p); s != "" {
			return s
		}
	}
	return ""
}

// printable trims whitespace and NULs and drops control bytes, so odd
// firmware strings cannot corrupt a log line or a JSON document.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

func readIntErr(path string) (int64, error) {
	s := readString(path)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return v, nil
}

func readInt(path string) int64 {
	v, err := readIntErr(path)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// SecureBootVar is the EFI global variable whose last byte is 1 when
// Secure Boot is enforced.
const SecureBootVar = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// Inventory reads CPUs, memory, boot mode, disks and NICs.
func Inventory(r Roots) (agentapi.Inventory, error) {
	var inv agentapi.Inventory
	var errs []error
	cpus, model, err := cpuInfo(filepath.Join(r.Proc, "cpuinfo"))
	if err != nil {
		errs = append(errs, err)
	}
	inv.CPUs, inv.CPUModel = cpus, model
	mem, err := memTotalMiB(filepath.Join(r.Proc, "meminfo"))
	if err != nil {
		errs = append(errs, err)
	}
	inv.MemoryMiB = mem
	inv.BootMode = "bios"
	if _, err := os.Stat(filepath.Join(r.Sys, "firmware", "efi")); err == nil {
		inv.BootMode = "uefi"
		b, err := readLimited(filepath.Join(r.Sys, "firmware", "efi", "efivars", SecureBootVar), 64)
		inv.SecureBoot = err == nil && len(b) > 4 && b[len(b)-1] == 1
	}
	disks, err := Disks(r)
	if err != nil {
		errs = append(errs, err)
	}
	inv.Disks = []agentapi.Disk{}
	for _, d := range disks {
		inv.Disks = append(inv.Disks, d.Disk)
	}
	nics, err := NICs(r)
	if err != nil {
		errs = append(errs, err)
	}
	inv.NICs = nics
	return inv, errors.Join(errs...)
}

func cpuInfo(path string) (int, string, error) {
	b, err := readLimited(path, 16<<20)
	if err != nil {
		return 0, "", fmt.Errorf("read cpu info %s: %w", path, err)
	}
	n, model := 0, ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			n++
		case "model name":
			if model == "" {
				model = printable(v)
			}
		}
	}
	return n, model, nil
}

func memTotalMiB(path string) (int64, error) {
	b, err := readLimited(path, 1<<20)
	if err != nil {
		return 0, fmt.Errorf("read memory info %s: %w", path, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("memory info %s: bad MemTotal %q", path, f[0])
		}
		return kb / 1024, nil
	}
	return 0, fmt.Errorf("memory info %s: no MemTotal", path)
}

// NICs lists physical interfaces (those with a device link; bonds,
// bridges, VLANs and lo have none), sorted by name.
func NICs(r Roots) ([]agentapi.NIC, error) {
	dir := filepath.Join(r.Sys, "class", "net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list network interfaces %s: %w", dir, err)
	}
	nics := []agentapi.NIC{}
	for _, e := range ents {
		name := e.Name()
		base := filepath.Join(dir, name)
		if name == "lo" {
			continue
		}
		if _, err := os.Stat(filepath.Join(base, "device")); err != nil {
			continue
		}
		n := agentapi.NIC{Name: name, MAC: strings.ToLower(readString(filepath.Join(base, "address")))}
		// carrier reads EINVAL while the link is administratively down.
		n.Link = readString(filepath.Join(base, "carrier")) == "1" ||
			readString(filepath.Join(base, "operstate")) == "up"
		if s, err := strconv.Atoi(readString(filepath.Join(base, "speed"))); err == nil && s > 0 {
			n.SpeedMbps = s
		}
		nics = append(nics, n)
	}
	sort.Slice(nics, func(i, j int) bool { return nics[i].Name < nics[j].Name })
	return nics, nil
}
