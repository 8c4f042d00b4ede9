package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kdomanski/iso9660"

	"metalsync.dev/metalsync/schema"
)

func phy(name, mac string, addrs ...string) schema.Link {
	return schema.Link{Name: name, Type: schema.LinkPhy, MAC: mac, Addresses: addrs}
}

// TestNetworkErrors: anything either format cannot express is an error
// naming the culprit, never a panic and never a document.
func TestNetworkErrors(t *testing.T) {
	eth0 := phy("eth0", "52:54:00:00:00:01", "192.0.2.10/24", "2001:db8::10/64")
	tests := []struct {
		name string
		net  *schema.Network
		// want is a substring of the error for NetworkData and NetworkConfig;
		// wantCD applies to NetworkData only (NetworkConfig must succeed).
		want, wantCD string
	}{
		{name: "nil", net: nil, want: "no static network"},
		{name: "dhcp", net: &schema.Network{DHCP: ptr(true), Links: []schema.Link{eth0}}, want: "no static network"},
		{name: "no links", net: &schema.Network{}, want: "network has no links"},
		{name: "duplicate link", net: &schema.Network{Links: []schema.Link{eth0, eth0}}, want: "link eth0: defined twice"},
		{name: "long name", net: &schema.Network{Links: []schema.Link{phy("abcdefghijklmnop", "52:54:00:00:00:01")}}, want: "longer than 15"},
		{name: "bad name", net: &schema.Network{Links: []schema.Link{phy("eth 0", "52:54:00:00:00:01")}}, want: `character ' ' not allowed`},
		{name: "unknown type", net: &schema.Network{Links: []schema.Link{{Name: "br0", Type: "bridge"}}}, want: `unknown type "bridge"`},
		{name: "bad mac", net: &schema.Network{Links: []schema.Link{phy("eth0", "52:54:00:00:00")}}, want: "not an Ethernet MAC"},
		{name: "infiniband mac", net: &schema.Network{Links: []schema.Link{phy("ib0", "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01")}}, want: "not an Ethernet MAC"},
		{name: "duplicate mac", net: &schema.Network{Links: []schema.Link{phy("eth0", "52:54:00:00:00:01"), phy("eth1", "52:54:00:00:00:01")}}, want: "also the mac of link eth0"},
		{name: "address without prefix", net: &schema.Network{Links: []schema.Link{phy("eth0", "52:54:00:00:00:01", "192.0.2.10")}}, want: "want an address with prefix length"},
		{name: "zoned address", net: &schema.Network{Links: []schema.Link{phy("eth0", "52:54:00:00:00:01", "fe80::1%eth0/64")}}, want: "address"},
		{name: "duplicate address", net: &schema.Network{Links: []schema.Link{eth0, phy("eth1", "52:54:00:00:00:02", "192.0.2.10/24")}}, want: "also on link eth0"},
		{name: "bond without members", net: &schema.Network{Links: []schema.Link{{Name: "bond0", Type: "bond", Mode: "802.3ad"}}}, want: "bond has no members"},
		{name: "bond numeric mode", net: &schema.Network{Links: []schema.Link{eth0, {Name: "bond0", Type: "bond", Mode: "4", Members: []string{"eth0"}}}}, want: `unknown bond mode "4"`},
		{name: "bond member missing", net: &schema.Network{Links: []schema.Link{{Name: "bond0", Type: "bond", Members: []string{"eth9"}}}}, want: `bond member "eth9" is not a link`},
		{name: "bond member is bond", net: &schema.Network{Links: []schema.Link{
			phy("eth0", "52:54:00:00:00:01"), {Name: "bond0", Type: "bond", Members: []string{"eth0"}}, {Name: "bond1", Type: "bond", Members: []string{"bond0"}},
		}}, want: "bond member bond0 is a bond, not a phy"},
		{name: "member in two bonds", net: &schema.Network{Links: []schema.Link{
			phy("eth0", "52:54:00:00:00:01"), {Name: "bond0", Type: "bond", Members: []string{"eth0"}}, {Name: "bond1", Type: "bond", Members: []string{"eth0"}},
		}}, want: "already belongs to bond bond0"},
		{name: "member with address", net: &schema.Network{Links: []schema.Link{eth0, {Name: "bond0", Type: "bond", Members: []string{"eth0"}}}}, want: "member of bond bond0 cannot have addresses"},
		{name: "bond without any mac", net: &schema.Network{Links: []schema.Link{{Name: "eth0", Type: "phy"}, {Name: "bond0", Type: "bond", Members: []string{"eth0"}}}}, want: "bond has no mac"},
		{name: "vlan id 0", net: &schema.Network{Links: []schema.Link{eth0, {Name: "v", Type: "vlan", Parent: "eth0"}}}, want: "vlan id 0 out of range"},
		{name: "vlan id 4095", net: &schema.Network{Links: []schema.Link{eth0, {Name: "v", Type: "vlan", ID: 4095, Parent: "eth0"}}}, want: "vlan id 4095 out of range"},
		{name: "vlan parent missing", net: &schema.Network{Links: []schema.Link{{Name: "v", Type: "vlan", ID: 5, Parent: "eth9"}}}, want: `vlan parent "eth9" is not a link`},
		{name: "stacked vlan", net: &schema.Network{Links: []schema.Link{eth0, {Name: "v1", Type: "vlan", ID: 5, Parent: "eth0"}, {Name: "v2", Type: "vlan", ID: 6, Parent: "v1"}}}, want: "stacked vlans"},
		{name: "vlan on bond member", net: &schema.Network{Links: []schema.Link{
			phy("eth0", "52:54:00:00:00:01"), {Name: "bond0", Type: "bond", Members: []string{"eth0"}}, {Name: "v", Type: "vlan", ID: 5, Parent: "eth0"},
		}}, want: "put the vlan on the bond"},
		{name: "duplicate vlan", net: &schema.Network{Links: []schema.Link{eth0, {Name: "v1", Type: "vlan", ID: 5, Parent: "eth0"}, {Name: "v2", Type: "vlan", ID: 5, Parent: "eth0"}}}, want: "is also link v1"},
		{name: "ipv6 route via ipv4", net: &schema.Network{Links: []schema.Link{eth0}, Routes: []schema.Route{{To: "::/0", Via: "192.0.2.1"}}}, want: "an IPv6 destination needs an IPv6 gateway"},
		{name: "ipv4 route via ipv6", net: &schema.Network{Links: []schema.Link{eth0}, Routes: []schema.Route{{To: "0.0.0.0/0", Via: "2001:db8::1"}}}, want: "an IPv4 destination needs an IPv4 gateway"},
		{name: "route host bits", net: &schema.Network{Links: []schema.Link{eth0}, Routes: []schema.Route{{To: "10.1.2.3/8", Via: "192.0.2.1"}}}, want: "did you mean 10.0.0.0/8"},
		{name: "route default keyword", net: &schema.Network{Links: []schema.Link{eth0}, Routes: []schema.Route{{To: "default", Via: "192.0.2.1"}}}, want: "want a prefix like 0.0.0.0/0"},
		{name: "unreachable gateway", net: &schema.Network{Links: []schema.Link{eth0}, Routes: []schema.Route{{To: "0.0.0.0/0", Via: "198.51.100.1"}}}, want: "gateway 198.51.100.1 is not inside the subnet of any link address"},
		{name: "link-local gateway", net: &schema.Network{Links: []schema.Link{eth0}, Routes: []schema.Route{{To: "::/0", Via: "fe80::1"}}}, want: "link-local gateway fe80::1"},
		{name: "gateway is own address", net: &schema.Network{Links: []schema.Link{eth0}, Routes: []schema.Route{{To: "0.0.0.0/0", Via: "192.0.2.10"}}}, want: "node's own address"},
		{name: "negative metric", net: &schema.Network{Links: []schema.Link{eth0}, Routes: []schema.Route{{To: "0.0.0.0/0", Via: "192.0.2.1", Metric: -1}}}, want: "negative metric"},
		{name: "bad dns server", net: &schema.Network{Links: []schema.Link{eth0}, DNS: &schema.DNS{Servers: []string{"dns.example.com"}}}, want: "is not an IP address"},
		{name: "bad search domain", net: &schema.Network{Links: []schema.Link{eth0}, DNS: &schema.DNS{Servers: []string{"192.0.2.53"}, Search: []string{"a b"}}}, want: "search domain"},
		{name: "dns without addresses", net: &schema.Network{Links: []schema.Link{phy("eth0", "52:54:00:00:00:01")}, DNS: &schema.DNS{Servers: []string{"192.0.2.53"}}}, want: "no link has an address"},
		{name: "phy without mac", net: &schema.Network{Links: []schema.Link{phy("eth0", "", "192.0.2.10/24")}}, wantCD: "needs the mac of every phy"},
		{name: "search without server", net: &schema.Network{Links: []schema.Link{eth0}, DNS: &schema.DNS{Search: []string{"example.com"}}}, wantCD: "search domains only together with a server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nd, errCD := NetworkData(tt.net)
			nc, errV2 := NetworkConfig(tt.net)
			wantCD := tt.want
			if tt.wantCD != "" {
				wantCD = tt.wantCD
			}
			if errCD == nil || !strings.Contains(errCD.Error(), wantCD) {
				t.Errorf("NetworkData: got error %v and %d bytes, want an error containing %q", errCD, len(nd), wantCD)
			}
			if tt.want == "" {
				if errV2 != nil {
					t.Errorf("NetworkConfig: %v", errV2)
				}
			} else if errV2 == nil || !strings.Contains(errV2.Error(), tt.want) {
				t.Errorf("NetworkConfig: got error %v and %d bytes, want an error containing %q", errV2, len(nc), tt.want)
			}
		})
	}
}

func TestNoStaticNetworkIsSentinel(t *testing.T) {
	if _, err := NetworkData(nil); !errors.Is(err, ErrNoStaticNetwork) {
		t.Errorf("NetworkData(nil): %v, want ErrNoStaticNetwork", err)
	}
}

// TestMemberWithoutMAC: NoCloud can name a NIC by its kernel name when
// there is no MAC; the entry then has only its name.
func TestMemberWithoutMAC(t *testing.T) {
	got, err := NetworkConfig(&schema.Network{Links: []schema.Link{
		{Name: "eth0", Type: "phy"},
		{Name: "eth1", Type: "phy", MAC: "52:54:00:00:00:02"},
		{Name: "bond0", Type: "bond", Mode: "active-backup", Members: []string{"eth1", "eth0"}, Addresses: []string{"192.0.2.10/24"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := `version: 1
config:
  - type: "physical"
    name: "eth0"
  - type: "physical"
    name: "eth1"
    mac_address: "52:54:00:00:00:02"
  - type: "bond"
    name: "bond0"
    mac_address: "52:54:00:00:00:02"
    bond_interfaces:
      - "eth1"
      - "eth0"
    params:
      bond-mode: "active-backup"
      bond-miimon: 100
    subnets:
      - type: "static"
        address: "192.0.2.10/24"
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestNetworkConfigSearchOnly: NoCloud carries search domains without a
// server (cloud-init needs the address key, empty).
func TestNetworkConfigSearchOnly(t *testing.T) {
	got, err := NetworkConfig(&schema.Network{
		Links: []schema.Link{phy("eth0", "52:54:00:00:00:01", "192.0.2.10/24")},
		DNS:   &schema.DNS{Search: []string{"example.com."}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `version: 1
config:
  - type: "physical"
    name: "eth0"
    mac_address: "52:54:00:00:00:01"
    subnets:
      - type: "static"
        address: "192.0.2.10/24"
  - type: "nameserver"
    address: []
    search:
      - "example.com"
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMetaData(t *testing.T) {
	n := Node{Name: "r1-n01", PublicKeys: []string{"ssh-ed25519 AAAA a", "ssh-rsa BBBB b"}, Agent: &Agent{URL: "https://192.0.2.1/agent", Token: "s3cret"}}
	got, err := MetaData(n)
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	if err := json.Unmarshal(got, &md); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"uuid": InstanceID("r1-n01"), "name": "r1-n01", "hostname": "r1-n01",
		"public_keys": map[string]any{"key-000": "ssh-ed25519 AAAA a", "key-001": "ssh-rsa BBBB b"},
		"meta":        map[string]any{MetaAgentURL: "https://192.0.2.1/agent", MetaAgentToken: "s3cret"},
	}
	if diff := cmp.Diff(want, md); diff != "" {
		t.Errorf("meta_data.json (-want +got):\n%s", diff)
	}
	for _, bad := range []Node{
		{Name: "bad name"},
		{Name: ""},
		{Name: "n1", PublicKeys: []string{"ssh-rsa A\nroot"}},
		{Name: "n1", Agent: &Agent{}},
	} {
		if _, err := MetaData(bad); err == nil {
			t.Errorf("MetaData(%+v): no error", bad)
		}
		if _, err := NoCloudMetaData(bad); err == nil {
			t.Errorf("NoCloudMetaData(%+v): no error", bad)
		}
	}
}

func TestAgentRedactsToken(t *testing.T) {
	a := Agent{URL: "https://h/agent", Token: "s3cret"}
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v", a, &a, a)} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("token printed: %s", s)
		}
	}
}

func TestInstanceID(t *testing.T) {
	got := []string{InstanceID("r1-n01"), InstanceID("r1-n01"), InstanceID("r1-n02")}
	if got[0] != got[1] || got[0] == got[2] {
		t.Errorf("InstanceID not stable and distinct: %v", got)
	}
	if want := 36; len(got[0]) != want || got[0][14] != '5' {
		t.Errorf("InstanceID %q is not a version 5 UUID", got[0])
	}
}

// TestISONames: every name the library would change, and every collision,
// is an error before anything is written.
func TestISONames(t *testing.T) {
	mt := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := File{Path: "openstack/latest/meta_data.json"}
	tests := []struct {
		name  string
		img   ISO
		want  string
		valid bool
	}{
		{name: "config drive", img: ISO{VolumeID: "config-2", ModTime: mt, Files: []File{ok, {Path: "openstack/latest/user_data"}}}, valid: true},
		{name: "28 characters", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: strings.Repeat("a", 23) + ".json"}}}, valid: true},
		{name: "29 characters", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: strings.Repeat("a", 24) + ".json"}}}, want: "longer than 28"},
		{name: "uppercase", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: "Meta.json"}}}, want: "character 'M' would be changed"},
		{name: "two dots", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: "a.tar.gz"}}}, want: "more than one dot"},
		{name: "long extension", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: "a.ignitions"}}}, want: "extension longer than 8"},
		{name: "version suffix", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: "a;1"}}}, want: "character ';'"},
		{name: "dot dir", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: "a.d/b"}}}, want: "directory names cannot contain a dot"},
		{name: "absolute", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: "/a"}}}, want: "empty name"},
		{name: "double slash", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: "a//b"}}}, want: "empty name"},
		{name: "deep", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: "a/b/c/d/e/f/g/h/i"}}}, want: "more than 7 directory levels"},
		{name: "duplicate", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{ok, ok}}, want: "two files with this name"},
		{name: "file then dir", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{{Path: "openstack"}, ok}}, want: "openstack is a file"},
		{name: "dir then file", img: ISO{VolumeID: "x", ModTime: mt, Files: []File{ok, {Path: "openstack/latest"}}}, want: "is also a directory"},
		{name: "label 33 bytes", img: ISO{VolumeID: strings.Repeat("l", 33), ModTime: mt}, want: "longer than 32 bytes"},
		{name: "label empty", img: ISO{ModTime: mt}, want: "volume id \"\": empty"},
		{name: "zero time", img: ISO{VolumeID: "x"}, want: "modification time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := WriteISO(&buf, tt.img)
			if tt.valid {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes on error", buf.Len())
			}
		})
	}
}

// TestDeterministic: a different mod time changes the image (it is really
// written), the same inputs never do.
func TestDeterministic(t *testing.T) {
	n := topologies()[3].node
	sum := func(mt time.Time) [32]byte {
		var b bytes.Buffer
		if _, err := Write(&b, ConfigDrive, n, mt); err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b.Bytes())
	}
	a, b := sum(testModTime), sum(testModTime)
	c := sum(testModTime.Add(time.Second))
	if a != b {
		t.Errorf("same inputs, different bytes")
	}
	if a == c {
		t.Errorf("modification time not in the image")
	}
}

// TestStampTimes: every timestamp in the image is the mod time (the
// library writes time.Now and Go's zero time), read back by the library's
// own reader.
func TestStampTimes(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Write(&buf, ConfigDrive, topologies()[3].node, testModTime); err != nil {
		t.Fatal(err)
	}
	img, err := iso9660.OpenImage(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	want := testModTime.Truncate(time.Second)
	got := map[string]time.Time{}
	var walk func(prefix string, f *iso9660.File)
	walk = func(prefix string, f *iso9660.File) {
		got[prefix+f.Name()] = f.ModTime().UTC()
		if !f.IsDir() {
			return
		}
		children, err := f.GetChildren()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range children {
			walk(prefix+f.Name()+"/", c)
		}
	}
	walk("", root)
	wantTimes := map[string]time.Time{}
	for name := range got {
		wantTimes[name] = want
	}
	if len(got) != 5 { // root, openstack, latest and two files
		t.Errorf("walked %d entries, want 5: %v", len(got), got)
	}
	if diff := cmp.Diff(wantTimes, got); diff != "" {
		t.Errorf("recording times (-want +got):\n%s", diff)
	}
	if err := stampTimes(make([]byte, 100), testModTime); err == nil {
		t.Error("stampTimes on a non-image: no error")
	}
}

func TestFormats(t *testing.T) {
	for _, s := range []string{"configdrive", "nocloud"} {
		f, err := ParseFormat(s)
		if err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("iso"); err == nil {
		t.Error("ParseFormat(iso): no error")
	}
	if _, err := Files("iso", Node{Name: "n"}); err == nil {
		t.Error("Files(iso): no error")
	}
}
