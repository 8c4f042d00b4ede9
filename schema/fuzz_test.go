package schema

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary bytes as one node file next to the example
// inventory. Loading must never panic, and an invalid file must always come
// with a positioned diagnostic for that file. `make test` runs the seed
// corpus (every file of inventory-example and testdata/fuzz); `make fuzz`
// explores.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("../inventory-example/*/*/*.yaml")
	more, _ := filepath.Glob("../inventory-example/*/*.yaml")
	for _, p := range append(files, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(""))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("kind: Node\n"))
	f.Add([]byte("[1, 2]"))
	f.Add([]byte("apiVersion: metalsync.dev/v1alpha1\nkind: Node\nmetadata: {name: x}\nspec: {network: {links: [{name: a, type: vlan, id: 0}]}}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	// Owners and templates only, so that references resolve and each run
	// stays fast.
	base := fstest.MapFS{}
	for k, v := range example(f) {
		if !strings.HasPrefix(k, NodesDir+"/") {
			base[k] = v
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{}
		for k, v := range base {
			fsys[k] = v
		}
		fsys["nodes/fuzz/x.yaml"] = &fstest.MapFile{Data: data}
		inv, diags := Load(fsys)
		if inv == nil {
			t.Fatal("Load returned no inventory")
		}
		for _, d := range diags {
			if d.File == "" || d.Message == "" || d.Code == "" {
				t.Fatalf("diagnostic without file, message or code: %#v", d)
			}
			if strings.Contains(d.Message, "\x00") {
				t.Fatalf("diagnostic with NUL: %q", d.Message)
			}
		}
	})
}

// FuzzParseBMCAddress: the BMC URL parser never panics, and what it accepts
// has a driver and a host.
func FuzzParseBMCAddress(f *testing.F) {
	for _, s := range []string{
		"redfish+https://10.0.0.1/redfish/v1/Systems/1", "redfish+http://[::1]:8000/redfish/v1/Systems/sys-0001",
		"ipmi://[2001:db8::1]:623", "ipmi://bmc-1.example.net", "fake://r1-n01", "https://x", "ipmi://u:p@h",
		"redfish+https://[fe80::1%25eth0]/", "ipmi://h:99999", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseBMCAddress(s)
		if err != nil {
			return
		}
		if a.Driver == "" || a.Endpoint == nil || a.Host() == "" {
			t.Fatalf("accepted %q without driver or host: %+v", s, a)
		}
		if a.Endpoint.User != nil {
			t.Fatalf("accepted credentials in %q", s)
		}
	})
}

// FuzzCheckBMCNetwork: the site's network check never panics on a node's
// address and never lets a real BMC outside the site's networks through:
// an accepted redfish or ipmi host is an IP inside 10.20.0.0/24 or a name
// below bmc.example.net, and plain HTTP is accepted only for the lab host.
func FuzzCheckBMCNetwork(f *testing.F) {
	site := &SiteSpec{BMCNetworks: []BMCNetwork{
		{CIDR: "10.20.0.0/24"},
		{Host: "*.bmc.example.net"},
		{Host: "lab.example.org", AllowPlainHTTP: true},
	}}
	for _, s := range []string{
		"redfish+https://10.20.0.5/redfish/v1/Systems/1", "redfish+http://10.20.0.5", "ipmi://[::ffff:10.20.0.9]:623",
		"redfish+https://r1.BMC.example.net", "redfish+https://bmc.example.net.attacker.io", "redfish+http://lab.example.org:8000",
		"ipmi://10.20.1.1", "fake://x", "redfish+https://0x0a.20.0.1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseBMCAddress(s)
		if err != nil || a.Driver == "fake" {
			return
		}
		if site.CheckBMCNetwork("o", a) != nil {
			return
		}
		host := strings.ToLower(a.Host())
		if ip, err := netip.ParseAddr(host); err == nil {
			if !netip.MustParsePrefix("10.20.0.0/24").Contains(ip.Unmap()) {
				t.Fatalf("accepted %q outside the networks", s)
			}
		} else if !strings.HasSuffix(host, ".bmc.example.net") && host != "lab.example.org" {
			t.Fatalf("accepted host %q outside the networks", host)
		}
		if a.Endpoint.Scheme == "http" && host != "lab.example.org" {
			t.Fatalf("accepted plain HTTP to %q", host)
		}
	})
}
