package reconcile

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/reconcile/plan"
)

// allowedPairs is written out by hand from Ironic's state diagram; the
// test checks the table against it for every pair of states, so that a
// transition added or dropped by accident fails here.
var allowedPairs = map[[2]plan.State]bool{
	{plan.StateEnroll, plan.StateVerifying}:          true,
	{plan.StateVerifying, plan.StateManageable}:      true,
	{plan.StateVerifying, plan.StateEnroll}:          true,
	{plan.StateManageable, plan.StateInspecting}:     true,
	{plan.StateManageable, plan.StateCleaning}:       true,
	{plan.StateManageable, plan.StateAdopting}:       true,
	{plan.StateInspecting, plan.StateManageable}:     true,
	{plan.StateInspecting, plan.StateInspectWait}:    true,
	{plan.StateInspecting, plan.StateInspectFailed}:  true,
	{plan.StateInspectWait, plan.StateInspecting}:    true,
	{plan.StateInspectWait, plan.StateManageable}:    true,
	{plan.StateInspectWait, plan.StateInspectFailed}: true,
	{plan.StateInspectFailed, plan.StateInspecting}:  true,
	{plan.StateInspectFailed, plan.StateManageable}:  true,
	{plan.StateCleaning, plan.StateAvailable}:        true,
	{plan.StateCleaning, plan.StateManageable}:       true,
	{plan.StateCleaning, plan.StateCleanWait}:        true,
	{plan.StateCleaning, plan.StateCleanFailed}:      true,
	{plan.StateCleanWait, plan.StateCleaning}:        true,
	{plan.StateCleanWait, plan.StateCleanFailed}:     true,
	{plan.StateCleanFailed, plan.StateManageable}:    true,
	{plan.StateAvailable, plan.StateDeploying}:       true,
	{plan.StateAvailable, plan.StateManageable}:      true,
	{plan.StateDeploying, plan.StateActive}:          true,
	{plan.StateDeploying, plan.StateWaitCallBack}:    true,
	{plan.StateDeploying, plan.StateDeployFailed}:    true,
	{plan.StateWaitCallBack, plan.StateDeploying}:    true,
	{plan.StateWaitCallBack, plan.StateActive}:       true,
	{plan.StateWaitCallBack, plan.StateDeployFailed}: true,
	{plan.StateDeployFailed, plan.StateDeploying}:    true,
	{plan.StateDeployFailed, plan.StateDeleting}:     true,
	{plan.StateActive, plan.StateDeploying}:          true,
	{plan.StateActive, plan.StateDeleting}:           true,
	{plan.StateDeleting, plan.StateCleaning}:         true,
	{plan.StateDeleting, plan.StateError}:            true,
	{plan.StateError, plan.StateDeploying}:           true,
	{plan.StateError, plan.StateDeleting}:            true,
	{plan.StateAdopting, plan.StateActive}:           true,
	{plan.StateAdopting, plan.StateAdoptFailed}:      true,
	{plan.StateAdoptFailed, plan.StateAdopting}:      true,
	{plan.StateAdoptFailed, plan.StateManageable}:    true,
}

func TestTransitionsAllPairs(t *testing.T) {
	if len(plan.States()) != 18 {
		t.Fatalf("len(plan.States()) = %d, want the 18 Ironic states", len(plan.States()))
	}
	for _, from := range plan.States() {
		for _, to := range plan.States() {
			want := allowedPairs[[2]plan.State{from, to}]
			if got := Allowed(from, to); got != want {
				t.Errorf("Allowed(%q, %q) = %v, want %v", from, to, got, want)
			}
		}
	}
	for pair := range allowedPairs {
		if !Known(pair[0]) || !Known(pair[1]) {
			t.Errorf("allowedPairs has unknown state in %q", pair)
		}
	}
	if len(machine) != len(plan.States()) {
		t.Errorf("the machine has %d states, plan.States lists %d", len(machine), len(plan.States()))
	}
	for _, s := range plan.States() {
		if !Known(s) {
			t.Errorf("Known(%q) = false for a state of plan.States", s)
		}
	}
	if Known("bogus") || Allowed("bogus", plan.StateEnroll) || Stable("bogus") {
		t.Errorf("an unknown state is known, stable or leads somewhere")
	}
	if f, ok := FailedState("bogus"); ok {
		t.Errorf("FailedState(bogus) = %q, want none", f)
	}
}

func TestFailedStateAndStable(t *testing.T) {
	got := map[plan.State]plan.State{}
	var stable []plan.State
	for _, s := range plan.States() {
		if f, ok := FailedState(s); ok {
			got[s] = f
		}
		if Stable(s) {
			stable = append(stable, s)
		}
	}
	want := map[plan.State]plan.State{
		plan.StateVerifying: plan.StateEnroll, plan.StateInspecting: plan.StateInspectFailed, plan.StateInspectWait: plan.StateInspectFailed, plan.StateCleaning: plan.StateCleanFailed,
		plan.StateCleanWait: plan.StateCleanFailed, plan.StateDeploying: plan.StateDeployFailed, plan.StateWaitCallBack: plan.StateDeployFailed, plan.StateDeleting: plan.StateError, plan.StateAdopting: plan.StateAdoptFailed,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failed states (-want +got):\n%s", diff)
	}
	wantStable := []plan.State{plan.StateEnroll, plan.StateManageable, plan.StateInspectFailed, plan.StateCleanFailed, plan.StateAvailable, plan.StateDeployFailed, plan.StateActive, plan.StateError, plan.StateAdoptFailed}
	if diff := cmp.Diff(wantStable, stable); diff != "" {
		t.Errorf("stable states (-want +got):\n%s", diff)
	}
}
