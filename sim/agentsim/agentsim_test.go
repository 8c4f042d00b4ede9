package agentsim

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/reconcile/plan"
)

func TestRunStep(t *testing.T) {
	tests := []struct {
		name          string
		step          plan.Step
		wantErr       bool
		wantInventory bool
	}{
		{name: "deploy step", step: plan.Step{Action: plan.ActionAgentStep, Agent: &plan.Agent{Interface: "deploy", Step: "write_image"}}},
		{name: "in-band inspection", step: plan.Step{Action: plan.ActionAgentStep, Agent: &plan.Agent{Interface: "inspect", Step: "inspect"}}, wantInventory: true},
		{name: "not an agent step", step: plan.Step{Action: plan.ActionVerify, Verify: &plan.Verify{}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Agent
			res, err := a.RunStep(context.Background(), "n1", "cmd-1", tt.step)
			if (err != nil) != tt.wantErr {
				t.Fatalf("RunStep error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				if ran := a.Ran("n1"); len(ran) != 0 {
					t.Errorf("Ran = %v after a refused step, want none", ran)
				}
				return
			}
			if !res.Simulated {
				t.Errorf("result not marked simulated")
			}
			if got := res.Inventory != nil; got != tt.wantInventory {
				t.Errorf("inventory present = %v, want %v", got, tt.wantInventory)
			}
			if diff := cmp.Diff([]string{tt.step.Agent.Interface + "." + tt.step.Agent.Step}, a.Ran("n1")); diff != "" {
				t.Errorf("Ran (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunStepCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var a Agent
	if _, err := a.RunStep(ctx, "n1", "cmd-2", plan.Step{Action: plan.ActionAgentStep, Agent: &plan.Agent{Interface: "deploy", Step: "write_image"}}); err == nil {
		t.Fatal("RunStep on a cancelled context succeeded")
	}
	if ran := a.Ran("n1"); len(ran) != 0 {
		t.Errorf("Ran = %v after a cancelled step, want none", ran)
	}
}
