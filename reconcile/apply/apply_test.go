package apply

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/credentials"
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/fake"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

func TestLifecycleToActive(t *testing.T) {
	r := newRig(t)
	tmpl := &schema.DeployTemplate{Metadata: schema.Meta{Name: "perf"}, Spec: schema.DeployTemplateSpec{Steps: []schema.Step{
		{Interface: "bios", Step: "apply_configuration", Priority: 110, Args: &schema.BIOSArgs{Settings: schema.BIOSSettings{"SriovEnable": "Enabled"}}},
		{Interface: "raid", Step: "create_configuration", Priority: 105, Args: &schema.RAIDArgs{LogicalDisks: []schema.LogicalDisk{{Name: "os", RAIDLevel: "1"}}}},
	}}}
	inv := &schema.Inventory{Templates: []*schema.DeployTemplate{tmpl}, Nodes: []*schema.Node{
		fakeNode("a", "active", func(s *schema.NodeSpec) { s.Provision.DeployTemplates = []string{"perf"} }),
		fakeNode("b", "available", nil),
		fakeNode("c", "manageable", func(s *schema.NodeSpec) { s.Power = "on" }),
	}}
	_, rep := r.pass(t.Context(), inv)
	want := map[string]string{"a": "done", "b": "done", "c": "done"}
	if diff := cmp.Diff(want, outcomes(rep)); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	st := r.sink.Snapshot()
	got := map[string]string{}
	for n, s := range st {
		got[n] = s.ProvisionState + "/" + s.Power
	}
	if diff := cmp.Diff(map[string]string{"a": "active/on", "b": "available/off", "c": "manageable/on"}, got); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	a := st["a"]
	if a.Deployed == nil || !a.Deployed.Simulated || a.Deployed.Image != testImage.URL || len(a.Deployed.Steps) == 0 {
		t.Errorf("deployed = %+v, want the image, simulated, with steps", a.Deployed)
	}
	if a.Inspect == nil || a.Inspect.Inventory == nil || a.Operation != nil || a.Target != "" {
		t.Errorf("status a = %+v", a)
	}
	sys := r.fleet.System("a")
	override, from := sys.Boot()
	if override.Device != drivers.BootDisk || !override.Persistent || from != drivers.BootDisk {
		t.Errorf("boot = %+v, booted from %s; want persistent disk", override, from)
	}
	if m := sys.Media(drivers.MediaCD); m.Inserted {
		t.Errorf("media still inserted: %+v", m)
	}
	ops := sys.Counts().Ops
	if ops["apply-bios"] != 1 || ops["create-volume"] != 1 {
		t.Errorf("ops = %v, want one BIOS apply and one volume", ops)
	}
	if diff := cmp.Diff([]string{"deploy.erase_devices_metadata", "deploy.write_image"}, r.agent.Ran("a")); diff != "" {
		t.Errorf("agent steps (-want +got):\n%s", diff)
	}
	// A second pass has nothing to do.
	if p, _ := r.pass(t.Context(), inv); p.HasChanges() {
		t.Errorf("second plan has changes: %s", p.Summarize().Line())
	}
}

func TestFaultSetAndCleared(t *testing.T) {
	// While faulted, each pass probes power. An unreachable BMC stays
	// faulted; one that answers but ignores power changes is healthy by
	// that measure (as in Ironic), so its fault clears at once and comes
	// back if the power change keeps failing.
	tests := []struct {
		name        string
		faults      fake.Faults
		reason      string
		whileFaulty Outcome
		afterRepair Outcome
	}{
		{"unreachable", fake.Faults{Unreachable: true}, "power failure: BMC unreachable", StillFaulted, Healthy},
		{"power ignored", fake.Faults{IgnorePower: true}, "power failure: power change not taking effect", Healthy, Done},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			inv := loaded(&schema.Inventory{Nodes: []*schema.Node{fakeNode("n", "manageable", func(s *schema.NodeSpec) { s.Power = "on" })}})
			// Enrol first so that the power step is what fails.
			r.fleet.Add("n")
			r.sink.WriteStatus("n", schema.NodeStatusBody{ProvisionState: "manageable", Power: "off", Inspect: &schema.Inspected{}})
			r.fleet.System("n").SetFaults(tt.faults)
			_, rep := r.pass(t.Context(), inv)
			if rep.Nodes[0].Outcome != Faulted {
				t.Fatalf("outcome = %v (%v), want fault", rep.Nodes[0].Outcome, rep.Nodes[0].Err)
			}
			st := r.sink.Snapshot()["n"]
			if st.Fault == nil || st.Fault.Reason != tt.reason || st.Fault.Failures != 3 {
				t.Fatalf("fault = %+v, want %q after 3 failures", st.Fault, tt.reason)
			}
			// Faulted: the plan shows it, does nothing, and probes.
			p, rep := r.pass(t.Context(), inv)
			if p.HasChanges() || !p.Nodes[0].Probe || rep.Nodes[0].Outcome != tt.whileFaulty {
				t.Fatalf("plan while faulted: changes %v, probe %v, outcome %v, want %v", p.HasChanges(), p.Nodes[0].Probe, rep.Nodes[0].Outcome, tt.whileFaulty)
			}
			r.fleet.System("n").SetFaults(fake.Faults{})
			_, rep = r.pass(t.Context(), inv)
			if rep.Nodes[0].Outcome != tt.afterRepair || r.sink.Snapshot()["n"].Fault != nil {
				t.Fatalf("after repair: outcome %v, fault %+v", rep.Nodes[0].Outcome, r.sink.Snapshot()["n"].Fault)
			}
			for range 2 { // the power change, if the repair pass was only a probe
				if p, _ := r.pass(t.Context(), inv); !p.HasChanges() {
					break
				}
			}
			if p, _ := r.pass(t.Context(), inv); p.HasChanges() || r.fleet.System("n").PowerState() != drivers.PowerOn {
				t.Fatalf("after repair: %s, power %s", p.Summarize().Line(), r.fleet.System("n").PowerState())
			}
			if r.rec.count(FaultSet) != 1 || r.rec.count(FaultCleared) != 1 {
				t.Errorf("events: %d fault set, %d cleared", r.rec.count(FaultSet), r.rec.count(FaultCleared))
			}
		})
	}
}

func TestStalledAndTransient(t *testing.T) {
	r := newRig(t)
	r.fleet.Add("locked").SetCredentials("admin", "other-password")
	r.fleet.Add("flaky").SetFaults(fake.Faults{FailCalls: 2})
	inv := &schema.Inventory{Nodes: []*schema.Node{
		fakeNode("locked", "manageable", nil),
		fakeNode("flaky", "manageable", nil),
		fakeNode("nocreds", "manageable", func(s *schema.NodeSpec) { s.BMC.CredentialsRef.Set = "unset" }),
	}}
	_, rep := r.pass(t.Context(), inv)
	got := map[string]Outcome{}
	for _, n := range rep.Nodes {
		got[n.Node] = n.Outcome
		if n.Err != nil && strings.Contains(n.Err.Error(), testPassword) {
			t.Errorf("%s: error reveals the password: %v", n.Node, n.Err)
		}
	}
	if diff := cmp.Diff(map[string]Outcome{"locked": Failed, "flaky": Done, "nocreds": Failed}, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	st := r.sink.Snapshot()
	if s := st["locked"]; s.ProvisionState != "enroll" || !strings.Contains(s.LastError, "rejected the credentials") || s.Fault != nil {
		t.Errorf("locked status = %+v, want enroll with a credentials error and no fault", s)
	}
	if s := st["nocreds"]; !strings.Contains(s.LastError, "UNSET_VAR not set") {
		t.Errorf("nocreds lastError = %q", s.LastError)
	}
	if r.rec.count(StepRetry) != 2 {
		t.Errorf("%d retries, want 2 (the flaky node's two 503s)", r.rec.count(StepRetry))
	}
}

// fakeMedia records what it published.
type fakeMedia struct {
	mu          sync.Mutex
	published   []string
	epochs      []string
	unpublished []string
}

func (m *fakeMedia) Publish(ctx context.Context, n *schema.Node, epoch string) (string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.published = append(m.published, n.Name())
	m.epochs = append(m.epochs, epoch)
	return "http://127.0.0.1:9/media/" + n.Name() + ".iso?token=s3cr3t", "sha256:" + strings.Repeat("d", 64), nil
}

func (m *fakeMedia) Unpublish(ctx context.Context, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unpublished = append(m.unpublished, node)
	return nil
}

// TestMediaSeam: a node without DHCP gets per-node media whatever its
// agent; a node with DHCP gets it only when its agent boots from the
// node's media (the real agent, whose token is on nothing else), and then
// the step runs with the publication's epoch recorded in status.
func TestMediaSeam(t *testing.T) {
	tests := []struct {
		name      string
		nodeMedia bool // the agent is a NodeMediaAgent
		want      []string
	}{
		{"simulated agent", false, []string{"static"}},
		{"real agent", true, []string{"dhcp", "static"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			media := &fakeMedia{}
			r.ex.Media = media
			agent := &epochAgent{recordingAgent: r.agent, sink: r.sink, nodeMedia: tt.nodeMedia}
			r.ex.AgentFor = func(string) Agent { return agent }
			yes := true
			inv := &schema.Inventory{Nodes: []*schema.Node{
				fakeNode("static", "available", nil),
				fakeNode("dhcp", "available", func(s *schema.NodeSpec) { s.Network = &schema.Network{DHCP: &yes} }),
			}}
			r.sink.WriteStatus("static", schema.NodeStatusBody{ProvisionState: "manageable", Power: "off", Inspect: &schema.Inspected{}})
			r.sink.WriteStatus("dhcp", schema.NodeStatusBody{ProvisionState: "manageable", Power: "off", Inspect: &schema.Inspected{}})
			_, rep := r.pass(t.Context(), inv)
			if !rep.OK() {
				t.Fatalf("outcomes: %v", outcomes(rep))
			}
			media.mu.Lock()
			published, unpublished, epochs := slices.Sorted(slices.Values(media.published)), slices.Sorted(slices.Values(media.unpublished)), media.epochs
			media.mu.Unlock()
			if diff := cmp.Diff(tt.want, published); diff != "" {
				t.Errorf("published (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, unpublished); diff != "" {
				t.Errorf("unpublished (-want +got):\n%s", diff)
			}
			if len(epochs) != len(tt.want) {
				t.Fatalf("publication epochs = %q, want %d", epochs, len(tt.want))
			}
			for _, e := range epochs {
				if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(e) {
					t.Errorf("publication epoch %q, want random hex", e)
				}
			}
			// Every in-band step ran with the epoch of a publication in
			// status (the agent's token derives from it), and only on
			// nodes that got media.
			seen := agent.epochsSeen()
			for node, es := range seen {
				for _, e := range es {
					if !slices.Contains(tt.want, node) {
						if e != "" {
							t.Errorf("node %s: agent step saw media epoch %q, want none (no per-node media)", node, e)
						}
						continue
					}
					if !slices.Contains(epochs, e) {
						t.Errorf("node %s: agent step saw media epoch %q, want one of the published %q", node, e, epochs)
					}
				}
			}
			if len(seen["dhcp"]) == 0 {
				t.Errorf("no agent step ran on the dhcp node")
			}
			st := r.sink.Snapshot()
			// Ejected: the publication (and the agent token derived from its
			// epoch) is over, so status no longer names it.
			for _, n := range []string{"static", "dhcp"} {
				if m := st[n].Media; m != nil {
					t.Errorf("%s media still recorded after the eject: %+v", n, m)
				}
			}
		})
	}
}

// epochAgent is a recordingAgent that may boot from node media, and notes
// the media epoch recorded in status when each step starts.
type epochAgent struct {
	*recordingAgent
	sink      *MemorySink
	nodeMedia bool

	mu     sync.Mutex
	epochs map[string][]string // node -> epoch at each step; guarded by mu
}

func (a *epochAgent) BootsFromNodeMedia() bool { return a.nodeMedia }

func (a *epochAgent) RunStep(ctx context.Context, node, id string, step plan.Step) (AgentResult, error) {
	epoch := ""
	if m := a.sink.Snapshot()[node].Media; m != nil {
		epoch = m.Epoch
	}
	a.mu.Lock()
	if a.epochs == nil {
		a.epochs = map[string][]string{}
	}
	a.epochs[node] = append(a.epochs[node], epoch)
	a.mu.Unlock()
	return a.recordingAgent.RunStep(ctx, node, id, step)
}

func (a *epochAgent) epochsSeen() map[string][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.epochs)
}

func TestPerBMCLimit(t *testing.T) {
	r := newRig(t)
	var nodes []*schema.Node
	for i := range 8 {
		name := fmt.Sprintf("blade%d", i)
		addr := fmt.Sprintf("fake://chassis%d/%s", i%2, name)
		r.fleet.Add(fmt.Sprintf("chassis%d/%s", i%2, name)).SetLatency(2*time.Millisecond, 5*time.Millisecond)
		nodes = append(nodes, fakeNode(name, "manageable", func(s *schema.NodeSpec) { s.BMC.Address = addr; s.Power = "on" }))
	}
	inv := loaded(&schema.Inventory{Nodes: nodes, Site: &schema.Site{Spec: schema.SiteSpec{Concurrency: &schema.Concurrency{Global: 8, PerBMC: 2}}}})
	_, rep := r.pass(t.Context(), inv)
	if !rep.OK() {
		t.Fatalf("outcomes: %v", outcomes(rep))
	}
	for host, peak := range r.fleet.PeakPerHost() {
		if peak > 2 {
			t.Errorf("BMC %s saw %d concurrent calls, limit 2", host, peak)
		}
	}
}

// TestFleetCancelResume runs 50 nodes from nothing to their desired state
// through runs cancelled at random points, each resumed from the status
// the previous one wrote, with faults injected on a few nodes. No
// destructive step may run twice on a node.
func TestFleetCancelResume(t *testing.T) {
	r := newRig(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var nodes []*schema.Node
	for _, name := range names("n", 50) {
		r.fleet.Add(name).SetLatency(time.Duration(rng.IntN(300))*time.Microsecond, time.Duration(rng.IntN(500))*time.Microsecond)
		nodes = append(nodes, fakeNode(name, "active", func(s *schema.NodeSpec) { s.Provision.DeployTemplates = []string{"raid1"} }))
	}
	nodes[10].Spec.Retired = &schema.Reason{Reason: "EOL"}
	nodes[10].Spec.Provision = schema.Provision{State: "manageable"}
	nodes[20].Spec.Quarantine = &schema.Reason{Reason: "DIMM errors"}
	faulty := []string{"n030", "n031", "n032"}
	for _, n := range faulty {
		r.fleet.System(n).SetFaults(fake.Faults{Unreachable: true})
	}
	raid1 := &schema.DeployTemplate{Metadata: schema.Meta{Name: "raid1"}, Spec: schema.DeployTemplateSpec{Steps: []schema.Step{
		{Interface: "raid", Step: "create_configuration", Priority: 105, Args: &schema.RAIDArgs{LogicalDisks: []schema.LogicalDisk{{Name: "os", RAIDLevel: "1"}}}},
	}}}
	inv := &schema.Inventory{Nodes: nodes, Templates: []*schema.DeployTemplate{raid1},
		Site: &schema.Site{Spec: schema.SiteSpec{Concurrency: &schema.Concurrency{Global: 16}}}}

	converge := func(phase string) {
		t.Helper()
		for round := 0; ; round++ {
			if round == 300 {
				t.Fatalf("%s: no convergence after %d rounds", phase, round)
			}
			ctx, cancel := context.WithCancel(t.Context())
			r.rec.cancel, r.rec.cancelAt = cancel, r.rec.finished.Load()+1+rng.Int64N(60)
			p, rep := r.pass(ctx, inv)
			cancel()
			cleared := false
			for _, n := range rep.Nodes {
				cleared = cleared || n.Outcome == Healthy
			}
			if !p.HasChanges() && !cleared {
				return
			}
		}
	}
	converge("with faults")
	st := r.sink.Snapshot()
	for _, n := range faulty {
		if f := st[n].Fault; f == nil || f.Reason != "power failure: BMC unreachable" {
			t.Errorf("%s: fault = %+v, want BMC unreachable", n, f)
		}
	}
	for _, n := range faulty {
		r.fleet.System(n).SetFaults(fake.Faults{})
	}
	converge("after repair")

	st = r.sink.Snapshot()
	for _, n := range nodes {
		name := n.Name()
		s, ok := st[name]
		switch {
		case name == "n020":
			if ok {
				t.Errorf("quarantined node got status %+v", s)
			}
			if c := r.fleet.System(name).Counts().Calls; c != 0 {
				t.Errorf("quarantined node saw %d BMC calls", c)
			}
			continue
		case name == "n010":
			if s.ProvisionState != "manageable" || s.Power != "off" {
				t.Errorf("retired node: %s/%s, want manageable/off", s.ProvisionState, s.Power)
			}
			continue
		}
		if s.ProvisionState != "active" || s.Power != "on" || s.Fault != nil || s.Operation != nil {
			t.Errorf("%s: %s/%s fault %+v op %+v", name, s.ProvisionState, s.Power, s.Fault, s.Operation)
		}
		if diff := cmp.Diff([]string{"deploy.erase_devices_metadata", "deploy.write_image"}, r.agent.Ran(name)); diff != "" {
			t.Errorf("%s: destructive in-band steps repeated or missing (-want +got):\n%s", name, diff)
		}
		ops := r.fleet.System(name).Counts().Ops
		if ops["create-volume"] != 1 || ops["delete-volume"] != 0 {
			t.Errorf("%s: RAID calls %v, want exactly one volume created", name, ops)
		}
	}
	if r.rec.count(FaultCleared) != len(faulty) {
		t.Errorf("%d faults cleared, want %d", r.rec.count(FaultCleared), len(faulty))
	}
}

func TestBusyNodeSkipped(t *testing.T) {
	r := newRig(t)
	inv := loaded(&schema.Inventory{Nodes: []*schema.Node{fakeNode("n", "manageable", nil)}})
	if !r.ex.claim("n") {
		t.Fatal("claim failed")
	}
	_, rep := r.pass(t.Context(), inv)
	r.ex.release("n")
	if rep.Nodes[0].Outcome != Busy {
		t.Errorf("outcome = %v, want busy", rep.Nodes[0].Outcome)
	}
}

func TestRefreshReadOnly(t *testing.T) {
	r := newRig(t)
	r.fleet.Add("on").SetPowerState(drivers.PowerOn)
	r.fleet.Add("down").SetFaults(fake.Faults{Unreachable: true})
	inv := loaded(&schema.Inventory{Nodes: []*schema.Node{fakeNode("on", "active", nil), fakeNode("down", "active", nil)}})
	obs := reconcile.Observed{"down": {ProvisionState: "active", Power: "on"}}
	got, errs := r.ex.Refresh(t.Context(), inv, obs)
	if len(errs) != 1 || !errors.Is(errs[0], drivers.ErrUnreachable) {
		t.Errorf("errs = %v, want one unreachable", errs)
	}
	want := reconcile.Observed{"on": {Power: "on"}, "down": {ProvisionState: "active", Power: "on"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
	for _, n := range []string{"on", "down"} {
		if ops := r.fleet.System(n).Counts().Ops; len(ops) != 0 {
			t.Errorf("%s: refresh changed something: %v", n, ops)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want Class
	}{
		{fmt.Errorf("x: %w", drivers.ErrAuth), Stalled},
		{drivers.Unsupported("ipmi", "media"), Stalled},
		{fmt.Errorf("creds: %w", credentials.ErrMissing), Stalled},
		{Stall(errors.New("no agent")), Stalled},
		{fmt.Errorf("x: %w", drivers.ErrUnreachable), Transient},
		{fake.ErrServiceUnavailable, Transient},
		{context.DeadlineExceeded, Transient},
		{fmt.Errorf("agent: %w", Wait(time.Minute, "writing image")), Waiting},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if got := Sanitize(errors.New(`insert http://h/m.iso?token=abc: 500`)); got != "insert http://h/m.iso?[redacted] 500" {
		t.Errorf("sanitize = %q", got)
	}
	if got := Sanitize(errors.New(`unable to fetch the image http://[::1]:8080/media/AbCdEfGhIjKlMnOpQrStUvWxYz012345/r1-n01.iso: 404`)); got != "unable to fetch the image http://[::1]:8080/media/[redacted]/r1-n01.iso: 404" {
		t.Errorf("sanitize = %q", got)
	}
}

func TestCheckFresh(t *testing.T) {
	saved := plan.Plan{InventoryCommit: "c1", InventoryDigest: "i1", ObservedDigest: "o1"}
	if err := CheckFresh(saved, "c1", "i1", "o1"); err != nil {
		t.Errorf("fresh plan refused: %v", err)
	}
	for _, tc := range [][3]string{{"c2", "i1", "o1"}, {"c1", "i2", "o1"}, {"c1", "i1", "o2"}} {
		if err := CheckFresh(saved, tc[0], tc[1], tc[2]); !errors.Is(err, ErrStale) {
			t.Errorf("CheckFresh(%v) = %v, want ErrStale", tc, err)
		}
	}
}

// TestUnhealthy: which failures count towards an automatic fault.
func TestUnhealthy(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", drivers.ErrUnreachable), "BMC unreachable"},
		{fmt.Errorf("redfish: GET /redfish/v1/: 500: %w", drivers.ErrBMCFailing), "BMC failing (5xx)"},
		{fmt.Errorf("power: %w", ErrPowerNotApplied), "power change not taking effect"},
		{context.DeadlineExceeded, "BMC not answering in time"},
		{fmt.Errorf("x: %w", drivers.ErrAuth), ""},
		{errors.New("400 bad request"), ""},
	}
	for _, tt := range tests {
		if got, _ := unhealthy(tt.err); got != tt.want {
			t.Errorf("unhealthy(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
