package plan

// State is a provision state, named as Ironic names them so that an
// operator's knowledge carries over. The name is also the text form in
// plans and status files. Which states lead to which is the state machine
// in package reconcile.
type State string

// Provision states.
const (
	StateEnroll        State = "enroll"
	StateVerifying     State = "verifying"
	StateManageable    State = "manageable"
	StateInspecting    State = "inspecting"
	StateInspectWait   State = "inspect wait"
	StateInspectFailed State = "inspect failed"
	StateCleaning      State = "cleaning"
	StateCleanWait     State = "clean wait"
	StateCleanFailed   State = "clean failed"
	StateAvailable     State = "available"
	StateDeploying     State = "deploying"
	StateWaitCallBack  State = "wait call-back"
	StateDeployFailed  State = "deploy failed"
	StateActive        State = "active"
	StateDeleting      State = "deleting"
	StateError         State = "error"
	StateAdopting      State = "adopting"
	StateAdoptFailed   State = "adopt failed"
)

// States lists every provision state, in lifecycle order.
func States() []State {
	return []State{
		StateEnroll, StateVerifying, StateManageable, StateInspecting, StateInspectWait, StateInspectFailed,
		StateCleaning, StateCleanWait, StateCleanFailed, StateAvailable, StateDeploying, StateWaitCallBack,
		StateDeployFailed, StateActive, StateDeleting, StateError, StateAdopting, StateAdoptFailed,
	}
}

// PowerState is a node's power: observed, expected before a step, or
// predicted by the planner after one.
type PowerState string

// Power states.
const (
	PowerOn      PowerState = "on"
	PowerOff     PowerState = "off"
	PowerUnknown PowerState = "unknown"
)

// PowerAction is what a power step does.
type PowerAction string

// Power actions.
const (
	PowerActionOn     PowerAction = "on"
	PowerActionOff    PowerAction = "off"
	PowerActionReboot PowerAction = "reboot"
)

// Valid reports whether a is a known power action.
func (a PowerAction) Valid() bool {
	return a == PowerActionOn || a == PowerActionOff || a == PowerActionReboot
}

// Target is the power state the action leaves the node in.
func (a PowerAction) Target() PowerState {
	if a == PowerActionOff {
		return PowerOff
	}
	return PowerOn
}
