package schema

import (
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// edit changes one file of the example inventory.
type edit struct {
	file     string
	old, new string // old == "" appends new; new == "\x00" deletes the file
}

func apply(t *testing.T, fsys fstest.MapFS, edits []edit) {
	t.Helper()
	for _, e := range edits {
		if e.new == "\x00" {
			delete(fsys, e.file)
			continue
		}
		f, ok := fsys[e.file]
		if !ok {
			fsys[e.file] = &fstest.MapFile{Data: []byte(e.new)}
			continue
		}
		s := string(f.Data)
		if e.old == "" {
			s += e.new
		} else {
			if !strings.Contains(s, e.old) {
				t.Fatalf("%s does not contain %q", e.file, e.old)
			}
			s = strings.Replace(s, e.old, e.new, 1)
		}
		fsys[e.file] = &fstest.MapFile{Data: []byte(s)}
	}
}

const (
	n1 = "nodes/rack1/r1-n01.yaml"
	n2 = "nodes/rack1/r1-n02.yaml"
	r2 = "nodes/rack2/r2-n01.yaml"
)

// TestRules breaks a copy of inventory-example once per rule and checks
// the exact positioned message (first line of each diagnostic).
func TestRules(t *testing.T) {
	tests := []struct {
		name  string
		edits []edit
	}{
		{"yaml syntax", []edit{{n1, "  owner: platform\n", "  owner: [platform\n"}}},
		{"unknown field with hint", []edit{{n1, "  bootMode: uefi", "  bootmode: uefi"}}},
		{"missing required field", []edit{{n1, "  owner: platform\n", ""}}},
		{"enum", []edit{{n1, "power: on", "power: of"}}},
		{"unquoted mac is a number", []edit{{r2, `mac: "3c:ec:ef:02:01:01"`, `mac: 123456`}}},
		{"mac format", []edit{{r2, `mac: "3c:ec:ef:02:01:01"`, `mac: "3c:ec:ef:02:01"`}}},
		{"literal password", []edit{{n1, "    tls:\n", "    password: hunter22\n    tls:\n"}}},
		{"literal secret deep", []edit{{"templates/raid1-os.yaml", "          logical_disks:", "          secret: abc\n          logical_disks:"}}},
		{"wrong kind for directory", []edit{{n1, "kind: Node", "kind: Owner"}}},
		{"wrong apiVersion", []edit{{n1, "apiVersion: metalsync.dev/v1alpha1", "apiVersion: metalsync.dev/v1"}}},
		{"name mismatch", []edit{{n1, "name: r1-n01", "name: r1-n99"}}},
		// A copy of a node under another rack: its BMC is shared too.
		{"duplicate node", []edit{{"nodes/rack2/r1-n01.yaml", "", mustRead("../inventory-example/" + n1)}}},
		{"unknown owner", []edit{{n1, "  owner: platform", "  owner: platfrom"}}},
		{"unknown lessee", []edit{{n1, "  lessee: ml-research", "  lessee: ml"}}},
		{"unknown template", []edit{{n1, "deployTemplates: [bios-performance, raid1-os]", "deployTemplates: [bios-performanc, raid1-os]"}}},
		{"duplicate mac", []edit{{n2, `mac: "b8:ce:f6:01:02:11"`, `mac: "b8:ce:f6:01:01:11"`}}},
		{"duplicate ip", []edit{{n2, `10.10.200.12/24`, `10.10.200.11/24`}}},
		{"duplicate bmc", []edit{{n2, "https://10.10.0.102/", "https://10.10.0.101/"}}},
		{"bad bmc scheme", []edit{{n1, "redfish+https://10.10.0.101", "https://10.10.0.101"}}},
		{"ipv6 without brackets", []edit{{r2, "ipmi://[2001:db8:20::101]:623", "ipmi://2001:db8:20::101"}}},
		{"network address", []edit{{n1, "10.10.200.11/24", "10.10.200.0/24"}}},
		{"broadcast address", []edit{{n1, "10.10.200.11/24", "10.10.200.255/24"}}},
		{"gateway unreachable", []edit{{n1, "via: 10.10.100.1", "via: 10.99.0.1"}}},
		{"gateway is own address", []edit{{r2, `"2001:db8:20::11/64"`, `"2001:db8:20::1/64"`}}},
		{"ipv6 route with ipv4 gateway", []edit{{r2, "via: 2001:db8:20::1", "via: 10.0.0.1"}}},
		{"bond member missing", []edit{{n1, "members: [eno1, eno2]", "members: [eno1, eno3]"}}},
		{"bond member not phy", []edit{{n1, "members: [eno1, eno2]", "members: [eno1, bond0.200]"}}},
		{"vlan id range", []edit{{n1, "id: 200", "id: 4095"}}},
		{"vlan parent missing", []edit{{n1, "parent: bond0\n        mtu", "parent: bond1\n        mtu"}}},
		{"phy without mac", []edit{{r2, "        mac: \"3c:ec:ef:02:01:01\"\n", ""}}},
		{"template step twice", []edit{{"templates/raid1-os.yaml", "    - interface: deploy\n      step: erase_devices_metadata", "    - interface: raid\n      step: apply_configuration\n      args: {volumes: [{raid_level: 1}]}"}}},
		{"template arg wrong type", []edit{{"templates/raid6-data-firmware.yaml", "url: https://firmware", "url: 42 # https://firmware"}}},
		{"template arg bad format", []edit{{"templates/raid6-data-firmware.yaml", "url: https://firmware", "url: ftp://firmware"}}},
		{"template arg bad enum", []edit{{"templates/raid6-data-firmware.yaml", `raid_level: "6"`, `raid_level: "7"`}}},
		{"template bios value wrong type", []edit{{"templates/bios-performance.yaml", "value: MaxPerf", "value: [MaxPerf]"}}},
		{"template unknown step", []edit{{"templates/raid6-data-firmware.yaml", "step: create_configuration", "step: create_configuraton"}}},
		{"template bios without settings", []edit{{"templates/bios-performance.yaml", "        settings:\n          - name: ProcHyperthreading\n            value: Disabled\n          - name: PowerProfile\n            value: MaxPerf\n          - name: ProcTurboMode\n            value: Enabled\n", "        settings: {}\n"}}},
		{"template unknown step of a one-step interface", []edit{{"templates/bios-performance.yaml", "step: apply_configuration", "step: apply_configuraton"}}},
		{"template unknown interface", []edit{{"templates/raid6-data-firmware.yaml", "interface: firmware", "interface: firmwre"}}},
		{"template missing required arg", []edit{{"templates/raid6-data-firmware.yaml", "        url: https://firmware.example.net/raid/perc-h755-52.26.0.bin\n", "        targets: [BIOS]\n"}}},
		{"template missing args", []edit{{"templates/raid6-data-firmware.yaml", "      args:\n        # The BMC applies the package to the components it contains.\n        url: https://firmware.example.net/raid/perc-h755-52.26.0.bin\n", ""}}},
		{"template args on a step without args", []edit{{"templates/raid1-os.yaml", "step: erase_devices_metadata\n      priority: 98", "step: erase_devices_metadata\n      priority: 98\n      args: {force: true}"}}},
		{"template unknown arg", []edit{{"templates/raid1-os.yaml", "is_root_volume: true", "is_root: true"}}},
		{"template raid without volumes", []edit{{"templates/raid6-data-firmware.yaml", "        logical_disks:\n          - size_gb: MAX\n            raid_level: \"6\"\n            volume_name: data\n", "        delete_existing: true\n"}}},
		{"power off with disablePowerOff", []edit{{"nodes/rack1/r1-n06.yaml", "power: on", "power: off"}}},
		{"literal token in a label", []edit{{r2, "    site: store-01\n", "    site: store-01\n    api-token: hunter22\n"}}},
		{"literal password in an annotation", []edit{{r2, "  name: r2-n01\n", "  name: r2-n01\n  annotations:\n    example.net/ipmiPassword: hunter22\n"}}},
		{"literal api key in an annotation", []edit{{r2, "  name: r2-n01\n", "  name: r2-n01\n  annotations:\n    API_KEY: hunter22\n"}}},
		// Keys that name a reference, or contain a credential word only as
		// part of another word, are not credentials; nor is an empty value.
		{"label naming a reference is no secret", []edit{{r2, "    site: store-01\n", "    site: store-01\n    secret-name: bmc-rack2\n    tokenizer: bpe\n    vault.example.net/secretPath: kv/rack2\n    password: \"\"\n"}}},
		{"image url with a password", []edit{{r2, "url: https://images.example.net/", "url: https://deploy:hunter22@images.example.net/"}}},
		{"image url with a token as user", []edit{{r2, "url: https://images.example.net/", "url: https://ghp_hunter22@images.example.net/"}}},
		{"firmware url with a password", []edit{{"templates/raid6-data-firmware.yaml", "url: https://firmware", "url: https://u:hunter22@firmware"}}},
		{"media url with a password", []edit{{SiteFile, `"http://10.10.0.10:8080"`, `"http://media:hunter22@10.10.0.10:8080"`}}},
		{"url with a password in a label value", []edit{{r2, "    site: store-01\n", "    site: store-01\n    mirror: ftp://u:hunter22@mirror.example.net/x\n"}}},
		{"ssh user name is no secret", []edit{{r2, "    site: store-01\n", "    site: store-01\n    cfg: \"git+ssh://git@git.example.net/cfg\"\n"}}},
		{"duplicate key", []edit{{r2, "  power: on\n", "  power: on\n  owner: platform\n"}}},
		{"duplicate key in a list item", []edit{{r2, "        type: phy\n", "        type: phy\n        name: eno9\n"}}},
		// Credentials: a node names a set of the site, the site says where
		// BMCs may be and where plain HTTP may carry credentials.
		{"credential set unknown", []edit{{n1, "{set: rack1}", "{set: rack9}"}}},
		{"credential set of another owner", []edit{{n1, "{set: rack1}", "{set: rack2}"}}},
		{"credential set missing", []edit{{n1, "{set: rack1}", "{}"}}},
		{"inline env credentials already in a set", []edit{{n1, "credentialsRef: {set: rack1}", "credentialsRef:\n      env: {username: RACK1_BMC_USERNAME, password: RACK1_BMC_PASSWORD}"}}},
		{"inline env naming the daemon's agent key", []edit{{n1, "credentialsRef: {set: rack1}", "credentialsRef:\n      env: {username: RACK1_BMC_USERNAME, password: METALSYNC_AGENT_KEY}"}}},
		{"inline env naming the webhook secret", []edit{{n1, "credentialsRef: {set: rack1}", "credentialsRef:\n      env: {username: RACK1_BMC_USERNAME, password: WEBHOOK_SECRET}"}}},
		{"inline file on the daemon's host", []edit{{r2, "credentialsRef: {set: rack2}", "credentialsRef: {file: /etc/shadow}"}}},
		{"inline file already in a set", []edit{{r2, "credentialsRef: {set: rack2}", "credentialsRef: {file: /etc/metalsync/bmc/rack2.yaml}"}}},
		{"inline ageFile", []edit{{r2, "credentialsRef: {set: rack2}", "credentialsRef: {ageFile: secrets/x.age}"}}},
		{"inline source beside a set", []edit{{r2, "credentialsRef: {set: rack2}", "credentialsRef: {set: rack2, ageFile: secrets/x.age}"}}},
		{"daemon secret as a set name", []edit{{n1, "{set: rack1}", "{set: METALSYNC_AGENT_KEY}"}}},
		{"site set naming the daemon's secrets", []edit{{SiteFile, "password: RACK1_BMC_PASSWORD", "password: METALSYNC_AGENT_KEY"}}},
		{"site set with two sources", []edit{{SiteFile, "        file: rack2.yaml ", "        ageFile: secrets/rack2.age\n        file: rack2.yaml "}}},
		{"site file set leaving its directory", []edit{{SiteFile, "file: rack2.yaml ", "file: ../../shadow "}}},
		{"site file set without directory", []edit{{SiteFile, "    directory: /etc/metalsync/bmc ", "    # no directory "}}},
		{"site set for an unknown owner", []edit{{SiteFile, "owners: [edge-retail]\n  # Where", "owners: [edge-retali]\n  # Where"}}},
		{"bmc outside the networks", []edit{{n1, "https://10.10.0.101/", "https://192.0.2.101/"}}},
		{"bmc host name outside the networks", []edit{{n1, "https://10.10.0.101/", "https://bmc.attacker.example/"}}},
		{"bmc in another owner's network", []edit{{n1, "https://10.10.0.101/", "https://[2001:db8:20::199]/"}}},
		{"bmc host pattern of its owner", []edit{
			{SiteFile, "  bmcNetworks:\n", "  bmcNetworks:\n    - host: \"*.bmc.dc1.example.net\"\n      owners: [platform]\n"},
			{n1, "https://10.10.0.101/", "https://r1-n01.bmc.dc1.example.net/"}}},
		{"bmc host pattern is no suffix match", []edit{
			{SiteFile, "  bmcNetworks:\n", "  bmcNetworks:\n    - host: \"*.bmc.dc1.example.net\"\n"},
			{n1, "https://10.10.0.101/", "https://r1-n01.evilbmc.dc1.example.net/"}}},
		{"bmc network for every owner", []edit{
			{SiteFile, "  bmcNetworks:\n", "  bmcNetworks:\n    - cidr: 192.0.2.0/24\n"},
			{n1, "https://10.10.0.101/", "https://192.0.2.101/"}}},
		{"plain http refused", []edit{{n1, "redfish+https://10.10.0.101", "redfish+http://10.10.0.101"}}},
		{"plain http allowed for its network", []edit{
			{SiteFile, "    - cidr: 10.10.0.0/24\n", "    - cidr: 10.10.0.0/24\n      allowPlainHTTP: true\n"},
			{n1, "redfish+https://10.10.0.101", "redfish+http://10.10.0.101"}}},
		{"plain http allowed for another owner only", []edit{
			{SiteFile, "  bmcNetworks:\n", "  bmcNetworks:\n    - cidr: 10.10.0.0/24\n      owners: [edge-retail]\n      allowPlainHTTP: true\n"},
			{n1, "redfish+https://10.10.0.101", "redfish+http://10.10.0.101"}}},
		{"bmc network with cidr and host", []edit{{SiteFile, "    - cidr: 10.10.0.0/24\n", "    - cidr: 10.10.0.0/24\n      host: bmc.example.net\n"}}},
		{"bmc network with host bits", []edit{{SiteFile, "cidr: 10.10.0.0/24", "cidr: 10.10.0.1/24"}}},
		{"agent image cache size without unit", []edit{{SiteFile, "    listen: \"[::]:8443\"\n", "    listen: \"[::]:8443\"\n    imageCacheSize: 50G\n"}}},
		{"bmc network for an unknown owner", []edit{{SiteFile, "      owners: [platform]\n    - cidr", "      owners: [platfrom]\n    - cidr"}}},
	}
	golden := openGolden(t, "testdata/rules.golden")
	defer golden.write(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := example(t)
			apply(t, fsys, tt.edits)
			_, diags := Load(fsys)
			var got []string
			for _, d := range diags {
				got = append(got, strings.SplitN(d.String(), "\n", 2)[0])
			}
			golden.set(tt.name, got)
			if d := cmp.Diff(golden.get(t, tt.name), got); d != "" {
				t.Errorf("diagnostics (-want +got):\n%s", d)
			}
			for _, d := range diags {
				if strings.Contains(d.String(), "hunter22") {
					t.Errorf("diagnostic leaks the secret: %s", d)
				}
			}
		})
	}
}

// TestCredentialHints checks the whole diagnostic, hint included, of the
// credential rules: the hint is how a node file gets fixed.
func TestCredentialHints(t *testing.T) {
	tests := []struct {
		name  string
		edits []edit
		want  string
	}{
		{"unknown set suggests the closest", []edit{{n1, "{set: rack1}", "{set: rack9}"}},
			"nodes/rack1/r1-n01.yaml:8:22: spec.bmc.credentialsRef.set: credential set \"rack9\" is not declared in metalsync.yaml\n" +
				"\thint: did you mean \"rack1\"? sets for owner platform: rack1"},
		{"inline env names the existing set", []edit{{n1, "credentialsRef: {set: rack1}", "credentialsRef:\n      env: {username: RACK1_BMC_USERNAME, password: RACK1_BMC_PASSWORD}"}},
			"nodes/rack1/r1-n01.yaml:9:7: spec.bmc.credentialsRef.env: a node may not say where credentials come from; it names a credential set of metalsync.yaml\n" +
				"\thint: metalsync.yaml already declares this source as set rack1: write credentialsRef: {set: rack1}"},
		{"inline env of the daemon's own secret", []edit{{n1, "credentialsRef: {set: rack1}", "credentialsRef:\n      env: {username: U, password: METALSYNC_AGENT_KEY}"}},
			"nodes/rack1/r1-n01.yaml:9:7: spec.bmc.credentialsRef.env: a node may not say where credentials come from; it names a credential set of metalsync.yaml\n" +
				"\thint: credential sources are declared only in metalsync.yaml, which admins change: add spec.credentials.sets.r1-n01-bmc: {env: {username: U, password: METALSYNC_AGENT_KEY}} there, and write credentialsRef: {set: r1-n01-bmc} here"},
		{"inline file names the existing set", []edit{{r2, "credentialsRef: {set: rack2}", "credentialsRef: {file: /etc/metalsync/bmc/rack2.yaml}"}},
			"nodes/rack2/r2-n01.yaml:8:22: spec.bmc.credentialsRef.file: a node may not say where credentials come from; it names a credential set of metalsync.yaml\n" +
				"\thint: metalsync.yaml already declares this source as set rack2: write credentialsRef: {set: rack2}"},
		{"undeclared file", []edit{{r2, "credentialsRef: {set: rack2}", "credentialsRef: {file: /etc/shadow}"}},
			"nodes/rack2/r2-n01.yaml:8:22: spec.bmc.credentialsRef.file: a node may not say where credentials come from; it names a credential set of metalsync.yaml\n" +
				"\thint: credential sources are declared only in metalsync.yaml, which admins change: add spec.credentials.sets.r2-n01-bmc: {file: shadow} (with spec.credentials.directory: /etc) there, and write credentialsRef: {set: r2-n01-bmc} here"},
		{"outside the networks", []edit{{n1, "https://10.10.0.101/", "https://192.0.2.101/"}},
			"nodes/rack1/r1-n01.yaml:7:5: spec.bmc.address: BMC host 192.0.2.101 is outside the BMC networks metalsync.yaml allows for owner platform\n" +
				"\thint: networks for owner platform: 10.10.0.0/24; a host name matches host patterns only, an IP address CIDRs only"},
		{"plain http", []edit{{n1, "redfish+https://10.10.0.101", "redfish+http://10.10.0.101"}},
			"nodes/rack1/r1-n01.yaml:7:5: spec.bmc.address: redfish+http:// would send the BMC credentials unencrypted to 10.10.0.101\n" +
				"\thint: use redfish+https://, or have an admin set allowPlainHTTP: true on its network in metalsync.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := example(t)
			apply(t, fsys, tt.edits)
			_, diags := Load(fsys)
			var got []string
			for _, d := range diags {
				got = append(got, d.String())
			}
			if d := cmp.Diff([]string{tt.want}, got); d != "" {
				t.Errorf("diagnostics (-want +got):\n%s", d)
			}
		})
	}
}

func TestActiveNeedsImage(t *testing.T) {
	fsys := example(t)
	apply(t, fsys, []edit{{"nodes/rack1/r1-n05.yaml", "state: available", "state: active"}})
	_, diags := Load(fsys)
	want := `nodes/rack1/r1-n05.yaml:18:3: spec.provision: an active node needs an image`
	if len(diags) != 1 || !strings.HasPrefix(diags[0].String(), want) {
		t.Errorf("got %s, want %s", diags, want)
	}
}

func mustRead(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestCheckBMCNetwork is the site's network policy on its own: what the
// resolver asks before any credential leaves the daemon.
func TestCheckBMCNetwork(t *testing.T) {
	site := &SiteSpec{BMCNetworks: []BMCNetwork{
		{CIDR: "10.10.0.0/24", Owners: []string{"platform"}},
		{CIDR: "2001:db8:20::/64", Owners: []string{"edge"}, AllowPlainHTTP: true},
		{Host: "*.bmc.example.net"},
		{Host: "lab-bmc.example.org", AllowPlainHTTP: true},
	}}
	tests := []struct {
		owner, addr string
		want        error
	}{
		{"platform", "redfish+https://10.10.0.5/redfish/v1/Systems/1", nil},
		{"platform", "ipmi://10.10.0.5", nil},
		{"edge", "redfish+https://10.10.0.5", ErrBMCNetwork},
		{"platform", "redfish+https://10.10.1.5", ErrBMCNetwork},
		{"platform", "redfish+http://10.10.0.5", ErrPlainHTTP},
		{"edge", "redfish+http://[2001:db8:20::5]", nil},
		{"platform", "redfish+https://[::ffff:10.10.0.5]", nil},
		{"anyone", "redfish+https://R1.BMC.example.net", nil},
		{"anyone", "redfish+https://a.b.bmc.example.net", nil},
		{"anyone", "redfish+https://bmc.example.net", ErrBMCNetwork},
		{"anyone", "redfish+https://evilbmc.example.net", ErrBMCNetwork},
		{"anyone", "redfish+http://r1.bmc.example.net", ErrPlainHTTP},
		{"anyone", "redfish+http://lab-bmc.example.org", nil},
		{"anyone", "redfish+https://lab-bmc.example.org.attacker.net", ErrBMCNetwork},
		{"anyone", "fake://n1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.owner+" "+tt.addr, func(t *testing.T) {
			addr, err := ParseBMCAddress(tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			err = site.CheckBMCNetwork(tt.owner, addr)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("CheckBMCNetwork(%s, %s) = %v, want %v", tt.owner, tt.addr, err, tt.want)
			}
		})
	}
}
