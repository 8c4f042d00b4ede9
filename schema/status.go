package schema

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// NodeStatus is what the daemon observed of a node; only metalsync writes it.
// Field order is the order in the file, so that `git diff` stays readable.
type NodeStatus struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   Meta           `json:"metadata"`
	Status     NodeStatusBody `json:"status"`
	Source     Source         `json:"-"`
}

// NodeStatusBody is the observed state of a node.
type NodeStatusBody struct {
	// Commit is the inventory commit this status was reconciled against.
	Commit         string `json:"commit,omitempty"`
	Updated        string `json:"updated,omitempty"`
	Power          string `json:"power,omitempty"`
	ProvisionState string `json:"provisionState,omitempty"`
	// Target is the provision state being worked towards, when busy.
	Target    string     `json:"target,omitempty"`
	Operation *Operation `json:"operation,omitempty"`
	LastError string     `json:"lastError,omitempty"`
	// PlanError is why the planner refuses the node (nothing runs until it
	// is fixed); cleared when a plan succeeds again.
	PlanError  string     `json:"planError,omitempty"`
	Fault      *Fault     `json:"fault,omitempty"`
	Retired    string     `json:"retired,omitempty"`
	Quarantine string     `json:"quarantine,omitempty"`
	Inspect    *Inspected `json:"inspect,omitempty"`
	Deployed   *Deployed  `json:"deployed,omitempty"`
	Media      *Media     `json:"media,omitempty"`
}

// Operation is the multi-step operation in progress, recorded as it goes so
// that a restarted daemon resumes without repeating a destructive step.
type Operation struct {
	Kind    string   `json:"kind"`
	Started string   `json:"started,omitempty"`
	Step    int      `json:"step,omitempty"`
	Steps   []string `json:"steps,omitempty"`
	// Intent is the destructive step about to run (or running): recorded
	// durably before the step starts, cleared when its result is recorded.
	// Found after a restart, it means the step may have run.
	Intent *Intent `json:"intent,omitempty"`
}

// Intent is the write-ahead record of a destructive step.
type Intent struct {
	// Step is the step's name; ID its command id, the same on every
	// attempt, so that an agent that already ran it does not run it again.
	Step    string `json:"step"`
	ID      string `json:"id"`
	Started string `json:"started,omitempty"`
}

// Fault is an automatic quarantine after repeated failures.
type Fault struct {
	Reason   string `json:"reason"`
	Since    string `json:"since,omitempty"`
	Failures int    `json:"failures"`
}

// Inspected is the result of the last inspection.
type Inspected struct {
	Token     string `json:"token,omitempty"`
	At        string `json:"at,omitempty"`
	Simulated bool   `json:"simulated,omitempty"`
	// Warnings name each part of the inventory the BMC could not serve
	// (a section answering 404 or 501), and why, in the driver's stable
	// order. The inventory is recorded without those parts; when the NICs
	// could not be read it says so (nicsUnknown: true), and the MAC guard
	// is off for the node.
	Warnings  []string       `json:"warnings,omitempty"`
	Inventory map[string]any `json:"inventory,omitempty"`
}

// Deployed records the image on the node and the steps that ran.
type Deployed struct {
	Image     string   `json:"image,omitempty"`
	Checksum  string   `json:"checksum,omitempty"`
	At        string   `json:"at,omitempty"`
	Steps     []string `json:"steps,omitempty"`
	Simulated bool     `json:"simulated,omitempty"`
}

// Media is the boot media last given to the BMC.
type Media struct {
	SHA256 string `json:"sha256,omitempty"`
	Kind   string `json:"kind,omitempty"`
	// Epoch names this publication of the agent media; the agent's token
	// is derived from it (it is not secret), so a restarted daemon still
	// accepts the agent while the media is in.
	Epoch string `json:"epoch,omitempty"`
}

// MarshalStatus renders a status file: YAML with sorted keys, so that the
// same status always gives the same bytes.
func MarshalStatus(s *NodeStatus) ([]byte, error) {
	c := *s
	c.APIVersion = APIVersion
	c.Kind = KindNodeStatus
	b, err := yaml.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("status %s: %w", s.Metadata.Name, err)
	}
	return b, nil
}
