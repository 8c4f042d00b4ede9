package qemumachine

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// Firmware is what the machine boots with.
type Firmware int

// Firmwares.
const (
	BIOS           Firmware = iota // machine pc, SeaBIOS
	UEFI                           // machine q35, OVMF (pflash code + a per-machine copy of the vars)
	UEFISecureBoot                 // machine q35,smm=on, OVMF secboot code + vars enrolled with Microsoft keys
)

func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "bios"
	case UEFI:
		return "uefi"
	case UEFISecureBoot:
		return "uefi-secureboot"
	}
	return fmt.Sprintf("Firmware(%d)", int(f))
}

// BootDevice names what SetBootOrder puts first.
type BootDevice string

// Boot devices.
const (
	BootDisk BootDevice = "disk" // disk0 (then the other disks in order)
	BootCD   BootDevice = "cd"   // cd0
	BootPXE  BootDevice = "pxe"  // net0
)

// Disk is one virtio disk. Its device id is disk<index>.
type Disk struct {
	// Path is a raw image file; "" creates disk<index>.raw in Config.Dir.
	Path string
	// Size creates the file sparse with this many bytes when it does not
	// exist yet; 0 leaves an existing file as it is.
	Size int64
	// Serial is the serial number the guest reads (optional).
	Serial string
}

// Forward lets the guest reach one port on the host's loopback: each guest
// connection to Guest is relayed to 127.0.0.1:HostPort by a bash process
// that slirp starts for it (see relay). Nothing else is reachable (slirp
// restrict=on), so tests send no traffic off the host.
type Forward struct {
	Guest    netip.AddrPort // an IPv4 address in 10.0.2.0/24 other than the gateway 10.0.2.2
	HostPort uint16
}

// Config describes one machine.
type Config struct {
	// Dir holds the artifacts (console.log, qmp.log, qemu.log), created
	// disks and the UEFI vars copy. It must exist.
	Dir string
	// Firmware picks the machine type and firmware (default BIOS).
	Firmware Firmware
	// MemoryMiB is the guest memory (0: 1024).
	MemoryMiB int
	// CPUs is the number of vCPUs (0: 1).
	CPUs int
	// Disks are the virtio disks disk0, disk1, ... in boot order.
	Disks []Disk
	// MAC is the NIC's MAC (net0); "" means no NIC.
	MAC string
	// Forwards are the host loopback ports the guest may reach.
	Forwards []Forward
	// BootFile is the boot file name slirp's DHCP offers (for netboot
	// tests: an http URL of an iPXE script behind a Forward); "" offers none.
	BootFile string
	// QEMU is the emulator binary (default qemu-system-x86_64 on $PATH).
	QEMU string
	// OVMFDir holds the OVMF images (default /usr/share/OVMF).
	OVMFDir string
	// Logger receives power and media changes (nil: discarded).
	Logger *slog.Logger
}

var slirpNet = netip.MustParsePrefix("10.0.2.0/24")

func (c *Config) setDefaults() error {
	if c.Dir == "" {
		return errors.New("config: no Dir for the machine's files")
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = 1024
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if c.OVMFDir == "" {
		c.OVMFDir = "/usr/share/OVMF"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Firmware < BIOS || c.Firmware > UEFISecureBoot {
		return fmt.Errorf("config: firmware %v: unknown", c.Firmware)
	}
	if c.MemoryMiB < 16 || c.CPUs < 1 {
		return fmt.Errorf("config: %d MiB, %d vCPUs: too small", c.MemoryMiB, c.CPUs)
	}
	if c.MAC != "" {
		if _, err := net.ParseMAC(c.MAC); err != nil {
			return fmt.Errorf("config: mac: %w", err)
		}
	}
	for i, d := range c.Disks {
		if d.Size < 0 || strings.ContainsAny(d.Path+d.Serial, "\n") {
			return fmt.Errorf("config: disk%d: negative size, or a newline in path or serial", i)
		}
	}
	for _, f := range c.Forwards {
		a := f.Guest.Addr()
		if !a.Is4() || !slirpNet.Contains(a) || a == netip.MustParseAddr("10.0.2.2") || f.Guest.Port() == 0 || f.HostPort == 0 {
			return fmt.Errorf("config: forward %v to port %d: want 10.0.2.x:port (not the gateway) to a host port", f.Guest, f.HostPort)
		}
	}
	if (len(c.Forwards) > 0 || c.BootFile != "") && c.MAC == "" {
		return errors.New("config: forwards and a boot file need a NIC (MAC)")
	}
	if strings.ContainsAny(c.BootFile, "\n") {
		return errors.New("config: boot file: newline")
	}
	return nil
}

// files are the paths a machine runs with.
type files struct {
	qmpSock, serialSock string
	disks               []string
	ovmfCode, ovmfVars  string
}

// args is the QEMU command line. The machine starts stopped (-S): power
// is off until PowerOn.
func args(c Config, f files) []string {
	machine := "pc"
	switch c.Firmware {
	case UEFI:
		machine = "q35"
	case UEFISecureBoot:
		machine = "q35,smm=on"
	}
	a := []string{
		"-accel", "tcg", // /dev/kvm is broken on our machines: never let QEMU pick it
		"-machine", machine,
		"-m", strconv.Itoa(c.MemoryMiB),
		"-smp", strconv.Itoa(c.CPUs),
		"-nodefaults", "-display", "none", "-no-user-config",
		"-no-shutdown", // a guest power-off stops the VM instead of ending QEMU
		"-S",
		"-chardev", "socket,id=qmp0,path=" + esc(f.qmpSock),
		"-mon", "chardev=qmp0,mode=control",
		"-chardev", "socket,id=ser0,path=" + esc(f.serialSock),
		"-serial", "chardev:ser0",
	}
	if c.Firmware != BIOS {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+esc(f.ovmfCode),
			"-drive", "if=pflash,format=raw,unit=1,file="+esc(f.ovmfVars))
	}
	if c.Firmware == UEFISecureBoot {
		a = append(a, "-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	order := bootOrder(BootDisk, len(c.Disks), c.MAC != "")
	for i, p := range f.disks {
		id := diskID(i)
		a = append(a, "-drive", fmt.Sprintf("if=none,id=%sdrv,file=%s,format=raw", id, esc(p)))
		dev := fmt.Sprintf("virtio-blk-pci,drive=%sdrv,id=%s,bootindex=%d", id, id, order[id])
		if s := c.Disks[i].Serial; s != "" {
			dev += ",serial=" + esc(s)
		}
		a = append(a, "-device", dev)
	}
	a = append(a,
		"-drive", "if=none,id=cd0drv,media=cdrom,readonly=on",
		"-device", fmt.Sprintf("ide-cd,bus=ide.0,drive=cd0drv,id=cd0,bootindex=%d", order["cd0"]))
	if c.MAC != "" {
		nd := "user,id=net0drv,restrict=on"
		if c.BootFile != "" {
			nd += ",bootfile=" + esc(c.BootFile)
		}
		for _, fw := range c.Forwards {
			nd += ",guestfwd=tcp:" + fw.Guest.String() + "-cmd:" + esc(relay(fw.HostPort))
		}
		a = append(a, "-netdev", nd,
			"-device", fmt.Sprintf("virtio-net-pci,netdev=net0drv,mac=%s,id=net0,bootindex=%d", c.MAC, order["net0"]))
	}
	return a
}

// relay is the command slirp runs for each guest connection of a forward,
// with the connection on its stdin and stdout. A chardev target
// ("-tcp:127.0.0.1:port") would be one stream opened when QEMU starts: it
// needs the host port listening before the machine starts and carries a
// single guest connection, which TLS and HTTP clients outgrow. bash's
// /dev/tcp needs no netcat or socat on the host. The host side sees the
// guest's close only when it closes too (or times out the idle
// connection), as the two cats cannot half-close the socket.
func relay(port uint16) string {
	return fmt.Sprintf(`/bin/bash -c "exec 3<>/dev/tcp/127.0.0.1/%d; cat <&3 & cat >&3"`, port)
}

// esc escapes a value inside a QEMU option list, where a comma is written
// twice.
func esc(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func diskID(i int) string { return "disk" + strconv.Itoa(i) }

// bootOrder gives every boot device a unique bootindex with first ahead:
// disks keep their order among themselves.
func bootOrder(first BootDevice, disks int, nic bool) map[string]int {
	var ids []string
	var diskIDs []string
	for i := range disks {
		diskIDs = append(diskIDs, diskID(i))
	}
	net := []string{}
	if nic {
		net = []string{"net0"}
	}
	switch first {
	case BootCD:
		ids = append(append([]string{"cd0"}, diskIDs...), net...)
	case BootPXE:
		ids = append(append(net, diskIDs...), "cd0")
	default:
		ids = append(append(diskIDs, "cd0"), net...)
	}
	m := make(map[string]int, len(ids))
	for i, id := range ids {
		m[id] = i
	}
	return m
}

func (c Config) ovmf() (code, vars string) {
	if c.Firmware == UEFISecureBoot {
		return filepath.Join(c.OVMFDir, "OVMF_CODE_4M.secboot.fd"), filepath.Join(c.OVMFDir, "OVMF_VARS_4M.ms.fd")
	}
	return filepath.Join(c.OVMFDir, "OVMF_CODE_4M.fd"), filepath.Join(c.OVMFDir, "OVMF_VARS_4M.fd")
}
