package schema

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
)

// Step is one deploy step of a template: an Ironic-style (interface, step)
// pair, its priority and its typed arguments. #Steps in cue/schema.cue
// lists the known pairs and their arguments; Args holds the value of the
// pair's type (*BIOSArgs, *RAIDArgs, *BootDeviceArgs, *FirmwareArgs), or
// nil for steps that take none.
type Step struct {
	Interface string   `json:"interface"`
	Step      string   `json:"step"`
	Args      StepArgs `json:"args,omitempty"`
	Priority  int      `json:"priority"`
}

// ID is "interface.step".
func (s Step) ID() string { return s.Interface + "." + s.Step }

// StepArgs is the arguments of one kind of deploy step.
type StepArgs interface{ stepArgs() }

// stepKind is one known deploy step and the arguments it decodes into.
type stepKind struct {
	iface, step string
	args        func() StepArgs // nil: the step takes no arguments
}

// stepCatalogue mirrors #Steps in cue/schema.cue; TestStepCatalogue keeps
// the two in step.
func stepCatalogue() []stepKind {
	bios := func() StepArgs { return &BIOSArgs{} }
	raid := func() StepArgs { return &RAIDArgs{} }
	return []stepKind{
		{"bios", "apply_configuration", bios},
		{"raid", "create_configuration", raid},
		{"raid", "apply_configuration", raid},
		{"raid", "delete_configuration", nil},
		{"management", "set_boot_device", func() StepArgs { return &BootDeviceArgs{} }},
		{"firmware", "update", func() StepArgs { return &FirmwareArgs{} }},
		{"deploy", "deploy", nil},
		{"deploy", "write_image", nil},
		{"deploy", "prepare_instance_boot", nil},
		{"deploy", "tear_down_agent", nil},
		{"deploy", "boot_instance", nil},
		{"deploy", "erase_devices", nil},
		{"deploy", "erase_devices_metadata", nil},
		{"power", "reboot", nil},
		{"power", "power_on", nil},
		{"power", "power_off", nil},
	}
}

// KnownSteps returns the steps metalsync knows, by interface, sorted.
func KnownSteps() map[string][]string {
	out := map[string][]string{}
	for _, k := range stepCatalogue() {
		out[k.iface] = append(out[k.iface], k.step)
	}
	for _, s := range out {
		slices.Sort(s)
	}
	return out
}

// UnmarshalJSON decodes args into the type of the step's arguments.
func (s *Step) UnmarshalJSON(b []byte) error {
	var raw struct {
		Interface string          `json:"interface"`
		Step      string          `json:"step"`
		Args      json.RawMessage `json:"args"`
		Priority  int             `json:"priority"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*s = Step{Interface: raw.Interface, Step: raw.Step, Priority: raw.Priority}
	i := slices.IndexFunc(stepCatalogue(), func(k stepKind) bool { return k.iface == raw.Interface && k.step == raw.Step })
	if i < 0 {
		return fmt.Errorf("unknown deploy step %s", s.ID())
	}
	hasArgs := len(raw.Args) > 0 && !bytes.Equal(raw.Args, []byte("null"))
	newArgs := stepCatalogue()[i].args
	switch {
	case newArgs == nil && hasArgs:
		return fmt.Errorf("deploy step %s takes no args", s.ID())
	case newArgs == nil || !hasArgs:
		return nil
	}
	s.Args = newArgs()
	if err := json.Unmarshal(raw.Args, s.Args); err != nil {
		return fmt.Errorf("deploy step %s: args: %w", s.ID(), err)
	}
	return nil
}

// BIOSArgs are the arguments of bios.apply_configuration.
type BIOSArgs struct {
	Settings BIOSSettings `json:"settings"`
}

func (*BIOSArgs) stepArgs() {}

// BIOSSettings map BIOS attribute names to values (strings, numbers or
// booleans). They are written as a map, or as Ironic's list of
// {name, value}.
type BIOSSettings map[string]any

// UnmarshalJSON accepts the map and the list form.
func (s *BIOSSettings) UnmarshalJSON(b []byte) error {
	var list []struct {
		Name  string `json:"name"`
		Value any    `json:"value"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		if err := json.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("bios settings: %w", err)
		}
		*s = make(BIOSSettings, len(list))
		for _, e := range list {
			(*s)[e.Name] = e.Value
		}
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("bios settings: %w", err)
	}
	*s = m
	return nil
}

// RAIDArgs are the arguments of raid.create_configuration and
// raid.apply_configuration. The volumes are written in metalsync's form
// (volumes: name, raid_level, size_gib, drives), Ironic's
// create_configuration form (logical_disks) or Ironic's
// apply_configuration form (raid_config.logical_disks); they decode to
// LogicalDisks either way.
type RAIDArgs struct {
	LogicalDisks []LogicalDisk `json:"logical_disks"`
	// DeleteExisting is nil when not given: Ironic deletes existing
	// volumes first by default.
	DeleteExisting *bool `json:"delete_existing,omitempty"`
	// Software asks for software RAID, built by the deploy agent.
	Software bool `json:"software,omitempty"`
}

func (*RAIDArgs) stepArgs() {}

// UnmarshalJSON accepts the three forms of volumes.
func (a *RAIDArgs) UnmarshalJSON(b []byte) error {
	var raw struct {
		Volumes      []LogicalDisk `json:"volumes"`
		LogicalDisks []LogicalDisk `json:"logical_disks"`
		RAIDConfig   *struct {
			LogicalDisks []LogicalDisk `json:"logical_disks"`
		} `json:"raid_config"`
		DeleteExisting *bool `json:"delete_existing"`
		Software       bool  `json:"software"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("raid: %w", err)
	}
	*a = RAIDArgs{LogicalDisks: raw.LogicalDisks, DeleteExisting: raw.DeleteExisting, Software: raw.Software}
	if raw.Volumes != nil {
		a.LogicalDisks = raw.Volumes
	}
	if raw.RAIDConfig != nil {
		a.LogicalDisks = raw.RAIDConfig.LogicalDisks
	}
	return nil
}

// SoftwareRAID reports whether the step builds software RAID in the deploy
// agent: software: true, or a volume with controller: software.
func (a *RAIDArgs) SoftwareRAID() bool {
	return a.Software || slices.ContainsFunc(a.LogicalDisks, func(d LogicalDisk) bool { return d.Controller == "software" })
}

// LogicalDisk is one RAID volume, in Ironic's terms.
type LogicalDisk struct {
	Name      string     `json:"volume_name,omitempty"`
	RAIDLevel RAIDLevel  `json:"raid_level"`
	Size      VolumeSize `json:"size_gb"`
	// PhysicalDisks name the drives; none lets the controller choose.
	PhysicalDisks []string `json:"physical_disks,omitempty"`
	Controller    string   `json:"controller,omitempty"`
	IsRootVolume  bool     `json:"is_root_volume,omitempty"`
}

// UnmarshalJSON accepts metalsync's names (name, size_gib, drives) and
// Ironic's (volume_name, size_gb, physical_disks).
func (d *LogicalDisk) UnmarshalJSON(b []byte) error {
	var raw struct {
		Name          string      `json:"name"`
		VolumeName    string      `json:"volume_name"`
		RAIDLevel     RAIDLevel   `json:"raid_level"`
		SizeGiB       *VolumeSize `json:"size_gib"`
		SizeGB        *VolumeSize `json:"size_gb"`
		Drives        []string    `json:"drives"`
		PhysicalDisks []string    `json:"physical_disks"`
		Controller    string      `json:"controller"`
		IsRootVolume  bool        `json:"is_root_volume"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*d = LogicalDisk{Name: cmp.Or(raw.Name, raw.VolumeName), RAIDLevel: raw.RAIDLevel,
		PhysicalDisks: raw.Drives, Controller: raw.Controller, IsRootVolume: raw.IsRootVolume}
	if d.PhysicalDisks == nil {
		d.PhysicalDisks = raw.PhysicalDisks
	}
	switch {
	case raw.SizeGiB != nil:
		d.Size = *raw.SizeGiB
	case raw.SizeGB != nil:
		d.Size = *raw.SizeGB
	}
	return nil
}

// RAIDLevel is a RAID level in Ironic's form: "0", "1", "5", "6" or "10".
// It is written as a number, a string or RAID1-style.
type RAIDLevel string

// UnmarshalJSON accepts 1, "1" and "RAID1".
func (l *RAIDLevel) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	s = strings.TrimPrefix(strings.ToUpper(s), "RAID")
	switch s {
	case "0", "1", "5", "6", "10":
		*l = RAIDLevel(s)
		return nil
	}
	return fmt.Errorf("raid_level %s: want 0, 1, 5, 6 or 10", b)
}

// Redfish is the level as Redfish and the drivers name it: RAID1.
func (l RAIDLevel) Redfish() string { return "RAID" + string(l) }

// VolumeSize is a volume's size in GiB; 0 means all of the drives, written
// MAX.
type VolumeSize int64

// MarshalJSON writes 0 as "MAX".
func (v VolumeSize) MarshalJSON() ([]byte, error) {
	if v == 0 {
		return []byte(`"MAX"`), nil
	}
	return strconv.AppendInt(nil, int64(v), 10), nil
}

// UnmarshalJSON reads a number of GiB or "MAX".
func (v *VolumeSize) UnmarshalJSON(b []byte) error {
	if strings.EqualFold(string(b), `"MAX"`) {
		*v = 0
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("size %s: want a positive number of GiB or MAX", b)
	}
	*v = VolumeSize(n)
	return nil
}

// BootDeviceArgs are the arguments of management.set_boot_device.
type BootDeviceArgs struct {
	Device     string `json:"device"` // cd, disk, pxe or bios
	Persistent bool   `json:"persistent,omitempty"`
}

func (*BootDeviceArgs) stepArgs() {}

// FirmwareArgs are the arguments of firmware.update: the image the BMC
// downloads, and the components it applies to (all it contains when
// none are named).
type FirmwareArgs struct {
	URL     string   `json:"url"`
	Targets []string `json:"targets,omitempty"`
}

func (*FirmwareArgs) stepArgs() {}

// isStepName reports whether path is the interface or step of a template's
// step.
func isStepName(path []string) bool {
	return len(path) == 4 && path[0] == "spec" && path[1] == "steps" && (path[3] == "interface" || path[3] == "step")
}

// stepDiag explains an unknown interface or step of a template, with the
// steps metalsync knows, when path is one of those fields.
func stepDiag(data cue.Value, path []string) (Diagnostic, bool) {
	if !isStepName(path) {
		return Diagnostic{}, false
	}
	str := func(field string) string {
		s, _ := data.LookupPath(cue.MakePath(cue.Str("spec"), cue.Str("steps"), cue.Index(atoi(path[2])), cue.Str(field))).String()
		return s
	}
	known := KnownSteps()
	iface, step := str("interface"), str("step")
	var name string
	var candidates []string
	if path[3] == "interface" {
		name, candidates = iface, slices.Sorted(maps.Keys(known))
	} else {
		name, candidates = step, known[iface]
	}
	if name == "" {
		return Diagnostic{}, false
	}
	d := Diagnostic{Message: fmt.Sprintf("unknown step interface %q", name), Hint: "interfaces: " + strings.Join(candidates, ", ")}
	if path[3] == "step" {
		d.Message = fmt.Sprintf("unknown step %s.%s", iface, name)
		d.Hint = iface + " steps: " + strings.Join(candidates, ", ")
	}
	if m := closest(name, candidates); m != "" {
		d.Hint = fmt.Sprintf("did you mean %q? %s", m, d.Hint)
	}
	return d, true
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
