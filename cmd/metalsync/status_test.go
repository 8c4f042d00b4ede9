package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/schema"
)

func TestStatusRows(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	node := func(name string, labels map[string]string) *schema.Node {
		return &schema.Node{Metadata: schema.Meta{Name: name}, Spec: schema.NodeSpec{
			Owner: "ops", Labels: labels, Power: "on",
			BMC:       schema.BMC{Address: "ipmi://10.0.0.9:623"},
			Provision: schema.Provision{State: "active"},
		}}
	}
	inv := &schema.Inventory{
		Nodes: []*schema.Node{node("a", map[string]string{"rack": "r1"}), node("b", map[string]string{"rack": "r1", "role": "gpu"}), node("c", nil)},
		Status: map[string]*schema.NodeStatus{
			"a":    {Status: schema.NodeStatusBody{Updated: "2026-12-03T11:55:00Z", Power: "off", ProvisionState: "available"}},
			"b":    {Status: schema.NodeStatusBody{Updated: "not a time", Power: "on"}},
			"gone": {Status: schema.NodeStatusBody{Power: "on"}},
		},
	}
	age := int64(300)
	tests := []struct {
		name   string
		labels []labelMatch
		want   []string
		ages   []*int64
	}{
		{"all, without the status of removed nodes", nil, []string{"a", "b", "c"}, []*int64{&age, nil, nil}},
		{"one label", []labelMatch{{"rack", "r1"}}, []string{"a", "b"}, []*int64{&age, nil}},
		{"every label must match", []labelMatch{{"rack", "r1"}, {"role", "gpu"}}, []string{"b"}, []*int64{nil}},
		{"no match", []labelMatch{{"rack", "r2"}}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := statusRows(inv, tt.labels, now)
			var got []string
			var ages []*int64
			for _, r := range rows {
				got = append(got, r.Node)
				ages = append(ages, r.AgeSeconds)
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
		})
	}
}

func TestLabelFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    []labelMatch
		wantErr bool
	}{
		{"rack=r1", []labelMatch{{"rack", "r1"}}, false},
		{"rack=r1,role=gpu", []labelMatch{{"rack", "r1"}, {"role", "gpu"}}, false},
		{"empty=", []labelMatch{{"empty", ""}}, false},
		{"rack", nil, true},
		{"=r1", nil, true},
		{"rack!=r1", nil, true},
		{"rack==r1", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got []labelMatch
			err := labelFlag{&got}.Set(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Set(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if d := cmp.Diff(tt.want, got, cmp.AllowUnexported(labelMatch{})); !tt.wantErr && d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestAgeText(t *testing.T) {
	tests := []struct {
		secs int64
		want string
	}{
		{-5, "0s"}, {0, "0s"}, {119, "119s"}, {120, "2m"}, {7199, "119m"}, {7200, "2h"}, {47 * 3600, "47h"}, {48 * 3600, "2d"}, {400 * 86400, "400d"},
	}
	for _, tt := range tests {
		if got := ageText(&tt.secs); got != tt.want {
			t.Errorf("ageText(%d) = %q, want %q", tt.secs, got, tt.want)
		}
	}
	if got := ageText(nil); got != "-" {
		t.Errorf("ageText(nil) = %q, want -", got)
	}
}

// TestStatusWatch: --watch prints the table, then again once a status
// file changes, and exits 0 when its context ends.
func TestStatusWatch(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"metalsync.yaml":  "apiVersion: metalsync.dev/v1alpha1\nkind: Site\nmetadata: {name: test}\nspec:\n  credentials: {sets: {bmc: {env: {username: U, password: P}}}}\n",
		"owners/ops.yaml": "apiVersion: metalsync.dev/v1alpha1\nkind: Owner\nmetadata:\n  name: ops\nspec:\n  members: [{email: ops@example.net}]\n",
		"nodes/n1.yaml":   "apiVersion: metalsync.dev/v1alpha1\nkind: Node\nmetadata:\n  name: n1\nspec:\n  bmc:\n    address: fake://n1\n    credentialsRef: {set: bmc}\n  owner: ops\n  power: \"on\"\n  provision:\n    state: manageable\n",
		"status/n1.yaml":  statusFile("off"),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}
	pr, pw := io.Pipe()
	env := &Env{Stdio: Stdio{Out: pw, Err: io.Discard}, Getenv: func(k string) string {
		if k == "METALSYNC_CACHE" {
			return "off"
		}
		return ""
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() {
		exit <- runStatus(ctx, []string{"--watch", dir}, env)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	waitFor := func(want string) {
		t.Helper()
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), "n1 ") && strings.Contains(lines.Text(), want) {
				return
			}
		}
		t.Fatalf("no row of n1 with %q: %v", want, lines.Err())
	}
	waitFor(" on/off ")
	writeFile(t, filepath.Join(dir, "status/n1.yaml"), statusFile("on"))
	waitFor(" on/on ")
	cancel()
	go io.Copy(io.Discard, pr) // drain whatever is printed until it returns
	if code := <-exit; code != exitOK {
		t.Errorf("exit %d, want %d", code, exitOK)
	}
}

func statusFile(power string) string {
	return "apiVersion: metalsync.dev/v1alpha1\nkind: NodeStatus\nmetadata:\n  name: n1\nstatus:\n  power: \"" + power + "\"\n  provisionState: manageable\n"
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
