// Package agentapi is the wire contract between the metalsync daemon and
// the deploy agent running on a node: paths, message types and the token
// that authenticates the agent. It imports only the standard library, so
// the agent binary stays small.
//
// The agent pulls: it polls the daemon for its next command, runs it and
// reports the result. Every poll carries every result the agent knows, so
// a restarted daemon learns what already ran before it hands out work,
// and a command id is never run twice by the same agent.
package agentapi

import (
	"encoding/json"
	"time"
)

// Paths served by the daemon's agent listener. Every request carries
// "Authorization: Bearer <token>" and the node name in HeaderNode.
const (
	// PathNext: POST Poll; 200 with a Command, or 204 when nothing is
	// queued within the poll's wait.
	PathNext = "/agent/v1/next"
	// PathResult: POST Result; 204.
	PathResult = "/agent/v1/result"
	// PathLog: POST text/plain lines of the agent's log; 204.
	PathLog = "/agent/v1/log"
	// PathImage: GET PathImage + "<sha256 hex>": the raw image a
	// write_image command names, with Range support.
	PathImage = "/agent/v1/image/"
	// PathConfigDrive: GET the node's config drive (ISO 9660, label
	// config-2) for the deployed OS.
	PathConfigDrive = "/agent/v1/configdrive"

	HeaderNode = "X-Metalsync-Node"
)

// Meta data keys (openstack/latest/meta_data.json "meta") the agent reads
// from its boot media, besides "name".
const (
	MetaURL   = "metalsync_agent_url"   // https://host:port of the agent listener
	MetaToken = "metalsync_agent_token" // bearer token; never logged
	MetaCA    = "metalsync_agent_ca"    // PEM CA the listener's certificate chains to
)

// Poll asks for the next command.
type Poll struct {
	// BootID is the agent's random id for this boot: a new one tells the
	// daemon the agent restarted and forgot what it ran.
	BootID  string `json:"bootID"`
	Version string `json:"version"`
	// Results holds every command this agent has run or is running.
	Results []Result `json:"results,omitempty"`
	// Wait is how long the daemon may hold the poll open.
	Wait Duration `json:"wait,omitempty"`
}

// Command is one in-band step to run.
type Command struct {
	// ID is stable across daemon restarts; an agent that knows the id
	// reports its result instead of running it again.
	ID        string          `json:"id"`
	Interface string          `json:"interface"` // deploy, raid, inspect
	Step      string          `json:"step"`      // erase_devices_metadata, write_image, ...
	Args      json.RawMessage `json:"args,omitempty"`
}

// Command states.
const (
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
)

// Result is what the agent reports of a command.
type Result struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Error says what failed, for StateFailed.
	Error string `json:"error,omitempty"`
	// Inventory is the hardware found, for inspect.inspect.
	Inventory *Inventory `json:"inventory,omitempty"`
	// RootDevice is the device the image went to (write_image) or the
	// RAID root volume (raid.apply_configuration).
	RootDevice string `json:"rootDevice,omitempty"`
}

// WriteImageArgs are the daemon's arguments to deploy.write_image. The
// daemon has fetched and verified the image (and converted qcow2 to raw)
// and serves it at ImagePath; the agent verifies SHA256 in-line again.
type WriteImageArgs struct {
	ImagePath string `json:"imagePath"` // PathImage + sha256 hex
	SHA256    string `json:"sha256"`    // hex of the bytes served
	Size      int64  `json:"size"`
	// Hints select the root disk when no software RAID root volume exists.
	Hints *RootDeviceHints `json:"rootDeviceHints,omitempty"`
	// ConfigDrive: write PathConfigDrive to a partition after the image.
	ConfigDrive bool `json:"configDrive,omitempty"`
}

// RootDeviceHints are Ironic's root device hints (size in GiB).
type RootDeviceHints struct {
	Name       string `json:"name,omitempty"`
	Model      string `json:"model,omitempty"`
	Vendor     string `json:"vendor,omitempty"`
	Serial     string `json:"serial,omitempty"`
	WWN        string `json:"wwn,omitempty"`
	HCTL       string `json:"hctl,omitempty"`
	Size       int64  `json:"size,omitempty"`
	Rotational *bool  `json:"rotational,omitempty"`
}

// RAIDArgs are the arguments of raid.apply_configuration and
// raid.create_configuration for software RAID, normalised by the daemon.
type RAIDArgs struct {
	Volumes []RAIDVolume `json:"volumes"`
	// Delete stops and wipes existing md arrays first.
	Delete bool `json:"delete,omitempty"`
}

// RAIDVolume is one md array.
type RAIDVolume struct {
	Name      string `json:"name,omitempty"`
	RAIDLevel string `json:"raidLevel"` // 0 1 5 6 10
	// SizeGiB 0 means all of the member disks.
	SizeGiB int64 `json:"sizeGiB,omitempty"`
	// Disks names the members (device names or serials); empty means
	// every disk the agent found fit for it.
	Disks []string `json:"disks,omitempty"`
	Root  bool     `json:"root,omitempty"`
}

// Inventory is the hardware the agent found in-band.
type Inventory struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpuModel,omitempty"`
	MemoryMiB  int64  `json:"memoryMiB"`
	BootMode   string `json:"bootMode"` // uefi, bios
	SecureBoot bool   `json:"secureBoot"`
	Disks      []Disk `json:"disks"`
	NICs       []NIC  `json:"nics"`
}

// Disk is one block device.
type Disk struct {
	Name       string `json:"name"` // /dev/vda
	SizeBytes  int64  `json:"sizeBytes"`
	Model      string `json:"model,omitempty"`
	Vendor     string `json:"vendor,omitempty"`
	Serial     string `json:"serial,omitempty"`
	WWN        string `json:"wwn,omitempty"`
	HCTL       string `json:"hctl,omitempty"`
	Rotational bool   `json:"rotational"`
}

// NIC is one network interface.
type NIC struct {
	Name string `json:"name"`
	MAC  string `json:"mac"` // lower case
	Link bool   `json:"link"`
	// SpeedMbps is 0 when unknown.
	SpeedMbps int `json:"speedMbps,omitempty"`
}

// Duration is a time.Duration that travels as a string ("25s").
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads the text form.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
