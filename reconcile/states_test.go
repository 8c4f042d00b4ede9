package reconcile

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// allowedPairs is written out by hand from Ironic's state diagram; the
// test checks the table against it for every pair of states, so that a
// transition added or dropped by accident fails here.
var allowedPairs = map[[2]State]bool{
	{Enroll, Verifying}:          true,
	{Verifying, Manageable}:      true,
	{Verifying, Enroll}:          true,
	{Manageable, Inspecting}:     true,
	{Manageable, Cleaning}:       true,
	{Manageable, Adopting}:       true,
	{Inspecting, Manageable}:     true,
	{Inspecting, InspectWait}:    true,
	{Inspecting, InspectFailed}:  true,
	{InspectWait, Inspecting}:    true,
	{InspectWait, Manageable}:    true,
	{InspectWait, InspectFailed}: true,
	{InspectFailed, Inspecting}:  true,
	{InspectFailed, Manageable}:  true,
	{Cleaning, Available}:        true,
	{Cleaning, Manageable}:       true,
	{Cleaning, CleanWait}:        true,
	{Cleaning, CleanFailed}:      true,
	{CleanWait, Cleaning}:        true,
	{CleanWait, CleanFailed}:     true,
	{CleanFailed, Manageable}:    true,
	{Available, Deploying}:       true,
	{Available, Manageable}:      true,
	{Deploying, Active}:          true,
	{Deploying, WaitCallBack}:    true,
	{Deploying, DeployFailed}:    true,
	{WaitCallBack, Deploying}:    true,
	{WaitCallBack, Active}:       true,
	{WaitCallBack, DeployFailed}: true,
	{DeployFailed, Deploying}:    true,
	{DeployFailed, Deleting}:     true,
	{Active, Deploying}:          true,
	{Active, Deleting}:           true,
	{Deleting, Cleaning}:         true,
	{Deleting, Error}:            true,
	{Error, Deploying}:           true,
	{Error, Deleting}:            true,
	{Adopting, Active}:           true,
	{Adopting, AdoptFailed}:      true,
	{AdoptFailed, Adopting}:      true,
	{AdoptFailed, Manageable}:    true,
}

func TestTransitionsAllPairs(t *testing.T) {
	if len(States) != 18 {
		t.Fatalf("len(States) = %d, want the 18 Ironic states", len(States))
	}
	for _, from := range States {
		for _, to := range States {
			want := allowedPairs[[2]State{from, to}]
			if got := Allowed(from, to); got != want {
				t.Errorf("Allowed(%q, %q) = %v, want %v", from, to, got, want)
			}
		}
	}
	for pair := range allowedPairs {
		if !pair[0].Valid() || !pair[1].Valid() {
			t.Errorf("allowedPairs has unknown state in %q", pair)
		}
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		from    State
		ev      Event
		want    State
		wantErr bool
	}{
		{Enroll, EvManage, Verifying, false},
		{Verifying, EvDone, Manageable, false},
		{Manageable, EvProvide, Cleaning, false},
		{Cleaning, EvDone, Available, false},
		{Cleaning, EvManage, Manageable, false},
		{Available, EvDeploy, Deploying, false},
		{Deploying, EvWait, WaitCallBack, false},
		{WaitCallBack, EvResume, Deploying, false},
		{Deploying, EvDone, Active, false},
		{Active, EvDelete, Deleting, false},
		{Deleting, EvDone, Cleaning, false},
		{Manageable, EvAdopt, Adopting, false},
		{Adopting, EvFail, AdoptFailed, false},
		{Enroll, EvDeploy, "", true},
		{Active, EvProvide, "", true},
		{Available, EvDelete, "", true},
		{"bogus", EvManage, "", true},
	}
	for _, tt := range tests {
		got, err := Next(tt.from, tt.ev)
		if (err != nil) != tt.wantErr {
			t.Errorf("Next(%q, %q) error = %v, wantErr %v", tt.from, tt.ev, err, tt.wantErr)
		}
		if got != tt.want {
			t.Errorf("Next(%q, %q) = %q, want %q", tt.from, tt.ev, got, tt.want)
		}
	}
}

func TestFailedStateAndStable(t *testing.T) {
	got := map[State]State{}
	var stable []State
	for _, s := range States {
		if f, ok := FailedState(s); ok {
			got[s] = f
		}
		if s.Stable() {
			stable = append(stable, s)
		}
	}
	want := map[State]State{
		Verifying: Enroll, Inspecting: InspectFailed, InspectWait: InspectFailed, Cleaning: CleanFailed,
		CleanWait: CleanFailed, Deploying: DeployFailed, WaitCallBack: DeployFailed, Deleting: Error, Adopting: AdoptFailed,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failed states (-want +got):\n%s", diff)
	}
	wantStable := []State{Enroll, Manageable, InspectFailed, CleanFailed, Available, DeployFailed, Active, Error, AdoptFailed}
	if diff := cmp.Diff(wantStable, stable); diff != "" {
		t.Errorf("stable states (-want +got):\n%s", diff)
	}
}
