package redfishsim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"time"
)

// Config describes a whole simulator: its systems and what they share.
type Config struct {
	// Systems lists the simulated systems; every one needs a unique ID
	// (see Systems for sys-0001 style names).
	Systems []SystemConfig
	// Username and Password are the credentials every BMC accepts, by
	// session login or HTTP basic auth. Both empty: "admin" / "password".
	Username string
	Password string
	// Profile is the latency of requests that name no system on the shared
	// listener (service root, sessions, update service).
	Profile Profile
	// MaxSessions bounds the sessions of the shared listener (0: no limit).
	// A BMC view (Server.BMC) uses its system's MaxSessions instead.
	MaxSessions int
	// SessionTimeout expires sessions idle for this long (0: 30 minutes).
	SessionTimeout time.Duration
	// SessionLifetime ends every session this long after its login, used
	// or not (0: sessions end only when idle), as BMCs with a fixed
	// session lifetime do; the client gets 401 and must log in again.
	SessionLifetime time.Duration
	// Clock is the time source for power transitions, tasks and sessions;
	// nil means the wall clock. Tests pass a clock they move themselves.
	Clock Clock
	// HTTPClient fetches virtual media and firmware images for systems
	// that have none of their own; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// LogLimit caps the full request log (0: 100000 entries; the oldest
	// half is dropped when full). Per-system counters are always kept.
	LogLimit int
	// DisableLog turns the full request log off (counters stay), for
	// benchmarks with many systems.
	DisableLog bool
}

// SystemConfig is one simulated system and its BMC's behaviour.
type SystemConfig struct {
	// ID names the system, its manager and its chassis in URLs.
	ID string
	// Profile is the request latency of this system's BMC.
	Profile Profile
	// PoweredOn is the power state at start.
	PoweredOn bool
	// PowerOnDelay and PowerOffDelay are how long a power transition
	// takes; a restart takes both.
	PowerOnDelay  time.Duration
	PowerOffDelay time.Duration
	// ReportTransitional makes PowerState read PoweringOn / PoweringOff
	// during a transition; otherwise it reads the old state until done.
	ReportTransitional bool
	// Media chooses how virtual media is driven: actions, PATCH, or both.
	Media MediaStyle
	// MediaOnSystem puts virtual media under the system
	// (/Systems/<id>/VirtualMedia, like the DMTF rackmount1 mockup)
	// instead of under the manager.
	MediaOnSystem bool
	// RequireIfMatch answers PATCH and DELETE without If-Match with 428.
	RequireIfMatch bool
	// MaxSessions bounds the sessions of this system's own BMC view
	// (0: no limit); more logins get 503.
	MaxSessions int
	// UpdateDuration is how long a SimpleUpdate task runs.
	UpdateDuration time.Duration
	// HTTPClient fetches images for this system (nil: Config.HTTPClient).
	HTTPClient *http.Client
	// FetchBytes is how much of an image the ranged GET reads
	// (0: 36864, enough for the ISO 9660 primary volume descriptor).
	FetchBytes int
	// Faults are the faults injected from the start; Server.SetFaults
	// changes them at run time.
	Faults Faults
	// MACs are the MACs of the host NICs NIC.1 and NIC.2, as an inventory
	// lists them; a missing one is generated (locally administered).
	MACs []string
	// Sections makes linked sections of the system fail: the system keeps
	// linking them, and every request under the link answers the status
	// given (404: linked but absent; 501: not implemented), as BMCs and
	// emulators do. SectionFirmware fails the UpdateService's
	// FirmwareInventory (on the shared listener: when every system has it).
	Sections map[Section]int
	// Machine, when set, is the host behind this BMC (a QEMU machine, see
	// Machine): power actions, the boot override and the CD1 virtual media
	// drive it, and PowerState reads back from it. PowerOnDelay,
	// PowerOffDelay, ReportTransitional and PoweredOn do not apply: the
	// machine has its own timing and state. NIC.1 reports the machine's
	// MAC (when it has a MAC method) unless MACs names one.
	Machine Machine
	// RedirectToUUID puts the system at /Systems/<UUID>, the way emulators
	// in front of virtual machines name them; a request that names it by
	// its ID is answered 307 with the UUID URL (method and body to be sent
	// again). Collections and links name the UUID URL.
	RedirectToUUID bool
}

// Section is a part of a system that SystemConfig.Sections can break.
type Section string

// Sections. The names are the Redfish path segments under the system.
const (
	SectionProcessors Section = "Processors"
	SectionMemory     Section = "Memory"
	SectionStorage    Section = "Storage"
	SectionNICs       Section = "EthernetInterfaces"
	SectionBIOS       Section = "Bios"
	SectionFirmware   Section = "FirmwareInventory"
)

// Systems returns n copies of tmpl named sys-0001, sys-0002, ...
func Systems(n int, tmpl SystemConfig) []SystemConfig {
	out := make([]SystemConfig, n)
	for i := range out {
		out[i] = tmpl
		out[i].ID = fmt.Sprintf("sys-%04d", i+1)
	}
	return out
}

// MediaStyle is how a BMC lets clients insert and eject virtual media.
type MediaStyle int

// Media styles. Real BMCs differ: most declare the InsertMedia/EjectMedia
// actions, the DMTF mockups (and some older firmware) only take a PATCH of
// Image and Inserted.
const (
	MediaActions MediaStyle = iota // actions only; PATCH of Image gets 405
	MediaPatch                     // PATCH only; no actions declared (like the DMTF mockups)
	MediaBoth                      // both
)

func (m MediaStyle) actions() bool { return m == MediaActions || m == MediaBoth }
func (m MediaStyle) patch() bool   { return m == MediaPatch || m == MediaBoth }

// String names the style as the CLI spells it.
func (m MediaStyle) String() string {
	switch m {
	case MediaActions:
		return "actions"
	case MediaPatch:
		return "patch"
	case MediaBoth:
		return "both"
	}
	return fmt.Sprintf("MediaStyle(%d)", int(m))
}

// ParseMediaStyle reads "actions", "patch" or "both".
func ParseMediaStyle(s string) (MediaStyle, error) {
	for _, m := range []MediaStyle{MediaActions, MediaPatch, MediaBoth} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("media style %q: want actions, patch or both", s)
}

// Faults are failures injected into one system's BMC. Rates are fractions
// of requests, from 0 (never) to 1 (always).
type Faults struct {
	// ErrorRate answers requests with 500 and a Redfish error body.
	ErrorRate float64
	// HangRate never answers, until the client gives up (or the server closes).
	HangRate float64
	// ResetRate closes the connection with a TCP reset instead of answering.
	ResetRate float64
	// PowerStuck accepts power changes (204) that never take effect.
	PowerStuck bool
	// BadCredentials answers every authenticated request with 401, as if
	// the password had been changed on the BMC.
	BadCredentials bool
}

// Profile is a latency profile: how long a BMC takes to answer.
type Profile string

// Latency profiles.
const (
	ProfileZero   Profile = "zero"   // answer at once
	ProfileIDRAC9 Profile = "idrac9" // about 150 ms median, long tail (measured feel of an iDRAC 9)
	ProfileSlow   Profile = "slow"   // about 600 ms median
)

// ParseProfile reads a profile name; "" is ProfileZero.
func ParseProfile(s string) (Profile, error) {
	switch p := Profile(s); p {
	case "", ProfileZero:
		return ProfileZero, nil
	case ProfileIDRAC9, ProfileSlow:
		return p, nil
	}
	return "", fmt.Errorf("latency profile %q: want zero, idrac9 or slow", s)
}

// PowerDelays returns power-on and power-off durations typical of the
// profile, for callers (such as `metalsync sim`) that want realistic
// defaults; the simulator itself uses SystemConfig's fields as given.
func (p Profile) PowerDelays() (on, off time.Duration) {
	switch p {
	case ProfileIDRAC9:
		return 5 * time.Second, 3 * time.Second
	case ProfileSlow:
		return 15 * time.Second, 8 * time.Second
	}
	return 0, 0
}

// latency draws one request's delay: log-normal around the median, with
// a rare tail, capped so a benchmark never waits on a freak draw.
func (p Profile) latency() time.Duration {
	var median, sigma float64
	switch p {
	case ProfileIDRAC9:
		median, sigma = 0.150, 0.35
	case ProfileSlow:
		median, sigma = 0.600, 0.30
	default:
		return 0
	}
	d := median * math.Exp(sigma*rand.NormFloat64())
	if rand.Float64() < 0.01 { // the odd request that takes several times longer
		d *= 3 + 3*rand.Float64()
	}
	return time.Duration(min(d, 10*median) * float64(time.Second))
}

// Clock is the simulator's source of time. Power transitions, tasks and
// session expiry are computed from it when observed, so a fake clock
// moves them without sleeping. Request latency always uses real time.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }
