package plan

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEnumsRoundTrip(t *testing.T) {
	for a := ActionVerify; a <= ActionFirmware; a++ {
		b, err := a.MarshalText()
		if err != nil {
			t.Fatalf("%d: %v", a, err)
		}
		var back Action
		if err := back.UnmarshalText(b); err != nil || back != a {
			t.Errorf("action %s: got %v, %v", a, back, err)
		}
	}
	for k := KindEnroll; k <= KindForget; k++ {
		var back Kind
		b, _ := k.MarshalText()
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("kind %s: got %v, %v", k, back, err)
		}
	}
	for r := ReasonNewNode; r <= ReasonCapability; r++ {
		var back Reason
		b, _ := r.MarshalText()
		if err := back.UnmarshalText(b); err != nil || back != r {
			t.Errorf("reason %s: got %v, %v", r, back, err)
		}
	}
	if _, err := Action(0).MarshalText(); err == nil {
		t.Error("Action(0).MarshalText() succeeded")
	}
	var a Action
	if err := a.UnmarshalText([]byte("reformat")); err == nil {
		t.Error("unknown action parsed")
	}
	if got := Reason(99).String(); got != "Reason(99)" {
		t.Errorf("Reason(99).String() = %q", got)
	}
}

func TestStepValidate(t *testing.T) {
	to := Duration(time.Minute)
	tests := []struct {
		name string
		step Step
		want string // substring of the error; "" for valid
	}{
		{"power", Step{Action: ActionPower, Timeout: to, Power: &Power{Action: PowerActionOn}}, ""},
		{"eject", Step{Action: ActionEjectMedia, Timeout: to, Media: &Media{Kind: "cd"}}, ""},
		{"none", Step{Action: ActionPower, Timeout: to}, "no operation"},
		{"two", Step{Action: ActionPower, Timeout: to, Power: &Power{Action: PowerActionOn}, Boot: &Boot{Device: "cd"}}, "2 operations"},
		{"mismatch", Step{Action: ActionSetBoot, Timeout: to, Power: &Power{Action: PowerActionOn}}, "holds a power operation"},
		{"bad power", Step{Action: ActionPower, Timeout: to, Power: &Power{Action: "explode"}}, "unknown power action"},
		{"no timeout", Step{Action: ActionVerify, Verify: &Verify{}}, "no timeout"},
		{"zero action", Step{Verify: &Verify{}, Timeout: to}, "invalid action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.step.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestMarshalVersioned(t *testing.T) {
	p := Plan{InventoryCommit: "abc", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Nodes: []NodePlan{{
		Node: "n1", From: "enroll", To: "manageable",
		Operations: []Operation{{Kind: KindEnroll, Reason: ReasonNewNode, From: "enroll", To: "manageable",
			Steps: []Step{{Action: ActionVerify, State: "verifying", Timeout: Duration(30 * time.Second), Verify: &Verify{}}}}},
	}}}
	b, err := Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"format_version": "1"`, `"action": "verify"`, `"timeout": "30s"`, `"kind": "enroll"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	back, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	p.FormatVersion = FormatVersion
	if diff := cmp.Diff(p, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	old := strings.Replace(string(b), `"format_version": "1"`, `"format_version": "0"`, 1)
	if _, err := Unmarshal([]byte(old)); !errors.Is(err, ErrFormatVersion) {
		t.Errorf("Unmarshal(version 0) = %v, want ErrFormatVersion", err)
	}
	bad := strings.Replace(string(b), `"verify": {}`, `"verify": {}, "power": {"action": "on"}`, 1)
	if _, err := Unmarshal([]byte(bad)); err == nil || !strings.Contains(err.Error(), "2 operations") {
		t.Errorf("Unmarshal(two payloads) = %v", err)
	}
}

func TestSummaryLine(t *testing.T) {
	op := func(k Kind, r Reason) Operation { return Operation{Kind: k, Reason: r} }
	p := Plan{Nodes: []NodePlan{
		{Node: "a", Operations: []Operation{op(KindEnroll, ReasonNewNode), op(KindDeploy, ReasonProvisionChanged)}},
		{Node: "b", Operations: []Operation{op(KindEnroll, ReasonNewNode)}},
		{Node: "c", Operations: []Operation{op(KindUndeploy, ReasonRetired)}},
		{Node: "d", Operations: []Operation{op(KindPower, ReasonPowerDrift)}},
		{Node: "e", Notes: []Note{{Reason: ReasonQuarantined}}},
		{Node: "f", Error: "boom"},
	}}
	want := "Plan: 2 to enroll, 1 to deploy, 1 to undeploy, 1 to retire, 1 power change; 1 quarantined (no action), 1 node with errors."
	if got := p.Summarize().Line(); got != want {
		t.Errorf("Line() =\n%q\nwant\n%q", got, want)
	}
	if got := (Plan{}).Summarize().Line(); got != "Plan: no changes." {
		t.Errorf("empty Line() = %q", got)
	}
}
