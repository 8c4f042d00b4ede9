package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"
	"testing/fstest"

	"cuelang.org/go/cue/cuecontext"
	cueyaml "cuelang.org/go/encoding/yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"metalsync.dev/metalsync/schema"
)

// compileJSONSchema generates the JSON Schema of kind ("" for every kind)
// and compiles it with an independent JSON Schema validator.
func compileJSONSchema(t *testing.T, kind string) *jsonschema.Schema {
	t.Helper()
	b, err := jsonSchema(kind)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatalf("compile the generated JSON Schema of %q: %v", kind, err)
	}
	return s
}

// yamlInstance reads a YAML file the way the loader does (CUE's YAML
// decoder: `on` stays a string) and returns it as a JSON Schema instance.
func yamlInstance(t *testing.T, name string, data []byte) any {
	t.Helper()
	f, err := cueyaml.Extract(name, data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	v := cuecontext.New().BuildFile(f)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return inst
}

func exampleFS(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	root := os.DirFS("../../inventory-example")
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".yaml" {
			return err
		}
		b, err := fs.ReadFile(root, p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// kindOf is the kind a file of the example is, by its directory.
func kindOf(file string) string {
	switch {
	case strings.HasPrefix(file, "nodes/"):
		return schema.KindNode
	case strings.HasPrefix(file, "owners/"):
		return schema.KindOwner
	case strings.HasPrefix(file, "templates/"):
		return schema.KindDeployTemplate
	case strings.HasPrefix(file, "status/"):
		return schema.KindNodeStatus
	}
	return schema.KindSite
}

// A status file as the daemon writes it: the JSON Schema of NodeStatus
// accepts it too.
const exampleStatus = `apiVersion: metalsync.dev/v1alpha1
kind: NodeStatus
metadata:
  name: r1-n01
status:
  commit: 0123456789abcdef0123456789abcdef01234567
  updated: "2026-11-01T00:00:00Z"
  power: "on"
  provisionState: active
  target: active
  operation:
    kind: deploy
    step: 2
    steps: [power_off, insert_media, power_on]
    intent: {step: write_image, id: c-1}
  fault: {reason: BMC unreachable, failures: 3}
  inspect: {at: "2026-11-01T00:00:00Z", inventory: {cpus: 2}}
  deployed: {image: https://img.example.net/a.raw, steps: [deploy.deploy]}
  media: {sha256: abc, kind: configdrive}
`

// TestSchemaJSONAcceptsExample: every file of inventory-example passes
// the generated JSON Schema, both the one for every kind and its kind's own.
func TestSchemaJSONAcceptsExample(t *testing.T) {
	all := compileJSONSchema(t, "")
	byKind := map[string]*jsonschema.Schema{}
	for _, k := range schemaKinds {
		byKind[k] = compileJSONSchema(t, k)
	}
	files := exampleFS(t)
	files["status/r1-n01.yaml"] = &fstest.MapFile{Data: []byte(exampleStatus)}
	if _, diags := schema.Load(files); len(diags) != 0 {
		t.Fatalf("the example with a status file is invalid:\n%s", diags)
	}
	for name, f := range files {
		inst := yamlInstance(t, name, f.Data)
		if err := all.Validate(inst); err != nil {
			t.Errorf("%s: inventory schema: %v", name, err)
		}
		if err := byKind[kindOf(name)].Validate(inst); err != nil {
			t.Errorf("%s: %s schema: %v", name, kindOf(name), err)
		}
	}
	if len(files) < 10 {
		t.Fatalf("only %d files in the example", len(files))
	}
}

// schemaLevel are the diagnostic codes the loader gives to violations of
// the CUE schema. An unknown interface or step violates #Step, and the
// loader words it as a template diagnostic.
var schemaLevel = map[string]bool{schema.CodeSchema: true, schema.CodeUnknownField: true, schema.CodeLiteralSecret: true, schema.CodeTemplate: true}

// biosList is the list of BIOS settings in templates/bios-performance.yaml.
const biosList = "          - name: ProcHyperthreading\n            value: Disabled\n          - name: PowerProfile\n            value: MaxPerf\n          - name: ProcTurboMode\n            value: Enabled\n"

// TestSchemaJSONAcceptsEdits: edits the loader accepts, next to what the
// JSON Schema refuses beyond the CUE, pass the JSON Schema too.
func TestSchemaJSONAcceptsEdits(t *testing.T) {
	const r2 = "nodes/rack2/r2-n01.yaml"
	tests := []struct {
		name          string
		file, old, nw string
	}{
		{"bios settings as a map", "templates/bios-performance.yaml", biosList, "          ProcHyperthreading: Disabled\n          AdminPasswordStatus: Locked\n"},
		{"label naming a reference is no secret", r2, "    site: store-01\n", "    site: store-01\n    secret-name: bmc-rack2\n    tokenizer: bpe\n    vault.example.net/secretPath: kv/rack2\n    password: \"\"\n    token.file: /x\n"},
		{"ssh user name is no secret", r2, "    site: store-01\n", "    site: store-01\n    cfg: \"git+ssh://git@git.example.net/cfg\"\n"},
		{"site file set in a subdirectory", schema.SiteFile, "file: rack2.yaml ", "file: edge/../rack2.yaml "},
		{"agent image cache size", schema.SiteFile, "    listen: \"[::]:8443\"\n", "    listen: \"[::]:8443\"\n    imageCacheSize: 200GiB\n"},
	}
	all := compileJSONSchema(t, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, edited := editExample(t, tt.file, tt.old, tt.nw)
			if _, diags := schema.Load(files); len(diags) != 0 {
				t.Fatalf("the loader refuses the edit:\n%s", diags)
			}
			inst := yamlInstance(t, tt.file, edited)
			if err := all.Validate(inst); err != nil {
				t.Errorf("the JSON Schema refuses what the loader accepts: %v", err)
			}
			if err := compileJSONSchema(t, kindOf(tt.file)).Validate(inst); err != nil {
				t.Errorf("the %s JSON Schema refuses what the loader accepts: %v", kindOf(tt.file), err)
			}
		})
	}
}

// TestSchemaJSONRejectsBroken breaks a copy of the example the way the
// schema-level cases of schema/rules_test.go do (same names, same edits)
// and checks that the JSON Schema rejects the broken file, as the loader
// does with a schema-level diagnostic, or with one of the credential and
// site rules the JSON Schema repeats (schema.RefineJSONSchema).
func TestSchemaJSONRejectsBroken(t *testing.T) {
	const (
		n1 = "nodes/rack1/r1-n01.yaml"
		r2 = "nodes/rack2/r2-n01.yaml"
	)
	tests := []struct {
		name          string
		file, old, nw string
	}{
		{"unknown field with hint", n1, "  bootMode: uefi", "  bootmode: uefi"},
		{"missing required field", n1, "  owner: platform\n", ""},
		{"enum", n1, "power: on", "power: of"},
		{"unquoted mac is a number", r2, `mac: "3c:ec:ef:02:01:01"`, `mac: 123456`},
		{"mac format", r2, `mac: "3c:ec:ef:02:01:01"`, `mac: "3c:ec:ef:02:01"`},
		{"literal password", n1, "    tls:\n", "    password: hunter22\n    tls:\n"},
		{"literal secret deep", "templates/raid1-os.yaml", "          logical_disks:", "          secret: abc\n          logical_disks:"},
		{"wrong apiVersion", n1, "apiVersion: metalsync.dev/v1alpha1", "apiVersion: metalsync.dev/v1"},
		{"template arg wrong type", "templates/raid6-data-firmware.yaml", "url: https://firmware", "url: 42 # https://firmware"},
		{"template arg bad format", "templates/raid6-data-firmware.yaml", "url: https://firmware", "url: ftp://firmware"},
		{"template arg bad enum", "templates/raid6-data-firmware.yaml", `raid_level: "6"`, `raid_level: "7"`},
		{"template bios value wrong type", "templates/bios-performance.yaml", "value: MaxPerf", "value: [MaxPerf]"},
		{"template unknown step", "templates/raid6-data-firmware.yaml", "step: create_configuration", "step: create_configuraton"},
		{"template unknown step of a one-step interface", "templates/bios-performance.yaml", "step: apply_configuration", "step: apply_configuraton"},
		{"template unknown interface", "templates/raid6-data-firmware.yaml", "interface: firmware", "interface: firmwre"},
		{"template missing required arg", "templates/raid6-data-firmware.yaml", "        url: https://firmware.example.net/raid/perc-h755-52.26.0.bin\n", "        targets: [BIOS]\n"},
		{"template missing args", "templates/raid6-data-firmware.yaml", "      args:\n        # The BMC applies the package to the components it contains.\n        url: https://firmware.example.net/raid/perc-h755-52.26.0.bin\n", ""},
		{"template args on a step without args", "templates/raid1-os.yaml", "step: erase_devices_metadata\n      priority: 98", "step: erase_devices_metadata\n      priority: 98\n      args: {force: true}"},
		{"template unknown arg", "templates/raid1-os.yaml", "is_root_volume: true", "is_root: true"},
		{"literal password in bios settings", "templates/bios-performance.yaml", biosList, "          ProcHyperthreading: Disabled\n          Password: hunter22\n"},
		{"literal token in a label", r2, "    site: store-01\n", "    site: store-01\n    api-token: hunter22\n"},
		{"literal api key in an annotation", r2, "  name: r2-n01\n", "  name: r2-n01\n  annotations:\n    API_KEY: hunter22\n"},
		{"image url with a password", r2, "url: https://images.example.net/", "url: https://deploy:hunter22@images.example.net/"},
		{"image url with a token as user", r2, "url: https://images.example.net/", "url: https://ghp_hunter22@images.example.net/"},
		{"firmware url with a password", "templates/raid6-data-firmware.yaml", "url: https://firmware", "url: https://u:hunter22@firmware"},
		{"media url with a password", schema.SiteFile, `"http://10.10.0.10:8080"`, `"http://media:hunter22@10.10.0.10:8080"`},
		{"agent image cache size without unit", schema.SiteFile, "    listen: \"[::]:8443\"\n", "    listen: \"[::]:8443\"\n    imageCacheSize: 50G\n"},
		{"bmc address with a password", n1, "redfish+https://10.10.0.101", "redfish+https://root:calvin@10.10.0.101"},
	}
	// The loader refuses these in Go (schema/credrules.go), after the CUE,
	// so that it can say what to write instead.
	goRules := []struct {
		name          string
		file, old, nw string
	}{
		{"inline env credentials already in a set", n1, "credentialsRef: {set: rack1}", "credentialsRef:\n      env: {username: RACK1_BMC_USERNAME, password: RACK1_BMC_PASSWORD}"},
		{"inline file on the daemon's host", r2, "credentialsRef: {set: rack2}", "credentialsRef: {file: /etc/shadow}"},
		{"inline ageFile", r2, "credentialsRef: {set: rack2}", "credentialsRef: {ageFile: secrets/x.age}"},
		{"inline source beside a set", r2, "credentialsRef: {set: rack2}", "credentialsRef: {set: rack2, ageFile: secrets/x.age}"},
		{"credential set missing", n1, "{set: rack1}", "{}"},
		{"site set naming the daemon's secrets", schema.SiteFile, "password: RACK1_BMC_PASSWORD", "password: METALSYNC_AGENT_KEY"},
		{"site set with two sources", schema.SiteFile, "        file: rack2.yaml ", "        ageFile: secrets/rack2.age\n        file: rack2.yaml "},
		{"site set without a source", schema.SiteFile, "        file: rack2.yaml ", "        # none "},
		{"site file set leaving its directory", schema.SiteFile, "file: rack2.yaml ", "file: ../../shadow "},
		{"site file set at an absolute path", schema.SiteFile, "file: rack2.yaml ", "file: /etc/shadow "},
		{"bmc network with cidr and host", schema.SiteFile, "    - cidr: 10.10.0.0/24\n", "    - cidr: 10.10.0.0/24\n      host: bmc.example.net\n"},
	}
	goCodes := map[string]bool{schema.CodeCredentials: true, schema.CodeSite: true}
	for _, tt := range goRules {
		tests = append(tests, tt)
	}
	all := compileJSONSchema(t, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, broken := editExample(t, tt.file, tt.old, tt.nw)

			// The loader rejects the file at the schema level...
			_, diags := schema.Load(files)
			var got []string
			for _, d := range diags {
				got = append(got, d.Code)
				if d.File != tt.file || !schemaLevel[d.Code] && !goCodes[d.Code] {
					t.Errorf("not a schema-level case: %s [%s]", d, d.Code)
				}
			}
			if len(diags) == 0 {
				t.Fatal("the loader accepts the broken file")
			}
			// ...and so does the JSON Schema, for every kind and for its own.
			inst := yamlInstance(t, tt.file, broken)
			if err := all.Validate(inst); err == nil {
				t.Errorf("the JSON Schema accepts the broken file (the loader said %v)", got)
			}
			if err := compileJSONSchema(t, kindOf(tt.file)).Validate(inst); err == nil {
				t.Errorf("the %s JSON Schema accepts the broken file", kindOf(tt.file))
			}
		})
	}
}

// editExample is the example inventory with old replaced by nw in file,
// and the edited file's bytes.
func editExample(t *testing.T, file, old, nw string) (fstest.MapFS, []byte) {
	t.Helper()
	files := exampleFS(t)
	src := string(files[file].Data)
	if !strings.Contains(src, old) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	edited := []byte(strings.Replace(src, old, nw, 1))
	files[file] = &fstest.MapFile{Data: edited}
	return files, edited
}
