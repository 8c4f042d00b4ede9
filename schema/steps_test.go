package schema

import (
	"encoding/json"
	"testing"

	"cuelang.org/go/cue"
	"github.com/google/go-cmp/cmp"
)

// TestStepCatalogue keeps the Go table of steps in step with #Steps in the
// CUE schema: the same (interface, step) pairs, and arguments on the same
// ones.
func TestStepCatalogue(t *testing.T) {
	c, err := compile()
	if err != nil {
		t.Fatal(err)
	}
	steps := c.ctx.CompileBytes(schemaSource).LookupPath(cue.ParsePath("#Steps"))
	got := map[string]bool{} // "iface.step" -> takes args
	ifaces, err := steps.Fields(cue.Definitions(false))
	if err != nil {
		t.Fatal(err)
	}
	for ifaces.Next() {
		it, err := ifaces.Value().Fields(cue.Optional(true))
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			hasArgs := it.Value().LookupPath(cue.MakePath(cue.Str("args").Required())).Exists()
			got[ifaces.Selector().Unquoted()+"."+it.Selector().Unquoted()] = hasArgs
		}
	}
	want := map[string]bool{}
	for _, k := range stepCatalogue() {
		want[k.iface+"."+k.step] = k.args != nil
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("#Steps in schema.cue and stepCatalogue differ (-go +cue):\n%s", d)
	}
}

// TestStepJSON decodes every form of arguments and checks that the
// decoded step survives a round trip through its JSON form (the loader's
// cache stores that form).
func TestStepJSON(t *testing.T) {
	yes := true
	tests := []struct {
		name string
		in   string
		want Step
	}{
		{"bios map", `{"interface":"bios","step":"apply_configuration","priority":110,"args":{"settings":{"A":"x","B":2}}}`,
			Step{Interface: "bios", Step: "apply_configuration", Priority: 110, Args: &BIOSArgs{Settings: BIOSSettings{"A": "x", "B": float64(2)}}}},
		{"bios list", `{"interface":"bios","step":"apply_configuration","priority":110,"args":{"settings":[{"name":"A","value":true}]}}`,
			Step{Interface: "bios", Step: "apply_configuration", Priority: 110, Args: &BIOSArgs{Settings: BIOSSettings{"A": true}}}},
		{"raid volumes", `{"interface":"raid","step":"create_configuration","priority":1,"args":{"volumes":[{"name":"os","raid_level":"RAID1","size_gib":200,"drives":["a","b"]}]}}`,
			Step{Interface: "raid", Step: "create_configuration", Priority: 1, Args: &RAIDArgs{LogicalDisks: []LogicalDisk{{Name: "os", RAIDLevel: "1", Size: 200, PhysicalDisks: []string{"a", "b"}}}}}},
		{"raid logical disks", `{"interface":"raid","step":"create_configuration","priority":1,"args":{"delete_existing":true,"logical_disks":[{"volume_name":"d","raid_level":6,"size_gb":"MAX","physical_disks":["a"]}]}}`,
			Step{Interface: "raid", Step: "create_configuration", Priority: 1, Args: &RAIDArgs{DeleteExisting: &yes, LogicalDisks: []LogicalDisk{{Name: "d", RAIDLevel: "6", PhysicalDisks: []string{"a"}}}}}},
		{"raid config", `{"interface":"raid","step":"apply_configuration","priority":1,"args":{"raid_config":{"logical_disks":[{"raid_level":"1","controller":"software","is_root_volume":true}]}}}`,
			Step{Interface: "raid", Step: "apply_configuration", Priority: 1, Args: &RAIDArgs{LogicalDisks: []LogicalDisk{{RAIDLevel: "1", Controller: "software", IsRootVolume: true}}}}},
		{"boot device", `{"interface":"management","step":"set_boot_device","priority":1,"args":{"device":"pxe","persistent":true}}`,
			Step{Interface: "management", Step: "set_boot_device", Priority: 1, Args: &BootDeviceArgs{Device: "pxe", Persistent: true}}},
		{"firmware", `{"interface":"firmware","step":"update","priority":1,"args":{"url":"https://fw/x.bin","targets":["BIOS"]}}`,
			Step{Interface: "firmware", Step: "update", Priority: 1, Args: &FirmwareArgs{URL: "https://fw/x.bin", Targets: []string{"BIOS"}}}},
		{"no args", `{"interface":"deploy","step":"erase_devices_metadata","priority":98}`,
			Step{Interface: "deploy", Step: "erase_devices_metadata", Priority: 98}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Step
			if err := json.Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("decode (-want +got):\n%s", d)
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			var again Step
			if err := json.Unmarshal(b, &again); err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			if d := cmp.Diff(got, again); d != "" {
				t.Errorf("round trip through %s (-first +second):\n%s", b, d)
			}
		})
	}
	for _, bad := range []string{
		`{"interface":"bios","step":"nope","priority":1}`,
		`{"interface":"deploy","step":"write_image","priority":1,"args":{"x":1}}`,
		`{"interface":"raid","step":"create_configuration","priority":1,"args":{"volumes":[{"raid_level":"7"}]}}`,
	} {
		var s Step
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("decoding %s: no error", bad)
		}
	}
}
