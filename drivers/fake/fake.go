// Package fake is an in-memory BMC: a stateful simulation of a machine
// and its BMC (power with transition delays, boot override, virtual media,
// inventory, BIOS with settings pending until reboot, RAID volumes) shared
// by unit tests, CLI scripts and the demo. Latency and failures are set
// through explicit fields, never picked from names.
//
// A Fleet holds the systems by name: fake://rack1-n07 is system
// "rack1-n07"; fake://chassis1/blade3 is system "chassis1/blade3" behind
// BMC host "chassis1", so several systems can share one BMC.
package fake

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/drivers"
)

// DriverName is the name under which the fake registers.
const DriverName = "fake"

// Capabilities is everything: the fake implements every capability.
var Capabilities = []drivers.Capability{
	drivers.CapPower, drivers.CapBoot, drivers.CapMedia, drivers.CapInventory,
	drivers.CapBIOS, drivers.CapRAID, drivers.CapFirmware,
}

// ErrServiceUnavailable is what an injected transient failure returns, as
// a busy BMC answers 503.
var ErrServiceUnavailable = errors.New("503 service unavailable")

// Fleet holds fake systems by name. Its zero value is not usable; call
// NewFleet.
type Fleet struct {
	// AutoCreate makes Open create a fresh system (powered off) for a name
	// that was never added. The CLI and the demo set it; tests that want
	// an unknown name to fail leave it off. Set it before first use.
	AutoCreate bool

	mu      sync.Mutex
	systems map[string]*System // guarded by mu
	hosts   map[string]*host   // guarded by mu
}

// NewFleet returns an empty fleet.
func NewFleet() *Fleet {
	return &Fleet{systems: map[string]*System{}, hosts: map[string]*host{}}
}

// host is one BMC, which may serve several systems; it counts the calls in
// flight so tests can check per-BMC limits.
type host struct {
	mu       sync.Mutex
	inFlight int // guarded by mu
	peak     int // guarded by mu
}

func (h *host) enter() {
	h.mu.Lock()
	h.inFlight++
	h.peak = max(h.peak, h.inFlight)
	h.mu.Unlock()
}

func (h *host) leave() {
	h.mu.Lock()
	h.inFlight--
	h.mu.Unlock()
}

// Add creates (or returns the existing) system called name, powered off.
func (f *Fleet) Add(name string) *System {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addLocked(name)
}

func (f *Fleet) addLocked(name string) *System {
	if s, ok := f.systems[name]; ok {
		return s
	}
	hostName, _, _ := strings.Cut(name, "/")
	h, ok := f.hosts[hostName]
	if !ok {
		h = &host{}
		f.hosts[hostName] = h
	}
	s := newSystem(name, h)
	f.systems[name] = s
	return s
}

// System returns the system called name, or nil.
func (f *Fleet) System(name string) *System {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.systems[name]
}

// Names lists the systems, sorted.
func (f *Fleet) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.systems))
}

// PeakPerHost returns, per BMC host, the most calls that were in flight
// at once.
func (f *Fleet) PeakPerHost() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.hosts))
	for name, h := range f.hosts {
		h.mu.Lock()
		out[name] = h.peak
		h.mu.Unlock()
	}
	return out
}

// Entry returns the registry entry that opens systems of this fleet.
func (f *Fleet) Entry() drivers.Entry {
	return drivers.Entry{Open: f.Open, Capabilities: slices.Clone(Capabilities)}
}

// Name returns the system name of a fake:// endpoint.
func Name(endpoint string) (string, error) {
	rest, ok := strings.CutPrefix(endpoint, "fake://")
	if !ok || rest == "" {
		return "", fmt.Errorf("fake: endpoint %q: want fake://name", endpoint)
	}
	return strings.TrimSuffix(rest, "/"), nil
}

// Open opens the system named by cfg.Endpoint (fake://name).
func (f *Fleet) Open(ctx context.Context, cfg drivers.Config) (drivers.BMC, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Endpoint == nil {
		return nil, fmt.Errorf("fake: no endpoint")
	}
	name, err := Name(cfg.Endpoint.String())
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	s, ok := f.systems[name]
	if !ok && f.AutoCreate {
		s, ok = f.addLocked(name), true
	}
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fake: %s: no such system: %w", name, drivers.ErrUnreachable)
	}
	if err := s.login(cfg.Username, cfg.Password); err != nil {
		return nil, err
	}
	return &BMC{sys: s}, nil
}

// Faults are failures injected into one system.
type Faults struct {
	// Unreachable makes every call fail with drivers.ErrUnreachable.
	Unreachable bool
	// IgnorePower makes SetPower succeed without changing power, as a BMC
	// that accepts a request and never carries it out.
	IgnorePower bool
	// FailCalls makes the next FailCalls calls fail with a transient
	// 503 service unavailable.
	FailCalls int
}

// Counts is what was done to a system.
type Counts struct {
	// Calls counts every call that reached the BMC.
	Calls int
	// Ops counts successful state-changing calls by name: "power on",
	// "power off", "reboot", "set-boot", "insert-media", "eject-media",
	// "apply-bios", "create-volume", "delete-volume", "update-firmware".
	Ops map[string]int
}

// System is one simulated machine and its BMC. Its methods are safe for
// concurrent use.
type System struct {
	name string
	host *host

	mu         sync.Mutex
	power      drivers.PowerState                        // guarded by mu
	boot       drivers.BootOptions                       // guarded by mu
	bootedFrom drivers.BootDevice                        // guarded by mu
	media      map[drivers.MediaKind]drivers.MediaStatus // guarded by mu
	bios       map[string]any                            // guarded by mu
	pending    map[string]any                            // guarded by mu
	volumes    []drivers.Volume                          // guarded by mu
	nextVolume int                                       // guarded by mu
	firmware   []drivers.Firmware                        // guarded by mu
	inventory  drivers.Inventory                         // guarded by mu
	latency    time.Duration                             // guarded by mu
	powerDelay time.Duration                             // guarded by mu
	faults     Faults                                    // guarded by mu
	username   string                                    // guarded by mu
	password   secret.Value                              // guarded by mu
	counts     Counts                                    // guarded by mu
}

func newSystem(name string, h *host) *System {
	serial := strings.ToUpper(strings.NewReplacer("/", "-", ".", "-").Replace(name))
	return &System{
		name:  name,
		host:  h,
		power: drivers.PowerOff,
		media: map[drivers.MediaKind]drivers.MediaStatus{},
		bios: map[string]any{
			"BootMode": "Uefi", "SriovEnable": "Disabled", "HyperThreading": "Enabled", "SecureBoot": "Disabled",
		},
		pending:  map[string]any{},
		firmware: []drivers.Firmware{{Component: "BIOS", Version: "1.0.0"}, {Component: "BMC", Version: "2.0.0"}},
		inventory: drivers.Inventory{
			System:    drivers.SystemInfo{Manufacturer: "Metalsync", Model: "Fake 1U", Serial: "FAKE-" + serial, BIOSVersion: "1.0.0"},
			CPUs:      []drivers.CPU{{Model: "Fake Xeon", Cores: 16, Threads: 32, Arch: "x86_64"}, {Model: "Fake Xeon", Cores: 16, Threads: 32, Arch: "x86_64"}},
			MemoryMiB: 262144,
			Disks: []drivers.Disk{
				{ID: "disk0", Model: "Fake NVMe", Serial: serial + "-D0", SizeBytes: 960197124096, Media: "SSD", Protocol: "NVMe"},
				{ID: "disk1", Model: "Fake NVMe", Serial: serial + "-D1", SizeBytes: 960197124096, Media: "SSD", Protocol: "NVMe"},
			},
			NICs: []drivers.NIC{{ID: "nic0", SpeedMbps: 25000, LinkStatus: "up"}, {ID: "nic1", SpeedMbps: 25000, LinkStatus: "up"}},
		},
		counts: Counts{Ops: map[string]int{}},
	}
}

// Name returns the system's name.
func (s *System) Name() string { return s.name }

// SetFaults replaces the injected faults.
func (s *System) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// SetLatency sets the time every call takes and the time a power change
// takes on top of it.
func (s *System) SetLatency(call, power time.Duration) {
	s.mu.Lock()
	s.latency, s.powerDelay = call, power
	s.mu.Unlock()
}

// SetCredentials makes Open require these credentials; empty accepts any.
func (s *System) SetCredentials(username string, password secret.Value) {
	s.mu.Lock()
	s.username, s.password = username, password
	s.mu.Unlock()
}

// SetPowerState sets power directly, as a person at the machine would.
func (s *System) SetPowerState(p drivers.PowerState) {
	s.mu.Lock()
	s.power = p
	s.mu.Unlock()
}

// SetMACs gives the NICs MAC addresses (canonical, lowercase).
func (s *System) SetMACs(macs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.inventory.NICs {
		if i < len(macs) {
			s.inventory.NICs[i].MAC = macs[i]
		}
	}
}

// PowerState returns the current power without going through the BMC.
func (s *System) PowerState() drivers.PowerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.power
}

// Boot returns the boot override and the device the system last booted from.
func (s *System) Boot() (override drivers.BootOptions, bootedFrom drivers.BootDevice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.boot, s.bootedFrom
}

// Media returns what the slot of kind holds.
func (s *System) Media(kind drivers.MediaKind) drivers.MediaStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mediaLocked(kind)
}

// Counts returns a copy of the call counters.
func (s *System) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Counts{Calls: s.counts.Calls, Ops: maps.Clone(s.counts.Ops)}
}

func (s *System) login(user string, pass secret.Value) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.Unreachable {
		return fmt.Errorf("fake: %s: %w", s.name, drivers.ErrUnreachable)
	}
	if s.username != "" && (user != s.username || pass.Reveal() != s.password.Reveal()) {
		return fmt.Errorf("fake: %s: %w", s.name, drivers.ErrAuth)
	}
	return nil
}

// call runs one BMC call: it honours ctx, takes the configured latency,
// applies injected faults, then runs fn under the lock.
func (s *System) call(ctx context.Context, op string, extra time.Duration, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.host.enter()
	defer s.host.leave()
	s.mu.Lock()
	s.counts.Calls++
	delay := s.latency + extra
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	switch {
	case s.faults.Unreachable:
		return fmt.Errorf("fake: %s: %s: %w", s.name, op, drivers.ErrUnreachable)
	case s.faults.FailCalls > 0:
		s.faults.FailCalls--
		return fmt.Errorf("fake: %s: %s: %w", s.name, op, ErrServiceUnavailable)
	}
	return fn()
}

func (s *System) countLocked(op string) { s.counts.Ops[op]++ }

func (s *System) mediaLocked(kind drivers.MediaKind) drivers.MediaStatus {
	m, ok := s.media[kind]
	if !ok {
		m = drivers.MediaStatus{Kind: kind}
	}
	m.Device = string(kind) + "0"
	return m
}

// powerOnLocked boots the system: pending BIOS settings take effect and a
// one-time boot override is consumed.
func (s *System) powerOnLocked() {
	s.power = drivers.PowerOn
	maps.Copy(s.bios, s.pending)
	clear(s.pending)
	s.bootedFrom = drivers.BootDisk
	if s.boot.Device != "" {
		s.bootedFrom = s.boot.Device
		if !s.boot.Persistent {
			s.boot = drivers.BootOptions{}
		}
	}
}
