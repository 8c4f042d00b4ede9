package apply

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

// slowAgent answers "waiting" a few times before it finishes, as an agent
// writing an image reports progress.
type slowAgent struct {
	waits atomic.Int32
}

func (a *slowAgent) Command(context.Context, string, string) (AgentResult, bool, error) {
	return AgentResult{}, false, nil
}

func (a *slowAgent) RunStep(ctx context.Context, node, id string, step plan.Step) (AgentResult, error) {
	if a.waits.Add(-1) >= 0 {
		return AgentResult{}, Wait(30*time.Second, "image 40% written")
	}
	return AgentResult{}, nil
}

// onePlan builds a plan of one operation on one node, by hand, to test one
// executor stage.
func onePlan(node string, op plan.Operation) plan.Plan {
	return plan.Plan{Nodes: []plan.NodePlan{{Node: node, From: op.From, To: op.To, Operations: []plan.Operation{op}}}}
}

func agentStep(name string) plan.Step {
	return plan.Step{Action: plan.ActionAgentStep, State: "deploying", Timeout: plan.Duration(time.Hour), Destructive: true,
		Expect: plan.Expect{Power: plan.PowerOn},
		Agent:  &plan.Agent{Interface: "deploy", Step: name, Args: map[string]any{"url": "https://img/x.raw", "checksum": "sha256:1"}}}
}

func TestWaitingIsPolled(t *testing.T) {
	r := newRig(t)
	agent := &slowAgent{}
	agent.waits.Store(3)
	r.ex.AgentFor = func(string) Agent { return agent }
	inv := loaded(&schema.Inventory{Nodes: []*schema.Node{fakeNode("n", "active", nil)}})
	op := plan.Operation{Kind: plan.KindDeploy, Reason: plan.ReasonProvisionChanged, From: "available", To: "active", Steps: []plan.Step{agentStep("write_image")}}
	before := r.ex.clock().Now()
	rep := r.ex.Apply(t.Context(), inv, onePlan("n", op), reconcile.Observed{"n": {ProvisionState: "available", Power: "on"}})
	if !rep.OK() {
		t.Fatalf("outcomes: %v", outcomes(rep))
	}
	// Three polls, each after the 30s the agent asked for, not the
	// backoff: waiting is not failing.
	if got := r.ex.clock().Now().Sub(before); got != 90*time.Second {
		t.Errorf("waited %v, want 90s", got)
	}
	if n := r.rec.count(StepRetry); n != 3 {
		t.Errorf("%d polls, want 3", n)
	}
	if st := r.sink.Snapshot()["n"]; st.ProvisionState != "active" || st.Deployed == nil || st.Deployed.Image != "https://img/x.raw" {
		t.Errorf("status = %+v", st)
	}
}

func TestStepTimeoutCountsTowardsFault(t *testing.T) {
	r := newRig(t)
	r.fleet.Add("n").SetLatency(time.Second, 0) // far beyond the step timeout
	inv := loaded(&schema.Inventory{Nodes: []*schema.Node{fakeNode("n", "manageable", nil)}})
	op := plan.Operation{Kind: plan.KindPower, Reason: plan.ReasonPowerDrift, From: "manageable", To: "manageable", Steps: []plan.Step{
		{Action: plan.ActionPower, State: "manageable", Timeout: plan.Duration(10 * time.Millisecond), Power: &plan.Power{Action: plan.PowerActionOn}},
	}}
	// One pass with one timed-out attempt per step (the timeout bounds
	// the step, retries included); three passes reach the threshold.
	for range 3 {
		r.ex.Apply(t.Context(), inv, onePlan("n", op), reconcile.Observed(r.sink.Snapshot()))
	}
	st := r.sink.Snapshot()["n"]
	if st.Fault == nil || st.Fault.Reason != "power failure: BMC not answering in time" {
		t.Fatalf("fault = %+v, want BMC not answering in time", st.Fault)
	}
	if !strings.Contains(st.LastError, "power on") {
		t.Errorf("lastError = %q", st.LastError)
	}
}

func TestAgentStepPrecondition(t *testing.T) {
	r := newRig(t)
	inv := loaded(&schema.Inventory{Nodes: []*schema.Node{fakeNode("n", "active", nil)}})
	op := plan.Operation{Kind: plan.KindDeploy, Reason: plan.ReasonProvisionChanged, From: "available", To: "active", Steps: []plan.Step{agentStep("write_image")}}
	rep := r.ex.Apply(t.Context(), inv, onePlan("n", op), reconcile.Observed{"n": {ProvisionState: "available", Power: "off"}})
	if rep.Nodes[0].Outcome != Failed || !strings.Contains(rep.Nodes[0].Err.Error(), "precondition") {
		t.Fatalf("outcome %v, err %v; want failed precondition", rep.Nodes[0].Outcome, rep.Nodes[0].Err)
	}
	st := r.sink.Snapshot()["n"]
	if st.ProvisionState != "deploy failed" || st.Operation != nil {
		t.Errorf("status = %s, op %+v; want deploy failed, no operation", st.ProvisionState, st.Operation)
	}
	if ran := r.agent.Ran("n"); len(ran) != 0 {
		t.Errorf("agent ran %v on a node that is off", ran)
	}
}

func TestResumeSkipsDoneSteps(t *testing.T) {
	r := newRig(t)
	r.fleet.Add("n").SetPowerState("on") // booted into the agent
	inv := loaded(&schema.Inventory{Nodes: []*schema.Node{fakeNode("n", "active", nil)}})
	obs := reconcile.Observed{"n": {ProvisionState: "deploying", Power: "on", Operation: &schema.Operation{
		Kind: "deploy", Step: 4, Steps: []string{"insert-media", "set-boot cd", "power on", "agent deploy.write_image", "set-boot disk", "power off", "eject-media", "power on"}}}}
	p := reconcile.Plan(inv, obs, r.ex.Capabilities(), r.ex.clock().Now())
	if op := p.Nodes[0].Operations[0]; op.Resume != 4 {
		t.Fatalf("plan resumes at %d, want 4", op.Resume)
	}
	rep := r.ex.Apply(t.Context(), inv, p, obs)
	if !rep.OK() {
		t.Fatalf("outcomes: %v", outcomes(rep))
	}
	if ran := r.agent.Ran("n"); len(ran) != 0 {
		t.Errorf("agent ran %v; write_image was already done", ran)
	}
	want := map[string]int{"set-boot": 1, "power off": 1, "eject-media": 1, "power on": 1}
	if diff := cmp.Diff(want, r.fleet.System("n").Counts().Ops); diff != "" {
		t.Errorf("BMC ops (-want +got):\n%s", diff)
	}
}

func TestLogObserver(t *testing.T) {
	var buf bytes.Buffer
	r := newRig(t)
	r.ex.Observer = LogObserver{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	r.ex.Media = &fakeMedia{}
	inv := loaded(&schema.Inventory{Nodes: []*schema.Node{fakeNode("n", "available", nil)}})
	r.sink.WriteStatus("n", schema.NodeStatusBody{ProvisionState: "manageable", Power: "off", Inspect: &schema.Inspected{}})
	r.fleet.Add("n").SetCredentials("admin", "other") // fails: bad credentials
	r.pass(t.Context(), inv)
	out := buf.String()
	for _, want := range []string{"node=n", "op=clean", "step=insert-media", "step failed", "result=failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{testPassword, "token=s3cr3t"} {
		if strings.Contains(out, secret) {
			t.Errorf("log reveals %q:\n%s", secret, out)
		}
	}
}
