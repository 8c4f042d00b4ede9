// Package plan holds the data types of a metalsync plan: what the planner
// decided and the executor runs. It is a leaf package: types, validation
// and the versioned JSON form, no behaviour that touches the world.
package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FormatVersion is the version of the JSON form. A reader refuses any
// other version rather than guessing.
const FormatVersion = "1"

// Plan is the whole plan for one inventory commit against one observed
// state. It is self-describing so that a saved plan can be refused when
// its inputs have moved.
type Plan struct {
	FormatVersion string `json:"format_version"`
	// InventoryCommit is the Git commit of the inventory ("" outside Git).
	InventoryCommit string `json:"inventory_commit"`
	// InventoryDirty says the working tree differed from InventoryCommit
	// (uncommitted or untracked files): the plan is of files no commit holds.
	InventoryDirty bool `json:"inventory_dirty,omitempty"`
	// InventoryDigest is a sha256 over the canonical desired state.
	InventoryDigest string `json:"inventory_digest"`
	// ObservedDigest is a sha256 over the canonical observed state.
	ObservedDigest string `json:"observed_digest"`
	// Refreshed says the observation includes live BMC reads, so that a
	// saved plan is checked against a live read too.
	Refreshed bool      `json:"refreshed,omitempty"`
	Time      time.Time `json:"time"`
	// Nodes is sorted by node name and holds every node of the inventory
	// and every forgotten one, including nodes with nothing to do.
	Nodes []NodePlan `json:"nodes"`
}

// NodePlan is what happens to one node.
type NodePlan struct {
	Node   string `json:"node"`
	Driver string `json:"driver,omitempty"`
	// From and To are the provision states before and after the plan.
	From State `json:"from"`
	To   State `json:"to"`
	// PowerFrom and PowerTo are the observed and expected power states.
	PowerFrom PowerState `json:"power_from,omitempty"`
	PowerTo   PowerState `json:"power_to,omitempty"`
	// Operations run in order; each starts where the previous ended.
	Operations []Operation `json:"operations,omitempty"`
	// Notes are things shown to a person that cause no action.
	Notes []Note `json:"notes,omitempty"`
	// Error, when set, means nothing runs for this node: the plan found
	// a step the node cannot do.
	Error string `json:"error,omitempty"`
	// Probe asks the executor to read power (only) to see whether an
	// automatic fault has cleared.
	Probe bool `json:"probe,omitempty"`
	// ReplanFrom, when not 0, is the index of the first operation after an
	// inspection: the executor stops before it, and the node is planned
	// again once the inspection is recorded (those operations depend on
	// the hardware found: the MAC guard, root disk hints).
	ReplanFrom int `json:"replan_from,omitempty"`
}

// Note is shown in the plan and causes no action.
type Note struct {
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
}

// Operation moves a node from one stable provision state to another.
type Operation struct {
	Kind   Kind   `json:"kind"`
	Reason Reason `json:"reason"`
	From   State  `json:"from"`
	To     State  `json:"to"`
	// Resume is the index of the first step to run: steps before it were
	// completed by an earlier run and recorded in status.
	Resume int    `json:"resume,omitempty"`
	Steps  []Step `json:"steps,omitempty"`
}

// StepNames lists the names of the operation's steps, as recorded in
// status.operation.steps.
func (o Operation) StepNames() []string {
	names := make([]string, len(o.Steps))
	for i, s := range o.Steps {
		names[i] = s.Name()
	}
	return names
}

// Step is one operation on one node: exactly one payload, a timeout and
// the observed state it expects to find.
type Step struct {
	Action Action `json:"action"`
	// Source says where the step came from: "core" or "template NAME".
	Source string `json:"source,omitempty"`
	// State is the provision state of the node while the step runs.
	State State `json:"state"`
	// Destructive steps destroy data; the executor never repeats one that
	// status records as completed.
	Destructive bool     `json:"destructive,omitempty"`
	Timeout     Duration `json:"timeout"`
	Expect      Expect   `json:"expect,omitzero"`

	Verify   *Verify   `json:"verify,omitempty"`
	Power    *Power    `json:"power,omitempty"`
	Boot     *Boot     `json:"boot,omitempty"`
	Media    *Media    `json:"media,omitempty"`
	Inspect  *Inspect  `json:"inspect,omitempty"`
	Agent    *Agent    `json:"agent,omitempty"`
	BIOS     *BIOS     `json:"bios,omitempty"`
	RAID     *RAID     `json:"raid,omitempty"`
	Firmware *Firmware `json:"firmware,omitempty"`
}

// Expect is the observed state a step expects before it runs.
type Expect struct {
	// Power is PowerOn or PowerOff; "" when any power state will do.
	Power PowerState `json:"power,omitempty"`
}

// Verify reads power with the node's credentials.
type Verify struct{}

// Power changes power.
type Power struct {
	Action PowerAction `json:"action"`
}

// Boot sets the boot device.
type Boot struct {
	Device     string `json:"device"` // cd, disk, pxe
	Persistent bool   `json:"persistent,omitempty"`
}

// Media inserts or ejects the deploy agent's boot media.
type Media struct {
	Kind string `json:"kind"` // cd
}

// Inspect reads the hardware inventory out of band.
type Inspect struct {
	Token string `json:"token,omitempty"`
}

// Agent runs an in-band step in the deploy agent.
type Agent struct {
	Interface string         `json:"interface"`
	Step      string         `json:"step"`
	Args      map[string]any `json:"args,omitempty"`
}

// BIOS applies settings; they take effect at the next reboot.
type BIOS struct {
	Settings map[string]any `json:"settings"`
}

// RAID creates or deletes hardware RAID volumes.
type RAID struct {
	// Delete removes every existing volume first.
	Delete  bool     `json:"delete,omitempty"`
	Volumes []Volume `json:"volumes,omitempty"`
}

// Volume is one hardware RAID volume to create.
type Volume struct {
	Name      string   `json:"name,omitempty"`
	RAIDLevel string   `json:"raid_level"`
	SizeGiB   int64    `json:"size_gib,omitempty"`
	Drives    []string `json:"drives,omitempty"`
}

// Firmware updates firmware from an image.
type Firmware struct {
	URL     string   `json:"url"`
	Targets []string `json:"targets,omitempty"`
}

// payloads lists the step's set payloads by the action each belongs to.
func (s Step) payloads() []Action {
	var set []Action
	add := func(ok bool, a Action) {
		if ok {
			set = append(set, a)
		}
	}
	add(s.Verify != nil, ActionVerify)
	add(s.Power != nil, ActionPower)
	add(s.Boot != nil, ActionSetBoot)
	add(s.Media != nil && s.Action != ActionEjectMedia, ActionInsertMedia)
	add(s.Media != nil && s.Action == ActionEjectMedia, ActionEjectMedia)
	add(s.Inspect != nil, ActionInspect)
	add(s.Agent != nil, ActionAgentStep)
	add(s.BIOS != nil, ActionBIOS)
	add(s.RAID != nil, ActionRAID)
	add(s.Firmware != nil, ActionFirmware)
	return set
}

// Validate checks that the step holds exactly one payload, the one its
// action needs, and a positive timeout.
func (s Step) Validate() error {
	if _, err := s.Action.MarshalText(); err != nil {
		return fmt.Errorf("step: %w", err)
	}
	set := s.payloads()
	switch {
	case len(set) == 0:
		return fmt.Errorf("step %s: no operation", s.Action)
	case len(set) > 1:
		return fmt.Errorf("step %s: %d operations, want exactly one", s.Action, len(set))
	case set[0] != s.Action:
		return fmt.Errorf("step %s: holds a %s operation", s.Action, set[0])
	}
	if s.Power != nil && !s.Power.Action.Valid() {
		return fmt.Errorf("step power: unknown power action %q", s.Power.Action)
	}
	if s.Timeout <= 0 {
		return fmt.Errorf("step %s: no timeout", s.Name())
	}
	return nil
}

// Name is a short stable name of the step, as recorded in status.
func (s Step) Name() string {
	switch s.Action {
	case ActionPower:
		if s.Power != nil {
			return "power " + string(s.Power.Action)
		}
	case ActionSetBoot:
		if s.Boot != nil {
			return "set-boot " + s.Boot.Device
		}
	case ActionAgentStep:
		if s.Agent != nil {
			return "agent " + s.Agent.Interface + "." + s.Agent.Step
		}
	case ActionVerify, ActionInsertMedia, ActionEjectMedia, ActionInspect, ActionBIOS, ActionRAID, ActionFirmware:
	}
	return s.Action.String()
}

// Duration is a time.Duration written as "30s" in JSON.
type Duration time.Duration

// MarshalText writes the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Marshal writes the plan's versioned JSON form.
func Marshal(p Plan) ([]byte, error) {
	p.FormatVersion = FormatVersion
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return append(b, '\n'), nil
}

// ErrFormatVersion marks a saved plan written by another format version.
var ErrFormatVersion = errors.New("unsupported plan format version")

// Unmarshal reads a plan written by Marshal and validates every step.
func Unmarshal(b []byte) (Plan, error) {
	var head struct {
		FormatVersion string `json:"format_version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	if head.FormatVersion != FormatVersion {
		return Plan{}, fmt.Errorf("plan: format_version %q: %w (this metalsync reads %q)", head.FormatVersion, ErrFormatVersion, FormatVersion)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	for _, n := range p.Nodes {
		for _, op := range n.Operations {
			if op.Resume < 0 || op.Resume > len(op.Steps) {
				return Plan{}, fmt.Errorf("plan: node %s: %s: resume %d out of range", n.Node, op.Kind, op.Resume)
			}
			for _, s := range op.Steps {
				if err := s.Validate(); err != nil {
					return Plan{}, fmt.Errorf("plan: node %s: %s: %w", n.Node, op.Kind, err)
				}
			}
		}
	}
	return p, nil
}

// Node returns the plan of the node called name, or nil.
func (p *Plan) Node(name string) *NodePlan {
	for i := range p.Nodes {
		if p.Nodes[i].Node == name {
			return &p.Nodes[i]
		}
	}
	return nil
}

// HasChanges reports whether applying the plan would do anything.
func (p Plan) HasChanges() bool {
	for _, n := range p.Nodes {
		if n.Error == "" && len(n.Operations) > 0 {
			return true
		}
	}
	return false
}

// Summary counts what a plan does, for the one-line summary of every view.
type Summary struct {
	// Ops counts nodes per operation kind (a node with two deploys counts
	// once); Retire counts retired nodes with operations.
	Ops          map[Kind]int `json:"ops"`
	Retire       int          `json:"retire"`
	Quarantined  int          `json:"quarantined"`
	Faulted      int          `json:"faulted"`
	Protected    int          `json:"protected"`
	DriftShown   int          `json:"drift_reported"`
	Forgotten    int          `json:"forgotten"`
	Errors       int          `json:"errors"`
	Unchanged    int          `json:"unchanged"`
	NodesChanged int          `json:"nodes_changed"`
}

// Summarize counts the plan's operations and notes.
func (p Plan) Summarize() Summary {
	s := Summary{Ops: map[Kind]int{}}
	for _, n := range p.Nodes {
		if n.Error != "" {
			s.Errors++
			continue
		}
		seen := map[Kind]bool{}
		retire := false
		for _, op := range n.Operations {
			if !seen[op.Kind] {
				seen[op.Kind] = true
				s.Ops[op.Kind]++
			}
			if op.Reason == ReasonRetired {
				retire = true
			}
			if op.Kind == KindForget {
				s.Forgotten++
			}
		}
		if retire {
			s.Retire++
		}
		for _, note := range n.Notes {
			switch note.Reason {
			case ReasonQuarantined:
				s.Quarantined++
			case ReasonFault:
				s.Faulted++
			case ReasonProtected:
				s.Protected++
			case ReasonPowerDrift:
				s.DriftShown++
			case ReasonNewNode, ReasonNotInspected, ReasonInspectRequested, ReasonProvisionChanged,
				ReasonImageChanged, ReasonAdopt, ReasonRetired, ReasonResume, ReasonRetryFailed,
				ReasonRemoved, ReasonDisablePowerOff, ReasonCapability:
			}
		}
		if len(n.Operations) > 0 {
			s.NodesChanged++
		} else {
			s.Unchanged++
		}
	}
	return s
}

// summaryOrder is the order of operation kinds in the summary line.
var summaryOrder = []Kind{KindEnroll, KindInspect, KindClean, KindAdopt, KindDeploy, KindRedeploy, KindUndeploy, KindManage, KindForget}

// Line renders the one-line summary, e.g.
// "Plan: 2 to enroll, 3 to deploy, 1 to retire, 1 power change; 1 quarantined (no action)".
func (s Summary) Line() string {
	var acts []string
	for _, k := range summaryOrder {
		if n := s.Ops[k]; n > 0 {
			acts = append(acts, fmt.Sprintf("%d to %s", n, k))
		}
	}
	if s.Retire > 0 {
		acts = append(acts, fmt.Sprintf("%d to retire", s.Retire))
	}
	if n := s.Ops[KindPower]; n > 0 {
		acts = append(acts, plural(n, "power change", "power changes"))
	}
	var shown []string
	if s.Quarantined > 0 {
		shown = append(shown, fmt.Sprintf("%d quarantined (no action)", s.Quarantined))
	}
	if s.Faulted > 0 {
		shown = append(shown, fmt.Sprintf("%d faulted (no action)", s.Faulted))
	}
	if s.Protected > 0 {
		shown = append(shown, fmt.Sprintf("%d protected", s.Protected))
	}
	if s.DriftShown > 0 {
		shown = append(shown, fmt.Sprintf("%d power drift reported", s.DriftShown))
	}
	if s.Errors > 0 {
		shown = append(shown, plural(s.Errors, "node with errors", "nodes with errors"))
	}
	line := "Plan: "
	if len(acts) == 0 {
		line += "no changes"
	} else {
		line += strings.Join(acts, ", ")
	}
	if len(shown) > 0 {
		line += "; " + strings.Join(shown, ", ")
	}
	return line + "."
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
