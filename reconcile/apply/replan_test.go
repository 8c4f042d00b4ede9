package apply

import (
	"strings"
	"testing"

	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/schema"
)

// TestFirstDeployWrongMACRefusedBeforeBoot: a new node whose network names
// a MAC the machine does not have is inspected, planned again with what
// inspection found within the same Apply, and refused by the MAC guard
// before any media is inserted or the node is booted.
func TestFirstDeployWrongMACRefusedBeforeBoot(t *testing.T) {
	r := newRig(t)
	r.fleet.Add("n1").SetMACs("b8:ce:f6:00:00:01", "b8:ce:f6:00:00:02")
	node := fakeNode("n1", "active", func(s *schema.NodeSpec) {
		s.Network = &schema.Network{Links: []schema.Link{
			{Name: "eno1", Type: schema.LinkPhy, MAC: "b8:ce:f6:99:99:99", Addresses: []string{"192.0.2.10/24"}},
		}}
	})
	inv := loaded(&schema.Inventory{Nodes: []*schema.Node{node}})
	p, rep := r.pass(t.Context(), inv)
	if np := p.Nodes[0]; np.ReplanFrom == 0 || np.Error != "" {
		t.Fatalf("first plan: replan from %d, error %q; want a plan that stops after inspection", np.ReplanFrom, np.Error)
	}
	res := rep.Nodes[0]
	if res.Outcome != PlanError || !strings.Contains(res.Err.Error(), "b8:ce:f6:99:99:99") {
		t.Fatalf("outcome %v (%v); want a plan error naming the MAC", res.Outcome, res.Err)
	}
	ops := r.fleet.System("n1").Counts().Ops
	for _, op := range []string{"insert-media", "set-boot", "power on", "reboot"} {
		if ops[op] != 0 {
			t.Errorf("%s ran %d times before the MAC guard refused the node", op, ops[op])
		}
	}
	if ran := r.agent.Ran("n1"); len(ran) != 0 {
		t.Errorf("agent ran %v", ran)
	}
	st := r.sink.Snapshot()["n1"]
	if st.Inspect == nil || st.ProvisionState != "manageable" {
		t.Errorf("status %s inspect %+v; want manageable and inspected", st.ProvisionState, st.Inspect)
	}
	// The next pass records the refusal in status; fixing the MAC clears it.
	obs := reconcile.Observed(r.sink.Snapshot())
	p = reconcile.Plan(inv, obs, r.ex.Capabilities(), r.ex.clock().Now())
	if _, err := r.ex.RecordPlanErrors(inv, p, obs); err != nil {
		t.Fatal(err)
	}
	if got := r.sink.Snapshot()["n1"].PlanError; !strings.Contains(got, "b8:ce:f6:99:99:99") {
		t.Errorf("status planError = %q; want the MAC refusal", got)
	}
	node.Spec.Network.Links[0].MAC = "b8:ce:f6:00:00:01"
	obs = reconcile.Observed(r.sink.Snapshot())
	p = reconcile.Plan(inv, obs, r.ex.Capabilities(), r.ex.clock().Now())
	if _, err := r.ex.RecordPlanErrors(inv, p, obs); err != nil {
		t.Fatal(err)
	}
	if got := r.sink.Snapshot()["n1"].PlanError; got != "" {
		t.Errorf("status planError = %q after the fix; want it cleared", got)
	}
}
