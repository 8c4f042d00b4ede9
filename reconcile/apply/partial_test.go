package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/fake"
	"metalsync.dev/metalsync/drivers/redfish"
	"metalsync.dev/metalsync/internal/clock/clocktest"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/sim/redfishsim"
)

// bmcError is a BMC's answer as the Redfish driver reports it.
func bmcError(status int, class error, retryAfter time.Duration, message string) *drivers.BMCError {
	return &drivers.BMCError{Op: "GET /redfish/v1/Systems/1", StatusCode: status, Status: fmt.Sprintf("%d", status),
		Message: message, RetryAfter: retryAfter, Class: class}
}

// TestClassifyBMCErrors: a permanent refusal stalls the step at once,
// whatever wraps it; the BMC's own failures, 429 and the network are
// retried; only the BMC's failures and the network count towards a fault.
func TestClassifyBMCErrors(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		class     Class
		unhealthy bool
	}{
		{"400", bmcError(400, drivers.ErrPermanent, 0, "The value 'x' is not allowed"), Stalled, false},
		{"401", bmcError(401, drivers.ErrAuth, 0, ""), Stalled, false},
		{"403", bmcError(403, drivers.ErrPermanent, 0, "needs ConfigureComponents"), Stalled, false},
		{"404 system", bmcError(404, drivers.ErrPermanent, 0, "The resource at the URI /redfish/v1/Systems/1 was not found."), Stalled, false},
		{"405", bmcError(405, drivers.ErrPermanent, 0, ""), Stalled, false},
		{"501", bmcError(501, drivers.ErrPermanent, 0, ""), Stalled, false},
		{"500 action not supported", bmcError(500, drivers.ErrPermanent, 0, "not supported"), Stalled, false},
		{"404 wrapped", fmt.Errorf("node n1: inspect: %w", bmcError(404, drivers.ErrPermanent, 0, "")), Stalled, false},
		{"500", bmcError(500, drivers.ErrBMCFailing, 0, "internal error"), Transient, true},
		{"503 retry-after", bmcError(503, drivers.ErrBMCFailing, 20*time.Second, ""), Transient, true},
		{"429 retry-after", bmcError(429, nil, 3*time.Second, ""), Transient, false},
		{"409 resource in use", bmcError(409, nil, 0, "busy"), Transient, false},
		{"connection reset", fmt.Errorf("GET /redfish/v1/Systems/1: connection reset by peer: %w", drivers.ErrUnreachable), Transient, true},
		{"timeout", fmt.Errorf("GET /redfish/v1/Systems/1: %w", context.DeadlineExceeded), Transient, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.class {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.class)
			}
			if _, got := unhealthy(tt.err); got != tt.unhealthy {
				t.Errorf("unhealthy(%v) = %v, want %v", tt.err, got, tt.unhealthy)
			}
		})
	}
}

// invScript makes a fake BMC's Inventory answer errors: errs in order,
// then always sticky when set, else the fake's inventory. It counts the
// calls and notes the executor's clock at each.
type invScript struct {
	clock *clocktest.Fake

	mu     sync.Mutex
	errs   []error     // guarded by mu
	sticky error       // guarded by mu
	at     []time.Time // guarded by mu
}

func (s *invScript) next() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, s.clock.Now())
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return err
	}
	return s.sticky
}

func (s *invScript) calls() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.at)
}

// scriptedBMC is a fake BMC whose inventory answers what its script says.
type scriptedBMC struct {
	*fake.BMC
	script *invScript
}

func (b scriptedBMC) Inventory(ctx context.Context) (drivers.Inventory, error) {
	if err := b.script.next(); err != nil {
		return drivers.Inventory{}, err
	}
	return b.BMC.Inventory(ctx)
}

// scriptInventory makes the rig's fake driver answer inventory reads from
// a script.
func scriptInventory(r *rig, errs []error, sticky error) *invScript {
	s := &invScript{clock: r.ex.Clock.(*clocktest.Fake), errs: errs, sticky: sticky}
	entry := r.fleet.Entry()
	open := entry.Open
	entry.Open = func(ctx context.Context, cfg drivers.Config) (drivers.BMC, error) {
		b, err := open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return scriptedBMC{BMC: b.(*fake.BMC), script: s}, nil
	}
	r.ex.Registry = drivers.Registry{"fake": entry}
	return s
}

// TestInspectionFailure: an inspection refused for good fails at once
// (one request) and lands in inspect failed with the BMC's message; one
// whose retries run out lands there too, each attempt counting towards the
// fault threshold; either way the node's power is enforced at the next
// pass, before the inspection is tried again.
func TestInspectionFailure(t *testing.T) {
	tests := []struct {
		name      string
		errs      []error
		sticky    error
		threshold int
		calls     int    // inventory reads in the first pass
		state     string // provision state after the first pass
		lastError string
		fault     bool
	}{
		{name: "404 on the system", sticky: bmcError(404, drivers.ErrPermanent, 0, "The resource at the URI /redfish/v1/Systems/1 was not found."),
			threshold: 3, calls: 1, state: "inspect failed", lastError: "404: The resource at the URI /redfish/v1/Systems/1 was not found."},
		{name: "501 on the system", sticky: bmcError(501, drivers.ErrPermanent, 0, ""),
			threshold: 3, calls: 1, state: "inspect failed", lastError: "GET /redfish/v1/Systems/1: 501"},
		{name: "500 until retries run out", sticky: bmcError(500, drivers.ErrBMCFailing, 0, "internal error"),
			threshold: 10, calls: 4, state: "inspect failed", lastError: "inspect: 4 attempts: GET /redfish/v1/Systems/1: 500: internal error"},
		{name: "500 until the fault threshold", sticky: bmcError(500, drivers.ErrBMCFailing, 0, "internal error"),
			threshold: 2, calls: 2, state: "inspecting", lastError: "automatic fault: BMC failing (5xx)", fault: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.ex.FaultThreshold = tt.threshold
			script := scriptInventory(r, tt.errs, tt.sticky)
			sys := r.fleet.Add("n1") // powered off
			inv := &schema.Inventory{Nodes: []*schema.Node{fakeNode("n1", "manageable", func(s *schema.NodeSpec) { s.Power = "on" })}}

			p, rep := r.pass(t.Context(), inv)
			if got := len(script.calls()); got != tt.calls {
				t.Errorf("inventory reads = %d, want %d", got, tt.calls)
			}
			st := r.sink.Snapshot()["n1"]
			if st.ProvisionState != tt.state {
				t.Fatalf("provision state = %q, want %q (plan %+v, report %s)", st.ProvisionState, tt.state, p.Nodes[0].Operations, outcomes(rep))
			}
			if !strings.Contains(st.LastError, tt.lastError) {
				t.Errorf("lastError = %q, want it to contain %q", st.LastError, tt.lastError)
			}
			if (st.Fault != nil) != tt.fault {
				t.Fatalf("fault = %+v, want fault %v", st.Fault, tt.fault)
			}
			if tt.fault {
				return // a faulted node is only probed until it answers
			}
			if got := rep.Nodes[0].Outcome; got != Failed {
				t.Errorf("outcome = %v, want %v", got, Failed)
			}
			if sys.PowerState() != drivers.PowerOff {
				t.Fatalf("power changed while the first inspection ran")
			}

			// Next pass: power first, then the inspection again.
			p, _ = r.pass(t.Context(), inv)
			var kinds []string
			for _, op := range p.Nodes[0].Operations {
				kinds = append(kinds, op.Kind.String())
			}
			if want := []string{"power", "inspect"}; !slices.Equal(kinds, want) {
				t.Errorf("second plan = %q, want %q", kinds, want)
			}
			if got := sys.PowerState(); got != drivers.PowerOn {
				t.Errorf("power after the second pass = %s, want on", got)
			}
			if got := sys.Counts().Ops["power on"]; got != 1 {
				t.Errorf("power on ran %d times, want 1", got)
			}
			st = r.sink.Snapshot()["n1"]
			if st.ProvisionState != "inspect failed" || st.Power != "on" {
				t.Errorf("status after the second pass: %s, power %s; want inspect failed, power on", st.ProvisionState, st.Power)
			}
		})
	}
}

// TestRetryAfterHonoured: a 503 or 429 with Retry-After is retried no
// sooner than the BMC asked, even when the backoff would be shorter.
func TestRetryAfterHonoured(t *testing.T) {
	tests := []struct {
		name string
		err  error
		min  time.Duration
	}{
		{"503 retry-after 20s", bmcError(503, drivers.ErrBMCFailing, 20*time.Second, "session limit"), 20 * time.Second},
		{"429 retry-after 3s", bmcError(429, nil, 3*time.Second, ""), 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			script := scriptInventory(r, []error{tt.err}, nil)
			inv := &schema.Inventory{Nodes: []*schema.Node{fakeNode("n1", "manageable", nil)}}
			_, rep := r.pass(t.Context(), inv)
			if !rep.OK() {
				t.Fatalf("pass: %v", outcomes(rep))
			}
			at := script.calls()
			if len(at) != 2 {
				t.Fatalf("inventory reads = %d, want 2", len(at))
			}
			if gap := at[1].Sub(at[0]); gap < tt.min {
				t.Errorf("retried after %s, want at least %s", gap, tt.min)
			}
			if st := r.sink.Snapshot()["n1"]; st.ProvisionState != "manageable" || st.Inspect == nil {
				t.Errorf("status = %s, inspect %+v; want manageable and inspected", st.ProvisionState, st.Inspect)
			}
		})
	}
}

// TestInspectionDegradesRedfish runs the Redfish driver against the
// simulator: a section the BMC links but cannot serve is a warning in
// status and the node reaches manageable; NICs that could not be read
// turn the MAC guard off with a note in the next plan.
func TestInspectionDegradesRedfish(t *testing.T) {
	tests := []struct {
		name     string
		sections map[redfishsim.Section]int
		warnings []string
		guardOff bool
	}{
		{name: "complete"},
		{name: "memory 404", sections: map[redfishsim.Section]int{redfishsim.SectionMemory: 404},
			warnings: []string{"memory: not read: GET /redfish/v1/Systems/sys-0001/Memory: 404 not found"}},
		{name: "processors 501", sections: map[redfishsim.Section]int{redfishsim.SectionProcessors: 501},
			warnings: []string{"processors: not read: GET /redfish/v1/Systems/sys-0001/Processors: 501 not implemented"}},
		{name: "NICs 404", sections: map[redfishsim.Section]int{redfishsim.SectionNICs: 404},
			warnings: []string{"network: not read: GET /redfish/v1/Systems/sys-0001/EthernetInterfaces: 404"}, guardOff: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, err := redfishsim.New(redfishsim.Config{
				Systems:  redfishsim.Systems(1, redfishsim.SystemConfig{Sections: tt.sections}),
				Username: "admin", Password: testPassword,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sim.Close)
			l, err := sim.Listen("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })

			r := newRig(t)
			r.ex.Registry = drivers.Registry{"redfish": {Open: redfish.Open, Capabilities: redfish.Capabilities()}}
			r.ex.AgentFor = func(string) Agent { return r.agent }
			node := func(state string) *schema.Inventory {
				n := fakeNode("n1", state, func(s *schema.NodeSpec) {
					s.BMC.Address = l.BMCURL("sys-0001")
					s.Network = &schema.Network{Links: []schema.Link{{Name: "eno1", Type: schema.LinkPhy, MAC: "52:54:00:00:00:99", Addresses: []string{"192.0.2.10/24"}}}}
				})
				return loaded(&schema.Inventory{Nodes: []*schema.Node{n}})
			}

			// Enroll and inspect.
			_, rep := r.pass(t.Context(), node("manageable"))
			if !rep.OK() {
				t.Fatalf("pass: %v", outcomes(rep))
			}
			st := r.sink.Snapshot()["n1"]
			if st.ProvisionState != "manageable" || st.LastError != "" || st.Inspect == nil {
				t.Fatalf("status = %s, lastError %q, inspect %+v; want manageable, inspected", st.ProvisionState, st.LastError, st.Inspect)
			}
			if len(st.Inspect.Warnings) != len(tt.warnings) {
				t.Fatalf("warnings = %q, want %d like %q", st.Inspect.Warnings, len(tt.warnings), tt.warnings)
			}
			for i, w := range tt.warnings {
				if !strings.Contains(st.Inspect.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, st.Inspect.Warnings[i], w)
				}
			}
			if _, ok := st.Inspect.Inventory["warnings"]; ok {
				t.Errorf("warnings kept in the inventory too: %v", st.Inspect.Inventory)
			}
			if got, _ := st.Inspect.Inventory["nicsUnknown"].(bool); got != tt.guardOff {
				t.Errorf("inventory nicsUnknown = %v, want %v", got, tt.guardOff)
			}
			b, err := schema.MarshalStatus(&schema.NodeStatus{Metadata: schema.Meta{Name: "n1"}, Status: st})
			if err != nil {
				t.Fatal(err)
			}
			if tt.warnings != nil && !strings.Contains(string(b), "    warnings:\n    - ") {
				t.Errorf("status file shows no warnings:\n%s", b)
			}

			// The next plan: the inspected NICs guard the network config,
			// or, when the BMC did not report them, a note says the guard
			// is off.
			p := reconcile.Plan(node("available"), reconcile.Observed(r.sink.Snapshot()), r.ex.Capabilities(), r.ex.clock().Now())
			np := p.Nodes[0]
			var notes []string
			for _, note := range np.Notes {
				notes = append(notes, note.Message)
			}
			gotOff := slices.ContainsFunc(notes, func(m string) bool { return strings.HasPrefix(m, "MAC guard off: the BMC did not report NICs") })
			switch {
			case tt.guardOff && (!gotOff || np.Error != ""):
				t.Errorf("plan with unknown NICs: notes %q, error %q; want the guard-off note and no error", notes, np.Error)
			case !tt.guardOff && (gotOff || !strings.Contains(np.Error, "which inspection did not find")):
				t.Errorf("plan with known NICs: notes %q, error %q; want the MAC guard to refuse 52:54:00:00:00:99", notes, np.Error)
			}
			if tt.guardOff && (len(np.Operations) == 0 || np.Operations[0].Kind != plan.KindClean) {
				t.Errorf("plan with unknown NICs: %+v, want a clean", np.Operations)
			}
		})
	}
}
