package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

// plannedRAID is the map the planner puts in a software RAID step
// (reconcile.agentArgs), as read back from a saved plan.
func plannedRAID(t *testing.T, disks []schema.LogicalDisk, deleteExisting *bool) map[string]any {
	t.Helper()
	form := map[string]any{"raid_config": map[string]any{"logical_disks": disks}}
	if deleteExisting != nil {
		form["delete_existing"] = *deleteExisting
	}
	var m map[string]any
	if err := roundTrip(form, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCommandArgs(t *testing.T) {
	no := false
	tests := []struct {
		name    string
		step    plan.Agent
		want    any // decoded args; nil for none
		wantErr bool
	}{
		{name: "raid planner form",
			step: plan.Agent{Interface: "raid", Step: "apply_configuration", Args: plannedRAID(t, []schema.LogicalDisk{
				{Name: "root", RAIDLevel: "1", IsRootVolume: true, Controller: "software"},
				{Name: "data", RAIDLevel: "0", Size: 100, PhysicalDisks: []string{"/dev/vdb", "/dev/vdc"}, Controller: "software"},
			}, nil)},
			want: &agentapi.RAIDArgs{Delete: true, Volumes: []agentapi.RAIDVolume{
				{Name: "root", RAIDLevel: "1", Root: true},
				{Name: "data", RAIDLevel: "0", SizeGiB: 100, Disks: []string{"/dev/vdb", "/dev/vdc"}},
			}}},
		{name: "raid metalsync form, keep existing",
			step: plan.Agent{Interface: "raid", Step: "create_configuration", Args: map[string]any{
				"delete_existing": false, "volumes": []any{map[string]any{"name": "r", "raid_level": "RAID1", "size_gib": 20, "drives": []any{"a", "b"}}}}},
			want: &agentapi.RAIDArgs{Volumes: []agentapi.RAIDVolume{{Name: "r", RAIDLevel: "1", SizeGiB: 20, Disks: []string{"a", "b"}}}}},
		{name: "raid typed args",
			step: plan.Agent{Interface: "raid", Step: "apply_configuration", Args: map[string]any{
				"logical_disks": []schema.LogicalDisk{{RAIDLevel: "10"}}, "delete_existing": &no}},
			want: &agentapi.RAIDArgs{Volumes: []agentapi.RAIDVolume{{RAIDLevel: "10"}}}},
		{name: "raid without volumes", step: plan.Agent{Interface: "raid", Step: "apply_configuration", Args: map[string]any{}}, wantErr: true},
		{name: "raid bad level", step: plan.Agent{Interface: "raid", Step: "apply_configuration", Args: map[string]any{
			"volumes": []any{map[string]any{"raid_level": "7"}}}}, wantErr: true},
		{name: "raid delete", step: plan.Agent{Interface: "raid", Step: "delete_configuration"},
			want: &agentapi.RAIDArgs{Delete: true}},
		{name: "inspect keeps its token", step: plan.Agent{Interface: "inspect", Step: "inspect", Args: map[string]any{"token": "t"}}},
		{name: "erase", step: plan.Agent{Interface: "deploy", Step: "erase_devices"}},
		{name: "unknown goes as is", step: plan.Agent{Interface: "deploy", Step: "future", Args: map[string]any{"x": 1.0}},
			want: &map[string]any{"x": 1.0}},
		{name: "write_image without checksum", step: plan.Agent{Interface: "deploy", Step: "write_image", Args: map[string]any{"url": "u"}}, wantErr: true},
	}
	e := newEnv(t, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := e.srv.Agent().command(t.Context(), "n1", "c1", &tt.step)
			if tt.wantErr {
				if apply.Classify(err) != apply.Stalled {
					t.Fatalf("error %v, want a stalled one", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cmd.ID != "c1" || cmd.Interface != tt.step.Interface || cmd.Step != tt.step.Step {
				t.Fatalf("command %+v", cmd)
			}
			if tt.want == nil {
				if cmd.Args != nil {
					t.Fatalf("args %s, want none", cmd.Args)
				}
				return
			}
			var got any
			switch tt.want.(type) {
			case *agentapi.RAIDArgs:
				got = &agentapi.RAIDArgs{}
			case *map[string]any:
				got = &map[string]any{}
			}
			if err := json.Unmarshal(cmd.Args, got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("args (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWriteImageFetchFails: an image that cannot be fetched now is
// retried; one whose bytes or format are wrong needs a person, since
// fetching it again gives the same answer. No command reaches the agent.
func TestWriteImageFetchFails(t *testing.T) {
	e := newEnv(t, "")
	e.allow(t, "n1", "e1")
	e.images.add("https://images.example/os.raw", []byte("image bytes"))
	tests := []struct {
		name          string
		url, sum, fmt string
		want          apply.Class
	}{
		{"unreachable", "https://images.example/missing.raw", "sha256:00", "raw", apply.Transient},
		{"checksum mismatch", "https://images.example/os.raw", "sha256:" + strings.Repeat("ab", 32), "raw", apply.Stalled},
		{"refused format", "https://images.example/os.raw", "sha256:00", "vmdk", apply.Stalled},
	}
	for _, tt := range tests {
		_, err := e.srv.Agent().RunStep(t.Context(), "n1", "c-"+tt.name, agentStep("deploy", "write_image", map[string]any{
			"url": tt.url, "checksum": tt.sum, "format": tt.fmt}))
		if err == nil || apply.Classify(err) != tt.want {
			t.Errorf("%s: RunStep error %v, want a %s one", tt.name, err, tt.want)
		}
	}
	e.srv.mu.Lock()
	queued := len(e.srv.nodes["n1"].queue)
	e.srv.mu.Unlock()
	if queued != 0 {
		t.Fatalf("%d commands queued for an image that failed", queued)
	}
}
