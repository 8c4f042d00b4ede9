// Package reconcile decides what metalsync does: the provision state
// machine and the planner, a pure function from desired inventory and
// observed state to a plan. It does no I/O and reads no clock; the
// executor (reconcile/apply) carries the plan out.
package reconcile

import (
	"slices"

	"metalsync.dev/metalsync/reconcile/plan"
)

// stateInfo is one state of the provision state machine.
type stateInfo struct {
	// stable states are where a node rests when no operation runs.
	stable bool
	// failed is where a failure in a busy state leads ("" when stable).
	failed plan.State
	// next lists the states one transition away, as in Ironic's diagram.
	next []plan.State
}

// machine is the whole provision state machine. The planner decides
// which operation leaves each stable state (nodePlanner.advance);
// machine says what is allowed: every step of a planned operation is
// checked against it (checkOperation), and it tells the executor and
// the planner where a failure in a busy state leaves a node.
var machine = map[plan.State]stateInfo{
	plan.StateEnroll:        {stable: true, next: []plan.State{plan.StateVerifying}},
	plan.StateVerifying:     {failed: plan.StateEnroll, next: []plan.State{plan.StateManageable, plan.StateEnroll}},
	plan.StateManageable:    {stable: true, next: []plan.State{plan.StateInspecting, plan.StateCleaning, plan.StateAdopting}},
	plan.StateInspecting:    {failed: plan.StateInspectFailed, next: []plan.State{plan.StateManageable, plan.StateInspectWait, plan.StateInspectFailed}},
	plan.StateInspectWait:   {failed: plan.StateInspectFailed, next: []plan.State{plan.StateInspecting, plan.StateManageable, plan.StateInspectFailed}},
	plan.StateInspectFailed: {stable: true, next: []plan.State{plan.StateInspecting, plan.StateManageable}},
	plan.StateCleaning:      {failed: plan.StateCleanFailed, next: []plan.State{plan.StateAvailable, plan.StateManageable, plan.StateCleanWait, plan.StateCleanFailed}},
	plan.StateCleanWait:     {failed: plan.StateCleanFailed, next: []plan.State{plan.StateCleaning, plan.StateCleanFailed}},
	plan.StateCleanFailed:   {stable: true, next: []plan.State{plan.StateManageable}},
	plan.StateAvailable:     {stable: true, next: []plan.State{plan.StateDeploying, plan.StateManageable}},
	plan.StateDeploying:     {failed: plan.StateDeployFailed, next: []plan.State{plan.StateActive, plan.StateWaitCallBack, plan.StateDeployFailed}},
	plan.StateWaitCallBack:  {failed: plan.StateDeployFailed, next: []plan.State{plan.StateDeploying, plan.StateActive, plan.StateDeployFailed}},
	plan.StateDeployFailed:  {stable: true, next: []plan.State{plan.StateDeploying, plan.StateDeleting}},
	plan.StateActive:        {stable: true, next: []plan.State{plan.StateDeploying, plan.StateDeleting}},
	plan.StateDeleting:      {failed: plan.StateError, next: []plan.State{plan.StateCleaning, plan.StateError}},
	plan.StateError:         {stable: true, next: []plan.State{plan.StateDeploying, plan.StateDeleting}},
	plan.StateAdopting:      {failed: plan.StateAdoptFailed, next: []plan.State{plan.StateActive, plan.StateAdoptFailed}},
	plan.StateAdoptFailed:   {stable: true, next: []plan.State{plan.StateAdopting, plan.StateManageable}},
}

// Known reports whether s is a provision state of the machine.
func Known(s plan.State) bool {
	_, ok := machine[s]
	return ok
}

// Allowed reports whether a node may move from one state to the other in
// one transition.
func Allowed(from, to plan.State) bool {
	return slices.Contains(machine[from].next, to)
}

// Stable reports whether a node rests in s when no operation runs.
func Stable(s plan.State) bool { return machine[s].stable }

// FailedState is where a failure in busy state s leads.
func FailedState(s plan.State) (plan.State, bool) {
	f := machine[s].failed
	return f, f != ""
}
