package render

import (
	"encoding/json"
	"net/netip"
	"testing"

	"sigs.k8s.io/yaml"

	"metalsync.dev/metalsync/schema"
)

// FuzzNetworkData feeds arbitrary networks (as JSON of schema.Network) to
// both renderers. They must never panic; what they accept must be valid
// JSON whose addresses all parse, and NetworkConfig must accept whatever
// NetworkData accepts (the config drive is the stricter format).
func FuzzNetworkData(f *testing.F) {
	for _, topo := range topologies() {
		b, err := json.Marshal(topo.node.Network)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var n schema.Network
		if err := json.Unmarshal(data, &n); err != nil {
			return
		}
		nd, err := NetworkData(&n)
		nc, v2err := NetworkConfig(&n)
		if v2err == nil {
			checkV2(t, &n, nc)
		}
		if err != nil {
			return
		}
		if v2err != nil {
			t.Fatalf("NetworkData accepted what NetworkConfig rejects: %v", v2err)
		}
		var doc osNetworkData
		if err := json.Unmarshal(nd, &doc); err != nil {
			t.Fatalf("network_data.json is not JSON: %v", err)
		}
		ids := map[string]bool{}
		for _, l := range doc.Links {
			ids[l.ID] = true
		}
		for _, nw := range doc.Networks {
			if !ids[nw.Link] {
				t.Fatalf("network %s on unknown link %q", nw.ID, nw.Link)
			}
			for _, s := range []string{nw.IPAddress, nw.Netmask} {
				if _, err := netip.ParseAddr(s); err != nil {
					t.Fatalf("network %s: %v", nw.ID, err)
				}
			}
			for _, r := range nw.Routes {
				for _, s := range []string{r.Network, r.Netmask, r.Gateway} {
					if _, err := netip.ParseAddr(s); err != nil {
						t.Fatalf("network %s route: %v", nw.ID, err)
					}
				}
			}
		}
	})
}

// checkV2 parses the hand-written YAML back and counts its interfaces.
func checkV2(t *testing.T, n *schema.Network, doc []byte) {
	t.Helper()
	var v2 struct {
		Version   int            `json:"version"`
		Ethernets map[string]any `json:"ethernets"`
		Bonds     map[string]any `json:"bonds"`
		VLANs     map[string]any `json:"vlans"`
	}
	if err := yaml.UnmarshalStrict(doc, &v2); err != nil {
		t.Fatalf("network-config is not YAML of the expected shape: %v\n%s", err, doc)
	}
	if got := len(v2.Ethernets) + len(v2.Bonds) + len(v2.VLANs); v2.Version != 2 || got != len(n.Links) {
		t.Fatalf("network-config: version %d with %d interfaces, want version 2 with %d", v2.Version, got, len(n.Links))
	}
}
