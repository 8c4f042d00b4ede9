// Package fleet joins each node's desired spec with its observed status:
// the rows behind `metalsync status`, the daemon's /api/v1/nodes and the
// fleet page, so all three say the same thing about a node.
package fleet

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

// FormatVersion versions the JSON form of Report.
const FormatVersion = "1"

// Report is the JSON form of `metalsync status -o json` and of the
// daemon's /api/v1/nodes.
type Report struct {
	FormatVersion string `json:"format_version"`
	// Revision is the inventory revision the rows were read from: the
	// daemon's last good revision ("" for a local directory read).
	Revision string `json:"revision,omitempty"`
	// Invalid is set while the newest revision is refused.
	Invalid *Invalid `json:"invalid,omitempty"`
	Nodes   []Row    `json:"nodes"`
}

// Invalid is a refused revision and why.
type Invalid struct {
	Revision string `json:"revision"`
	// Report is the diagnostics as `metalsync validate` prints them.
	Report string `json:"report"`
}

// Row is one node: its spec joined with its observed status.
type Row struct {
	Node           string            `json:"node"`
	Owner          string            `json:"owner"`
	Lessee         string            `json:"lessee,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	ProvisionState string            `json:"provisionState,omitempty"` // observed
	Target         string            `json:"target,omitempty"`         // being worked towards
	DesiredState   string            `json:"desiredState"`
	DesiredPower   string            `json:"desiredPower,omitempty"`
	ObservedPower  string            `json:"observedPower,omitempty"`
	Quarantine     string            `json:"quarantine,omitempty"` // spec.quarantine's reason
	Retired        string            `json:"retired,omitempty"`    // spec.retired's reason
	Fault          *schema.Fault     `json:"fault,omitempty"`
	LastError      string            `json:"lastError,omitempty"`
	PlanError      string            `json:"planError,omitempty"`
	Updated        string            `json:"updated,omitempty"`
	AgeSeconds     *int64            `json:"ageSeconds,omitempty"`
	Driver         string            `json:"driver,omitempty"`
	BMCHost        string            `json:"bmcHost,omitempty"`
	Operation      *schema.Operation `json:"operation,omitempty"`
	Commit         string            `json:"commit,omitempty"`
	HasStatus      bool              `json:"hasStatus"`
	// Rack is the node's rack: its "rack" label, else the directory its
	// file is in below nodes/ ("" for neither).
	Rack string `json:"rack,omitempty"`
}

// Selector is a label query: every key must be present with its value.
type Selector map[string]string

// ParseSelector reads kubectl's equality form, "k=v,k2=v2".
func ParseSelector(s string) (Selector, error) {
	sel := Selector{}
	return sel, sel.Add(s)
}

// Add adds the pairs of s ("k=v,k2=v2") to sel.
func (sel Selector) Add(s string) error {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(v, "=!") || strings.HasSuffix(k, "!") {
			return fmt.Errorf("bad label selector %q: want key=value", kv)
		}
		sel[k] = strings.TrimSpace(v)
	}
	return nil
}

// Matches reports whether labels carry every pair of sel.
func (sel Selector) Matches(labels map[string]string) bool {
	for k, want := range sel {
		if v, ok := labels[k]; !ok || v != want {
			return false
		}
	}
	return true
}

// String is the selector in kubectl's form, keys sorted.
func (sel Selector) String() string {
	parts := make([]string, 0, len(sel))
	for k, v := range sel {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// StatusOf returns a node's observed status, or nil when none is known.
type StatusOf func(node string) *schema.NodeStatusBody

// Recorded reads status from the status files of inv (a directory or a
// commit read by the loader).
func Recorded(inv *schema.Inventory) StatusOf {
	return func(node string) *schema.NodeStatusBody {
		if st := inv.Status[node]; st != nil {
			return &st.Status
		}
		return nil
	}
}

// Live reads status from a daemon's observed state.
func Live(obs reconcile.Observed) StatusOf {
	return func(node string) *schema.NodeStatusBody {
		if st, ok := obs[node]; ok {
			return &st
		}
		return nil
	}
}

// Rows joins every node of inv that sel matches with its status, in
// inventory (name) order; ages are relative to now.
func Rows(inv *schema.Inventory, status StatusOf, sel Selector, now time.Time) []Row {
	rows := []Row{}
	for _, n := range inv.Nodes {
		if !sel.Matches(n.Spec.Labels) {
			continue
		}
		r := Row{
			Node:         n.Name(),
			Owner:        n.Spec.Owner,
			Lessee:       n.Spec.Lessee,
			Labels:       n.Spec.Labels,
			DesiredState: n.Spec.Provision.State,
			DesiredPower: n.Spec.Power,
			Rack:         rackOf(n),
		}
		if q := n.Spec.Quarantine; q != nil {
			r.Quarantine = q.Reason
		}
		if rt := n.Spec.Retired; rt != nil {
			r.Retired = rt.Reason
		}
		if addr, err := schema.ParseBMCAddress(n.Spec.BMC.Address); err == nil {
			r.Driver, r.BMCHost = addr.Driver, addr.Host()
		}
		if s := status(n.Name()); s != nil {
			r.HasStatus = true
			r.ProvisionState, r.Target = s.ProvisionState, s.Target
			r.ObservedPower = s.Power
			r.Fault = s.Fault
			r.LastError, r.PlanError = s.LastError, s.PlanError
			r.Operation = s.Operation
			r.Commit = s.Commit
			r.Updated = s.Updated
			if t, err := time.Parse(time.RFC3339, s.Updated); err == nil {
				age := int64(now.Sub(t) / time.Second)
				r.AgeSeconds = &age
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// RackLabel is the label that places a node in a rack on the fleet page.
const RackLabel = "rack"

func rackOf(n *schema.Node) string {
	if r := n.Spec.Labels[RackLabel]; r != "" {
		return r
	}
	d := path.Dir(n.Source.File)
	if strings.HasPrefix(d, schema.NodesDir+"/") {
		return path.Base(d)
	}
	return ""
}

// Owners is the owner, and "/lessee" when leased.
func (r Row) Owners() string {
	if r.Lessee != "" {
		return r.Owner + "/" + r.Lessee
	}
	return r.Owner
}

// State is the observed provision state, with the state being worked
// towards when busy, or the desired state in parentheses before any
// status was recorded.
func (r Row) State() string {
	switch {
	case !r.HasStatus || r.ProvisionState == "":
		return "(" + r.DesiredState + ")"
	case r.Target != "" && r.Target != r.ProvisionState:
		return r.ProvisionState + "->" + r.Target
	}
	return r.ProvisionState
}

// Marks lists what takes a node out of normal service: retired,
// quarantined, fault(N).
func (r Row) Marks() []string {
	var parts []string
	if r.Retired != "" {
		parts = append(parts, "retired")
	}
	if r.Quarantine != "" {
		parts = append(parts, "quarantined")
	}
	if r.Fault != nil {
		parts = append(parts, fmt.Sprintf("fault(%d)", r.Fault.Failures))
	}
	return parts
}

// Error is the last error, else the plan error prefixed "plan: ", on one
// line.
func (r Row) Error() string {
	if e := OneLine(r.LastError); e != "" {
		return e
	}
	if r.PlanError != "" {
		return "plan: " + OneLine(r.PlanError)
	}
	return ""
}

// Class sorts a node into what an operator looks for first.
type Class string

// Classes, worst first.
const (
	ClassFailed  Class = "failed"  // a failed state, error, or a fault
	ClassBusy    Class = "busy"    // an operation is under way
	ClassNew     Class = "new"     // enrolling, or no status yet
	ClassReady   Class = "ready"   // manageable or available
	ClassActive  Class = "active"  // deployed
	ClassRetired Class = "retired" // retired and parked
)

// Classes lists every class in the order a legend shows them.
func Classes() []Class {
	return []Class{ClassActive, ClassReady, ClassBusy, ClassNew, ClassFailed, ClassRetired}
}

// Class is the row's class, from its observed state (desired before any
// status).
func (r Row) Class() Class {
	s := plan.State(r.ProvisionState)
	switch {
	case r.Fault != nil, s == plan.StateError, strings.HasSuffix(string(s), " failed"):
		return ClassFailed
	case r.Retired != "" && (s == plan.StateManageable || s == plan.StateAvailable || s == ""):
		return ClassRetired
	case !r.HasStatus || s == "" || s == plan.StateEnroll:
		return ClassNew
	case r.Target != "" && r.Target != r.ProvisionState, !reconcile.Stable(s):
		return ClassBusy
	case s == plan.StateActive:
		return ClassActive
	}
	return ClassReady
}

// StepText is the operation's progress, "deploy 3/5 write_image", or its
// kind alone; "" for none.
func StepText(op *schema.Operation) string {
	if op == nil {
		return ""
	}
	if len(op.Steps) == 0 {
		return op.Kind
	}
	s := fmt.Sprintf("%s %d/%d", op.Kind, op.Step+1, len(op.Steps))
	if op.Step >= 0 && op.Step < len(op.Steps) {
		s += " " + op.Steps[op.Step]
	}
	return s
}

// OneLine folds whitespace, newlines included, to single spaces.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Age is a duration the way kubectl prints ages: 45s, 12m, 5h, 3d; "-"
// for none.
func Age(secs *int64) string {
	if secs == nil {
		return "-"
	}
	d := time.Duration(*secs) * time.Second
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int64(d/time.Second))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int64(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int64(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int64(d/(24*time.Hour)))
}
