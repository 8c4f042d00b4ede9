// Package drivers is the contract between metalsync and BMC drivers: value
// types and small capability interfaces. Concrete drivers live in
// sub-packages (redfish, ipmi, fake); the executor is their only caller.
//
// A driver implements the interfaces its BMC can serve. Where a BMC turns
// out at run time to lack something it claimed, the method returns an error
// for which errors.Is(err, ErrUnsupported) is true; a driver never fakes a
// result.
package drivers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"metalsync.dev/metalsync/credentials/secret"
)

// ErrUnsupported marks an operation the driver or the BMC cannot perform.
var ErrUnsupported = errors.New("unsupported by this BMC")

// ErrAuth marks rejected credentials: retrying will not help.
var ErrAuth = errors.New("BMC rejected the credentials")

// ErrUnreachable marks a BMC that did not answer (network, TLS, timeout).
var ErrUnreachable = errors.New("BMC unreachable")

// ErrBMCFailing marks a BMC that answered with its own failure (an HTTP
// 5xx): it may recover, but a node whose BMC keeps failing is faulted.
var ErrBMCFailing = errors.New("BMC failing")

// ErrPermanent marks a request the BMC refused for good (HTTP 400, 401,
// 403, 404, 405, 501 and the like): sending it again will not help, a
// person must change something. The executor treats it as stalled.
// Everything a driver returns that is neither ErrPermanent, ErrAuth nor
// ErrUnsupported may succeed on a later attempt (timeouts, connection
// resets, 5xx other than 501, 429).
var ErrPermanent = errors.New("refused by the BMC")

// BMCError is a BMC's own answer refusing or failing one request, in a
// form a caller can classify without knowing the protocol: errors.Is
// against Class (ErrPermanent, ErrAuth, ErrBMCFailing; nil for a refusal
// worth retrying, such as 429), errors.As for the status and the pause the
// BMC asked for.
type BMCError struct {
	// Op is the request, such as "GET /redfish/v1/Systems/1".
	Op string
	// StatusCode is the protocol's status (the HTTP status for Redfish).
	StatusCode int
	// Status is StatusCode for people, such as "404 not found".
	Status string
	// Message is the BMC's own explanation, with secrets redacted.
	Message string
	// RetryAfter is the pause the BMC asked for before the next attempt
	// (an HTTP Retry-After on 503 or 429); 0 when it asked for none.
	RetryAfter time.Duration
	// Class is the sentinel the error matches, or nil.
	Class error
}

func (e *BMCError) Error() string {
	s := e.Op + ": " + e.Status
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	if e.Class == ErrAuth {
		s += ": " + ErrAuth.Error()
	}
	return s
}

// Unwrap returns the error's class, so errors.Is(err, ErrPermanent) and
// the like work through any wrapping.
func (e *BMCError) Unwrap() error { return e.Class }

// RetryAfter returns the pause the BMC asked for somewhere in err's chain.
func RetryAfter(err error) (time.Duration, bool) {
	var be *BMCError
	if errors.As(err, &be) && be.RetryAfter > 0 {
		return be.RetryAfter, true
	}
	return 0, false
}

// Unsupported returns an ErrUnsupported error naming the operation.
func Unsupported(driver, op string) error {
	return fmt.Errorf("%s: %s: %w", driver, op, ErrUnsupported)
}

// PowerState is the observed power state of a system.
type PowerState string

// Power states.
const (
	PowerOn      PowerState = "on"
	PowerOff     PowerState = "off"
	PowerUnknown PowerState = "unknown"
)

// PowerAction is a requested power change.
type PowerAction string

// Power actions.
const (
	ActionOn             PowerAction = "on"
	ActionOff            PowerAction = "off"
	ActionGracefulOff    PowerAction = "graceful-off"
	ActionReboot         PowerAction = "reboot"
	ActionGracefulReboot PowerAction = "graceful-reboot"
)

// Target returns the power state the action ends in.
func (a PowerAction) Target() PowerState {
	switch a {
	case ActionOff, ActionGracefulOff:
		return PowerOff
	default:
		return PowerOn
	}
}

// BootDevice is a boot source.
type BootDevice string

// Boot devices.
const (
	BootPXE  BootDevice = "pxe"
	BootCD   BootDevice = "cd"
	BootDisk BootDevice = "disk"
	BootBIOS BootDevice = "bios"
)

// BootMode is the firmware boot mode.
type BootMode string

// Boot modes.
const (
	BootModeUnset  BootMode = ""
	BootModeUEFI   BootMode = "uefi"
	BootModeLegacy BootMode = "legacy"
)

// BootOptions is a boot device request.
type BootOptions struct {
	Device     BootDevice
	Mode       BootMode
	Persistent bool
}

// MediaKind is the kind of virtual media device.
type MediaKind string

// Media kinds.
const (
	MediaCD     MediaKind = "cd"
	MediaFloppy MediaKind = "floppy"
	MediaUSB    MediaKind = "usb"
)

// MediaStatus is what a virtual media device holds.
type MediaStatus struct {
	Kind     MediaKind `json:"kind"`
	Device   string    `json:"device,omitempty"`
	Image    string    `json:"image,omitempty"`
	Inserted bool      `json:"inserted"`
}

// Inventory is the hardware of a system as the BMC reports it.
//
// A section the BMC links but cannot serve (absent, not implemented) is
// left empty and explained in Warnings; the inventory is still returned.
// NICsUnknown says the NICs could not be read: NICs is nil then, and
// nothing can be concluded about the node's MACs (a MAC guard must not
// treat the node as having none).
type Inventory struct {
	System    SystemInfo `json:"system"`
	CPUs      []CPU      `json:"cpus,omitempty"`
	MemoryMiB int64      `json:"memoryMiB,omitempty"`
	Disks     []Disk     `json:"disks,omitempty"`
	NICs      []NIC      `json:"nics,omitempty"`
	Firmware  []Firmware `json:"firmware,omitempty"`
	// NICsUnknown is true when the BMC did not tell the host's NICs.
	NICsUnknown bool `json:"nicsUnknown,omitempty"`
	// Warnings name each section that could not be read, and why, in a
	// stable order.
	Warnings []string `json:"warnings,omitempty"`
}

// SystemInfo identifies a system.
type SystemInfo struct {
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	Serial       string `json:"serial,omitempty"`
	UUID         string `json:"uuid,omitempty"`
	BIOSVersion  string `json:"biosVersion,omitempty"`
}

// CPU is one processor socket.
type CPU struct {
	Model   string `json:"model,omitempty"`
	Cores   int    `json:"cores,omitempty"`
	Threads int    `json:"threads,omitempty"`
	Arch    string `json:"arch,omitempty"`
}

// Disk is a physical drive.
type Disk struct {
	ID         string `json:"id"`
	Model      string `json:"model,omitempty"`
	Serial     string `json:"serial,omitempty"`
	SizeBytes  int64  `json:"sizeBytes,omitempty"`
	Media      string `json:"media,omitempty"` // HDD, SSD
	Protocol   string `json:"protocol,omitempty"`
	Rotational bool   `json:"rotational,omitempty"`
}

// NIC is a host network interface.
type NIC struct {
	ID         string `json:"id"`
	MAC        string `json:"mac,omitempty"`
	SpeedMbps  int    `json:"speedMbps,omitempty"`
	LinkStatus string `json:"linkStatus,omitempty"`
}

// Firmware is one firmware component and its version.
type Firmware struct {
	Component string `json:"component"`
	Version   string `json:"version"`
}

// Volume is a hardware RAID volume.
type Volume struct {
	ID            string   `json:"id"`
	Name          string   `json:"name,omitempty"`
	RAIDLevel     string   `json:"raidLevel,omitempty"`
	CapacityBytes int64    `json:"capacityBytes,omitempty"`
	Drives        []string `json:"drives,omitempty"`
}

// VolumeSpec asks for a new RAID volume.
type VolumeSpec struct {
	Name          string
	RAIDLevel     string // RAID0, RAID1, RAID5, RAID6, RAID10
	CapacityBytes int64  // 0: all of the drives
	Drives        []string
}

// PowerReader reads power state. For Redfish this must cost one GET.
type PowerReader interface {
	PowerState(ctx context.Context) (PowerState, error)
}

// PowerSetter changes power and returns once the BMC reports the new state
// or ctx ends.
type PowerSetter interface {
	SetPower(ctx context.Context, action PowerAction) error
}

// BootSetter sets the next (or every) boot device.
type BootSetter interface {
	SetBoot(ctx context.Context, opts BootOptions) error
}

// BootReader reads the boot override the BMC holds now. Device is "" when
// no override is set.
type BootReader interface {
	BootOverride(ctx context.Context) (BootOptions, error)
}

// MediaManager attaches and detaches virtual media.
type MediaManager interface {
	InsertMedia(ctx context.Context, kind MediaKind, imageURL string) error
	EjectMedia(ctx context.Context, kind MediaKind) error
	MediaStatus(ctx context.Context, kind MediaKind) (MediaStatus, error)
}

// InventoryReader reads the hardware inventory out of band.
type InventoryReader interface {
	Inventory(ctx context.Context) (Inventory, error)
}

// BIOSManager reads and applies BIOS attributes. Applied attributes take
// effect at the next reboot on most BMCs.
type BIOSManager interface {
	BIOSAttributes(ctx context.Context) (map[string]any, error)
	ApplyBIOS(ctx context.Context, attrs map[string]any) error
}

// RAIDManager manages hardware RAID volumes.
type RAIDManager interface {
	Volumes(ctx context.Context) ([]Volume, error)
	CreateVolume(ctx context.Context, spec VolumeSpec) (Volume, error)
	DeleteVolume(ctx context.Context, id string) error
}

// FirmwareUpdater updates firmware from an image URL.
type FirmwareUpdater interface {
	UpdateFirmware(ctx context.Context, imageURL string, targets []string) error
}

// BMC is what every driver provides: power, and a way to release sessions.
// Everything else is a capability found by type assertion (see Capabilities).
type BMC interface {
	PowerReader
	PowerSetter
	Close(ctx context.Context) error
}

// Capability names something a driver can do.
type Capability string

// Capabilities.
const (
	CapPower     Capability = "power"
	CapBoot      Capability = "boot"
	CapMedia     Capability = "media"
	CapInventory Capability = "inventory"
	CapBIOS      Capability = "bios"
	CapRAID      Capability = "raid"
	CapFirmware  Capability = "firmware"
)

// Capabilities lists what b implements.
func Capabilities(b BMC) []Capability {
	caps := []Capability{CapPower}
	if _, ok := b.(BootSetter); ok {
		caps = append(caps, CapBoot)
	}
	if _, ok := b.(MediaManager); ok {
		caps = append(caps, CapMedia)
	}
	if _, ok := b.(InventoryReader); ok {
		caps = append(caps, CapInventory)
	}
	if _, ok := b.(BIOSManager); ok {
		caps = append(caps, CapBIOS)
	}
	if _, ok := b.(RAIDManager); ok {
		caps = append(caps, CapRAID)
	}
	if _, ok := b.(FirmwareUpdater); ok {
		caps = append(caps, CapFirmware)
	}
	return caps
}

// Config is what a driver constructor gets.
type Config struct {
	// Endpoint is the BMC URL without the driver prefix: for
	// redfish+https://h/redfish/v1/Systems/1 it is https://h/redfish/v1/Systems/1,
	// for ipmi://h:623 it is ipmi://h:623.
	Endpoint *url.URL
	Username string
	Password secret.Value
	// InsecureSkipVerify turns TLS verification off (site opted out).
	InsecureSkipVerify bool
	// CAPEM, when set, is the only CA trusted for this BMC.
	CAPEM []byte
	// CipherSuite is the IPMI cipher suite (3 or 17).
	CipherSuite int
	// CallTimeout bounds one BMC call; 0 means the driver's default.
	CallTimeout time.Duration
}

// Constructor opens a driver for one BMC. It must not block longer than ctx.
type Constructor func(ctx context.Context, cfg Config) (BMC, error)

// Registry maps a BMC URL scheme's driver part ("redfish", "ipmi", "fake")
// to its constructor and static capabilities. It is built in cmd/ and passed
// down; there is no global registry.
type Registry map[string]Entry

// Entry is one registered driver.
type Entry struct {
	Open Constructor
	// Capabilities are what the driver can do on a BMC that supports
	// everything; the planner checks these before planning a step.
	Capabilities []Capability
	// Close, when set, releases what Open keeps between calls (sessions
	// kept open across passes, pooled connections). The owner of the
	// registry calls Registry.Close once, at shutdown.
	Close func(ctx context.Context) error
}

// Known reports whether a driver is registered under name.
func (r Registry) Known(name string) bool {
	_, ok := r[name]
	return ok
}

// Has reports whether the driver registered under name declares c.
func (r Registry) Has(name string, c Capability) bool {
	e, ok := r[name]
	if !ok {
		return false
	}
	for _, x := range e.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

// Open opens the driver named by name.
func (r Registry) Open(ctx context.Context, name string, cfg Config) (BMC, error) {
	e, ok := r[name]
	if !ok {
		return nil, fmt.Errorf("no driver %q (known: %s)", name, r.names())
	}
	return e.Open(ctx, cfg)
}

// Close releases what every driver keeps between opens: the Redfish
// driver logs out of the sessions it kept. Call it once, when no more
// drivers will be opened (daemon shutdown, end of a CLI command).
func (r Registry) Close(ctx context.Context) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(r)) {
		if c := r[name].Close; c != nil {
			if err := c(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (r Registry) names() string {
	return strings.Join(slices.Sorted(maps.Keys(r)), ", ")
}
