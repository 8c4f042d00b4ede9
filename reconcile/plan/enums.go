package plan

import "fmt"

// Action is what one step does. The set is closed: every switch over it
// covers every value, and parsing rejects names it does not know.
type Action int

// Actions. The zero value is invalid so that a forgotten field is caught.
const (
	ActionVerify      Action = iota + 1 // read power with the node's credentials
	ActionPower                         // power on, off or reboot
	ActionSetBoot                       // set the boot device
	ActionInsertMedia                   // attach boot media (the agent image)
	ActionEjectMedia                    // detach boot media
	ActionInspect                       // read the hardware inventory out of band
	ActionAgentStep                     // run an in-band step in the deploy agent
	ActionBIOS                          // apply BIOS settings (take effect at reboot)
	ActionRAID                          // create or delete hardware RAID volumes
	ActionFirmware                      // update firmware from an image URL
)

var actionNames = [...]string{
	ActionVerify:      "verify",
	ActionPower:       "power",
	ActionSetBoot:     "set-boot",
	ActionInsertMedia: "insert-media",
	ActionEjectMedia:  "eject-media",
	ActionInspect:     "inspect",
	ActionAgentStep:   "agent-step",
	ActionBIOS:        "bios",
	ActionRAID:        "raid",
	ActionFirmware:    "firmware",
}

// Kind is the kind of an operation: a run of steps that moves a node from
// one stable provision state to another.
type Kind int

// Operation kinds.
const (
	KindEnroll   Kind = iota + 1 // enroll -> verifying -> manageable
	KindInspect                  // manageable -> inspecting -> manageable
	KindClean                    // manageable -> cleaning -> available (or manageable)
	KindDeploy                   // available -> deploying -> active
	KindRedeploy                 // active -> deploying -> active (new image)
	KindUndeploy                 // active -> deleting -> cleaning -> available
	KindAdopt                    // manageable -> adopting -> active, no redeploy
	KindManage                   // available / failed state -> manageable
	KindPower                    // power change outside an operation
	KindForget                   // drop the status of a node removed from the inventory
)

var kindNames = [...]string{
	KindEnroll:   "enroll",
	KindInspect:  "inspect",
	KindClean:    "clean",
	KindDeploy:   "deploy",
	KindRedeploy: "redeploy",
	KindUndeploy: "undeploy",
	KindAdopt:    "adopt",
	KindManage:   "manage",
	KindPower:    "power",
	KindForget:   "forget",
}

// Reason says why an operation or note is in the plan.
type Reason int

// Reasons.
const (
	ReasonNewNode          Reason = iota + 1 // not enrolled yet
	ReasonNotInspected                       // never inspected
	ReasonInspectRequested                   // spec.inspect differs from the last token
	ReasonProvisionChanged                   // desired provision state differs
	ReasonImageChanged                       // desired image differs from the deployed one
	ReasonAdopt                              // adopt: true
	ReasonRetired                            // spec.retired
	ReasonPowerDrift                         // observed power differs from spec.power
	ReasonResume                             // an operation recorded in status is unfinished
	ReasonRetryFailed                        // the node is in a failed state
	ReasonQuarantined                        // spec.quarantine
	ReasonFault                              // automatic quarantine after repeated failures
	ReasonProtected                          // spec.protected
	ReasonRemoved                            // in status, no longer in the inventory
	ReasonDisablePowerOff                    // spec.disablePowerOff
	ReasonCapability                         // the driver or the agent cannot do a step
)

var reasonNames = [...]string{
	ReasonNewNode:          "new-node",
	ReasonNotInspected:     "not-inspected",
	ReasonInspectRequested: "inspect-requested",
	ReasonProvisionChanged: "provision-changed",
	ReasonImageChanged:     "image-changed",
	ReasonAdopt:            "adopt",
	ReasonRetired:          "retired",
	ReasonPowerDrift:       "power-drift",
	ReasonResume:           "resume",
	ReasonRetryFailed:      "retry-failed",
	ReasonQuarantined:      "quarantined",
	ReasonFault:            "fault",
	ReasonProtected:        "protected",
	ReasonRemoved:          "removed",
	ReasonDisablePowerOff:  "disable-power-off",
	ReasonCapability:       "capability",
}

func (a Action) String() string { return enumString(actionNames[:], int(a), "Action") }
func (k Kind) String() string   { return enumString(kindNames[:], int(k), "Kind") }
func (r Reason) String() string { return enumString(reasonNames[:], int(r), "Reason") }

// MarshalText writes the name; an invalid value is an error, not "".
func (a Action) MarshalText() ([]byte, error) { return enumMarshal(actionNames[:], int(a), "action") }
func (k Kind) MarshalText() ([]byte, error)   { return enumMarshal(kindNames[:], int(k), "kind") }
func (r Reason) MarshalText() ([]byte, error) { return enumMarshal(reasonNames[:], int(r), "reason") }

// UnmarshalText parses a name written by MarshalText.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := enumParse(actionNames[:], string(b), "action")
	*a = Action(v)
	return err
}

// UnmarshalText parses a name written by MarshalText.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := enumParse(kindNames[:], string(b), "kind")
	*k = Kind(v)
	return err
}

// UnmarshalText parses a name written by MarshalText.
func (r *Reason) UnmarshalText(b []byte) error {
	v, err := enumParse(reasonNames[:], string(b), "reason")
	*r = Reason(v)
	return err
}

func enumString(names []string, v int, typ string) string {
	if v > 0 && v < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, v)
}

func enumMarshal(names []string, v int, typ string) ([]byte, error) {
	if v > 0 && v < len(names) {
		return []byte(names[v]), nil
	}
	return nil, fmt.Errorf("invalid %s %d", typ, v)
}

func enumParse(names []string, s, typ string) (int, error) {
	for i, n := range names {
		if i > 0 && n == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q", typ, s)
}
