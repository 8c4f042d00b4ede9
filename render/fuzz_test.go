package render

import (
	"encoding/json"
	"testing"

	"sigs.k8s.io/yaml"

	"metalsync.dev/metalsync/render/networkdata"
	"metalsync.dev/metalsync/schema"
)

// FuzzNetworkData feeds arbitrary networks (as JSON of schema.Network) to
// both renderers. They must never panic; what NetworkData accepts must
// pass the agent's networkdata.Parse, and NetworkConfig must accept whatever
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
		nc, v1err := NetworkConfig(&n)
		if v1err == nil {
			checkV1(t, &n, nc)
		}
		if err != nil {
			return
		}
		if v1err != nil {
			t.Fatalf("NetworkData accepted what NetworkConfig rejects: %v", v1err)
		}
		// The agent reads what the renderer writes: one set of types, and
		// the parser must accept every rendering.
		if _, err := networkdata.Parse(nd); err != nil {
			t.Fatalf("the agent's parser rejects the rendered network_data.json: %v\n%s", err, nd)
		}
	})
}

// checkV1 parses the hand-written YAML back and counts its interfaces.
func checkV1(t *testing.T, n *schema.Network, doc []byte) {
	t.Helper()
	var v1 struct {
		Version int `json:"version"`
		Config  []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"config"`
	}
	if err := yaml.Unmarshal(doc, &v1); err != nil {
		t.Fatalf("network-config is not YAML of the expected shape: %v\n%s", err, doc)
	}
	links := 0
	for _, c := range v1.Config {
		if c.Type != "nameserver" {
			links++
		}
	}
	if v1.Version != 1 || links != len(n.Links) {
		t.Fatalf("network-config: version %d with %d interfaces, want version 1 with %d", v1.Version, links, len(n.Links))
	}
}
