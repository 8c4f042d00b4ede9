package redfishsim

import (
	"crypto/sha1"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Redfish power states.
const (
	powerOn          = "On"
	powerOff         = "Off"
	powerPoweringOn  = "PoweringOn"
	powerPoweringOff = "PoweringOff"
)

var (
	resetTypes   = []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn", "PushPowerButton", "PowerCycle"}
	bootTargets  = []string{"None", "Pxe", "Cd", "Usb", "Hdd", "BiosSetup", "Utilities", "Diags", "UefiShell", "UefiHttp"}
	bootEnabled  = []string{"Disabled", "Once", "Continuous"}
	bootModes    = []string{"UEFI", "Legacy"}
	raidTypes    = map[string]int{"RAID0": 1, "RAID1": 2, "RAID5": 3, "RAID6": 4, "RAID10": 4} // minimum drives
	biosDefaults = map[string]any{
		"BootMode":           "Uefi",
		"SriovGlobalEnable":  "Disabled",
		"ProcVirtualization": "Enabled",
		"ProcHyperthreading": "Enabled",
		"ProcTurboMode":      "Enabled",
		"PowerProfile":       "MaxPerf",
		"NicBoot1":           "NetworkBoot",
		"NicBoot2":           "Disabled",
		"EmbeddedSata":       "AhciMode",
		"ProcCoreDisable":    0,
		"AdminPhone":         "",
	}
)

// phase is one leg of a power transition: until `until`, PowerState is
// the previous state (or `via` when transitional states are reported);
// from then on it is `to`.
type phase struct {
	to, via string
	until   time.Time
}

type drive struct {
	id, model, serial, media, protocol string
	capacity                           int64
	rpm                                int
}

type volume struct {
	id, name, raid string
	capacity       int64
	drives         []string // drive ids
}

type mediaDev struct {
	id, name      string
	types         []string
	image         string
	inserted      bool
	writeProtect  bool
	transferProto string
	file          string // the downloaded image in the machine's Dir (machine-backed CD1 only)
}

type update struct {
	image string
	done  time.Time
}

// system is one simulated computer system, with its manager and chassis.
type system struct {
	id    string
	seg   string // its segment in /Systems/<seg>: the id, or the UUID with RedirectToUUID
	index int    // 1-based, for generated serials and MACs
	cfg   SystemConfig
	fetch *http.Client
	count counters

	mu       sync.Mutex
	power    string            // guarded by mu; settled state, On or Off
	phases   []phase           // guarded by mu; pending transition legs
	boot     bootState         // guarded by mu
	bios     map[string]any    // guarded by mu
	pending  map[string]any    // guarded by mu; staged in Bios/Settings
	drives   []drive           // guarded by mu (never changes)
	volumes  []*volume         // guarded by mu
	nextVol  int               // guarded by mu
	media    []*mediaDev       // guarded by mu
	faults   Faults            // guarded by mu
	boots    int               // guarded by mu; completed power-ons
	lastBoot BootRecord        // guarded by mu
	updates  []update          // guarded by mu; running firmware updates
	applied  []string          // guarded by mu; images of finished updates
	extra    map[string]string // guarded by mu; AssetTag, HostName, IndicatorLED

	machineMu sync.Mutex // serializes operations on cfg.Machine; taken before mu, never inside it
}

type bootState struct {
	Target  string `json:"BootSourceOverrideTarget"`
	Enabled string `json:"BootSourceOverrideEnabled"`
	Mode    string `json:"BootSourceOverrideMode"`
}

// counters are per-system request counts, cheap enough for every request.
type counters struct {
	requests, get, post, patch, del, errors atomic.Int64
}

func newSystem(cfg SystemConfig, index int, fetch *http.Client) *system {
	s := &system{
		id:      cfg.ID,
		index:   index,
		cfg:     cfg,
		fetch:   fetch,
		power:   powerOff,
		boot:    bootState{Target: "None", Enabled: "Disabled", Mode: "UEFI"},
		bios:    maps.Clone(biosDefaults),
		pending: map[string]any{},
		nextVol: 1,
		faults:  cfg.Faults,
		extra:   map[string]string{"AssetTag": "", "HostName": "", "IndicatorLED": "Off"},
	}
	if cfg.HTTPClient != nil {
		s.fetch = cfg.HTTPClient
	}
	if m, ok := cfg.Machine.(interface{ MAC() string }); ok && m.MAC() != "" && (len(cfg.MACs) == 0 || cfg.MACs[0] == "") {
		// NIC.1 is the machine's NIC, so an inventory's MAC check holds.
		s.cfg.MACs = append([]string{m.MAC()}, cfg.MACs[min(1, len(cfg.MACs)):]...)
	}
	s.seg = s.id
	if cfg.RedirectToUUID {
		s.seg = s.uuid()
	}
	if cfg.PoweredOn {
		s.power = powerOn
	}
	for i, d := range []drive{
		{model: "SIM SSD 480G", media: "SSD", protocol: "SATA", capacity: 480103981056},
		{model: "SIM SSD 480G", media: "SSD", protocol: "SATA", capacity: 480103981056},
		{model: "SIM HDD 4T", media: "HDD", protocol: "SAS", capacity: 4000787030016, rpm: 7200},
		{model: "SIM HDD 4T", media: "HDD", protocol: "SAS", capacity: 4000787030016, rpm: 7200},
	} {
		d.id = fmt.Sprintf("Disk.%d", i)
		d.serial = fmt.Sprintf("SD%05d%02d", index, i)
		s.drives = append(s.drives, d)
	}
	s.media = []*mediaDev{
		{id: "CD1", name: "Virtual CD", types: []string{"CD", "DVD"}},
		{id: "RemovableDisk1", name: "Virtual Removable Media", types: []string{"USBStick", "Floppy"}},
	}
	return s
}

// path is the system's canonical URL path.
func (s *system) path() string { return sysPath(s.seg) }

func (s *system) serial() string { return fmt.Sprintf("SIM%07d", s.index) }

// uuid is stable per system id, so restarts of the simulator agree.
func (s *system) uuid() string {
	h := sha1.Sum([]byte("metalsync-sim/" + s.id))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// mac returns the MAC of host NIC n (1-based): locally administered,
// unique per system index.
func (s *system) mac(n int) string {
	if n-1 < len(s.cfg.MACs) && s.cfg.MACs[n-1] != "" {
		return strings.ToUpper(s.cfg.MACs[n-1])
	}
	return fmt.Sprintf("02:5A:%02X:%02X:%02X:%02X", byte(s.index>>16), byte(s.index>>8), byte(s.index), n)
}

// settleLocked applies every transition leg and firmware update that has
// finished by now.
func (s *system) settleLocked(now time.Time) {
	for len(s.phases) > 0 && !now.Before(s.phases[0].until) {
		s.power = s.phases[0].to
		s.phases = s.phases[1:]
		if s.power == powerOn {
			s.bootedLocked(now)
		}
	}
	kept := s.updates[:0]
	for _, u := range s.updates {
		if now.Before(u.done) {
			kept = append(kept, u)
			continue
		}
		s.applied = append(s.applied, u.image)
	}
	s.updates = kept
}

// bootedLocked is what a power-on does to the BMC's view: staged BIOS
// settings take effect and a one-time boot override is used up.
func (s *system) bootedLocked(now time.Time) {
	s.boots++
	maps.Copy(s.bios, s.pending)
	clear(s.pending)
	rec := BootRecord{Time: now, Target: s.boot.Target, Mode: s.boot.Mode}
	if s.boot.Enabled == "Disabled" {
		rec.Target = "Hdd"
	}
	if rec.Target == "Cd" {
		rec.Image = s.media[0].image
	}
	if rec.Target == "Usb" {
		rec.Image = s.media[1].image
	}
	s.lastBoot = rec
	if s.boot.Enabled == "Once" {
		s.boot.Enabled = "Disabled"
	}
}

// powerStateLocked is what PowerState reads now.
func (s *system) powerStateLocked() string {
	if len(s.phases) > 0 && s.cfg.ReportTransitional {
		return s.phases[0].via
	}
	return s.power
}

// targetLocked is the state the system ends in once transitions finish.
func (s *system) targetLocked() string {
	if len(s.phases) > 0 {
		return s.phases[len(s.phases)-1].to
	}
	return s.power
}

// resetLocked starts a power change. It returns false for an unknown type.
func (s *system) resetLocked(now time.Time, kind string) bool {
	on := phase{to: powerOn, via: powerPoweringOn}
	off := phase{to: powerOff, via: powerPoweringOff}
	target := s.targetLocked()
	var legs []phase
	switch kind {
	case "On", "ForceOn":
		if target == powerOff {
			legs = []phase{on}
		}
	case "ForceOff", "GracefulShutdown":
		if target == powerOn {
			legs = []phase{off}
		}
	case "PushPowerButton":
		if target == powerOn {
			legs = []phase{off}
		} else {
			legs = []phase{on}
		}
	case "GracefulRestart", "ForceRestart", "PowerCycle":
		if target == powerOn {
			legs = []phase{off, on}
		} else {
			legs = []phase{on}
		}
	case "Nmi":
	default:
		return false
	}
	if len(legs) == 0 || s.faults.PowerStuck {
		return true
	}
	// A new request replaces whatever was in flight, from the current state.
	s.phases = s.phases[:0]
	t := now
	for _, l := range legs {
		if l.to == powerOn {
			t = t.Add(s.cfg.PowerOnDelay)
		} else {
			t = t.Add(s.cfg.PowerOffDelay)
		}
		l.until = t
		s.phases = append(s.phases, l)
	}
	s.settleLocked(now)
	return true
}

func (s *system) drive(id string) (drive, bool) {
	for _, d := range s.drives {
		if d.id == id {
			return d, true
		}
	}
	return drive{}, false
}

func (s *system) mediaDev(id string) *mediaDev {
	for _, m := range s.media {
		if m.id == id {
			return m
		}
	}
	return nil
}

// SystemState is a snapshot of one system, for tests to assert on.
type SystemState struct {
	ID string
	// PowerState is what the BMC reports now (On, Off, PoweringOn, PoweringOff).
	PowerState string
	// Boot is the boot override.
	BootTarget, BootEnabled, BootMode string
	// BIOS holds the applied attributes, BIOSPending the staged ones.
	BIOS, BIOSPending map[string]any
	Volumes           []VolumeState
	Media             []MediaState
	// Boots counts completed power-ons; LastBoot says what the last one used.
	Boots    int
	LastBoot BootRecord
	// Updates lists the images of finished firmware updates.
	Updates []string
	Faults  Faults
}

// VolumeState is one RAID volume.
type VolumeState struct {
	ID, Name, RAIDType string
	CapacityBytes      int64
	Drives             []string
}

// MediaState is one virtual media device.
type MediaState struct {
	ID, Image string
	Inserted  bool
}

// BootRecord is what a completed power-on booted from.
type BootRecord struct {
	Time   time.Time
	Target string // Redfish boot source (Hdd when no override was set)
	Mode   string
	Image  string // the virtual media image, when Target was Cd or Usb
}

func (s *system) snapshot(now time.Time) SystemState {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked(now)
	st := SystemState{
		ID:          s.id,
		PowerState:  s.powerStateLocked(),
		BootTarget:  s.boot.Target,
		BootEnabled: s.boot.Enabled,
		BootMode:    s.boot.Mode,
		BIOS:        maps.Clone(s.bios),
		BIOSPending: maps.Clone(s.pending),
		Boots:       s.boots,
		LastBoot:    s.lastBoot,
		Updates:     slices.Clone(s.applied),
		Faults:      s.faults,
	}
	for _, v := range s.volumes {
		st.Volumes = append(st.Volumes, VolumeState{ID: v.id, Name: v.name, RAIDType: v.raid, CapacityBytes: v.capacity, Drives: slices.Clone(v.drives)})
	}
	for _, m := range s.media {
		st.Media = append(st.Media, MediaState{ID: m.id, Image: m.image, Inserted: m.inserted})
	}
	return st
}
