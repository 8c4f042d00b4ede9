package fleet

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/schema"
)

func TestRows(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	node := func(name, file string, labels map[string]string) *schema.Node {
		return &schema.Node{Metadata: schema.Meta{Name: name}, Source: schema.Source{File: file}, Spec: schema.NodeSpec{
			Owner: "ops", Labels: labels, Power: "on",
			BMC:       schema.BMC{Address: "ipmi://10.0.0.9:623"},
			Provision: schema.Provision{State: "active"},
		}}
	}
	inv := &schema.Inventory{
		Nodes: []*schema.Node{
			node("a", "nodes/a.yaml", map[string]string{"rack": "r1"}),
			node("b", "nodes/row2/b.yaml", map[string]string{"rack": "r1", "role": "gpu"}),
			node("c", "nodes/row2/c.yaml", nil),
		},
		Status: map[string]*schema.NodeStatus{
			"a":    {Status: schema.NodeStatusBody{Updated: "2026-12-03T11:55:00Z", Power: "off", ProvisionState: "available"}},
			"b":    {Status: schema.NodeStatusBody{Updated: "not a time", Power: "on"}},
			"gone": {Status: schema.NodeStatusBody{Power: "on"}},
		},
	}
	age := int64(300)
	tests := []struct {
		name  string
		sel   string
		want  []string
		ages  []*int64
		racks []string
	}{
		{"all, without the status of removed nodes", "", []string{"a", "b", "c"}, []*int64{&age, nil, nil}, []string{"r1", "r1", "row2"}},
		{"one label", "rack=r1", []string{"a", "b"}, []*int64{&age, nil}, []string{"r1", "r1"}},
		{"every label must match", "rack=r1,role=gpu", []string{"b"}, []*int64{nil}, []string{"r1"}},
		{"no match", "rack=r2", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel := Selector{}
			if tt.sel != "" {
				var err error
				if sel, err = ParseSelector(tt.sel); err != nil {
					t.Fatal(err)
				}
			}
			rows := Rows(inv, Recorded(inv), sel, now)
			var got, racks []string
			var ages []*int64
			for _, r := range rows {
				got = append(got, r.Node)
				ages = append(ages, r.AgeSeconds)
				racks = append(racks, r.Rack)
				if r.Driver != "ipmi" || r.BMCHost != "10.0.0.9" {
					t.Errorf("%s: driver %q host %q", r.Node, r.Driver, r.BMCHost)
				}
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("nodes (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.ages, ages); d != "" {
				t.Errorf("ages (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.racks, racks); d != "" {
				t.Errorf("racks (-want +got):\n%s", d)
			}
		})
	}
	// Live status wins over the files: it is what the daemon holds.
	rows := Rows(inv, Live(reconcile.Observed{"c": {ProvisionState: "active"}}), nil, now)
	if rows[0].HasStatus || rows[2].ProvisionState != "active" {
		t.Errorf("live rows: %+v", rows)
	}
}

func TestParseSelector(t *testing.T) {
	tests := []struct {
		in      string
		want    Selector
		wantErr bool
	}{
		{"rack=r1", Selector{"rack": "r1"}, false},
		{"rack=r1,role=gpu", Selector{"rack": "r1", "role": "gpu"}, false},
		{"empty=", Selector{"empty": ""}, false},
		{"rack", nil, true},
		{"=r1", nil, true},
		{"rack!=r1", nil, true},
		{"rack==r1", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSelector(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseSelector(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if d := cmp.Diff(tt.want, got); !tt.wantErr && d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if !tt.wantErr && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestClass(t *testing.T) {
	tests := []struct {
		name string
		row  Row
		want Class
	}{
		{"no status", Row{DesiredState: "active"}, ClassNew},
		{"enroll", Row{HasStatus: true, ProvisionState: "enroll"}, ClassNew},
		{"active", Row{HasStatus: true, ProvisionState: "active"}, ClassActive},
		{"available", Row{HasStatus: true, ProvisionState: "available"}, ClassReady},
		{"manageable", Row{HasStatus: true, ProvisionState: "manageable"}, ClassReady},
		{"deploying", Row{HasStatus: true, ProvisionState: "deploying"}, ClassBusy},
		{"wait call-back", Row{HasStatus: true, ProvisionState: "wait call-back"}, ClassBusy},
		{"stable but targeting another", Row{HasStatus: true, ProvisionState: "available", Target: "active"}, ClassBusy},
		{"deploy failed", Row{HasStatus: true, ProvisionState: "deploy failed"}, ClassFailed},
		{"error", Row{HasStatus: true, ProvisionState: "error"}, ClassFailed},
		{"fault on an active node", Row{HasStatus: true, ProvisionState: "active", Fault: &schema.Fault{Failures: 3}}, ClassFailed},
		{"retired and parked", Row{HasStatus: true, ProvisionState: "manageable", Retired: "EOL"}, ClassRetired},
		{"retired but still active", Row{HasStatus: true, ProvisionState: "active", Retired: "EOL"}, ClassActive},
	}
	for _, tt := range tests {
		if got := tt.row.Class(); got != tt.want {
			t.Errorf("%s: Class() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestAge(t *testing.T) {
	tests := []struct {
		secs int64
		want string
	}{
		{-5, "0s"}, {0, "0s"}, {119, "119s"}, {120, "2m"}, {7199, "119m"}, {7200, "2h"}, {47 * 3600, "47h"}, {48 * 3600, "2d"}, {400 * 86400, "400d"},
	}
	for _, tt := range tests {
		if got := Age(&tt.secs); got != tt.want {
			t.Errorf("Age(%d) = %q, want %q", tt.secs, got, tt.want)
		}
	}
	if got := Age(nil); got != "-" {
		t.Errorf("Age(nil) = %q, want -", got)
	}
}
