// Package reconcile decides what metalsync does: the provision state
// machine and the planner, a pure function from desired inventory and
// observed state to a plan. It does no I/O and reads no clock; the
// executor (reconcile/apply) carries the plan out.
package reconcile

import "fmt"

// State is a provision state, named as Ironic names them so that an
// operator's knowledge carries over.
type State string

// Provision states.
const (
	Enroll        State = "enroll"
	Verifying     State = "verifying"
	Manageable    State = "manageable"
	Inspecting    State = "inspecting"
	InspectWait   State = "inspect wait"
	InspectFailed State = "inspect failed"
	Cleaning      State = "cleaning"
	CleanWait     State = "clean wait"
	CleanFailed   State = "clean failed"
	Available     State = "available"
	Deploying     State = "deploying"
	WaitCallBack  State = "wait call-back"
	DeployFailed  State = "deploy failed"
	Active        State = "active"
	Deleting      State = "deleting"
	Error         State = "error"
	Adopting      State = "adopting"
	AdoptFailed   State = "adopt failed"
)

// States lists every provision state, in lifecycle order.
var States = []State{
	Enroll, Verifying, Manageable, Inspecting, InspectWait, InspectFailed,
	Cleaning, CleanWait, CleanFailed, Available, Deploying, WaitCallBack,
	DeployFailed, Active, Deleting, Error, Adopting, AdoptFailed,
}

// Event is what moves a node from one state to another.
type Event string

// Events, as in Ironic's state machine.
const (
	EvManage  Event = "manage"  // enroll -> verifying; failed/available -> manageable
	EvInspect Event = "inspect" // manageable -> inspecting
	EvProvide Event = "provide" // manageable -> cleaning (to available)
	EvClean   Event = "clean"   // manageable -> cleaning (manual, back to manageable)
	EvDeploy  Event = "deploy"  // available -> deploying
	EvRebuild Event = "rebuild" // active/failed -> deploying
	EvDelete  Event = "delete"  // active -> deleting
	EvAdopt   Event = "adopt"   // manageable -> adopting
	EvWait    Event = "wait"    // busy -> waiting for the agent
	EvResume  Event = "resume"  // waiting -> busy again
	EvDone    Event = "done"    // busy -> next stable state
	EvFail    Event = "fail"    // busy -> failed state
	EvAbort   Event = "abort"   // waiting -> failed state
)

// transitions is the whole state machine: from -> event -> to. Anything
// not listed is refused. Where Ironic's "done" depends on how the state
// was entered (cleaning ends in available when providing, manageable when
// cleaning manually), both targets are listed under distinct events.
var transitions = map[State]map[Event]State{
	Enroll:        {EvManage: Verifying},
	Verifying:     {EvDone: Manageable, EvFail: Enroll},
	Manageable:    {EvInspect: Inspecting, EvProvide: Cleaning, EvClean: Cleaning, EvAdopt: Adopting},
	Inspecting:    {EvDone: Manageable, EvWait: InspectWait, EvFail: InspectFailed},
	InspectWait:   {EvResume: Inspecting, EvDone: Manageable, EvAbort: InspectFailed, EvFail: InspectFailed},
	InspectFailed: {EvInspect: Inspecting, EvManage: Manageable},
	Cleaning:      {EvDone: Available, EvManage: Manageable, EvWait: CleanWait, EvFail: CleanFailed},
	CleanWait:     {EvResume: Cleaning, EvAbort: CleanFailed, EvFail: CleanFailed},
	CleanFailed:   {EvManage: Manageable},
	Available:     {EvDeploy: Deploying, EvManage: Manageable},
	Deploying:     {EvDone: Active, EvWait: WaitCallBack, EvFail: DeployFailed},
	WaitCallBack:  {EvResume: Deploying, EvDone: Active, EvAbort: DeployFailed, EvFail: DeployFailed},
	DeployFailed:  {EvRebuild: Deploying, EvDeploy: Deploying, EvDelete: Deleting},
	Active:        {EvRebuild: Deploying, EvDelete: Deleting},
	Deleting:      {EvDone: Cleaning, EvFail: Error},
	Error:         {EvRebuild: Deploying, EvDelete: Deleting},
	Adopting:      {EvDone: Active, EvFail: AdoptFailed},
	AdoptFailed:   {EvAdopt: Adopting, EvManage: Manageable},
}

// Valid reports whether s is a known provision state.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// Next returns the state event ev leads to from s, or an error when the
// state machine refuses it.
func Next(from State, ev Event) (State, error) {
	evs, ok := transitions[from]
	if !ok {
		return "", fmt.Errorf("unknown provision state %q", from)
	}
	to, ok := evs[ev]
	if !ok {
		return "", fmt.Errorf("provision state %s: event %s not allowed", from, ev)
	}
	return to, nil
}

// Allowed reports whether some event moves a node from one state to the
// other in one transition.
func Allowed(from, to State) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// Stable reports whether a node rests in s when no operation runs.
func (s State) Stable() bool {
	switch s {
	case Enroll, Manageable, Available, Active,
		InspectFailed, CleanFailed, DeployFailed, Error, AdoptFailed:
		return true
	}
	return false
}

// FailedState is where a failure in busy state s leads (the fail event).
func FailedState(s State) (State, bool) {
	to, err := Next(s, EvFail)
	return to, err == nil
}
