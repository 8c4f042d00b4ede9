package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"

	"metalsync.dev/metalsync/schema"
)

// Observed is the observed state of every node by name: what the status
// files recorded, possibly refreshed with live power reads.
type Observed map[string]schema.NodeStatusBody

// ObservedFromStatus builds the observation from status files.
func ObservedFromStatus(status map[string]*schema.NodeStatus) Observed {
	o := make(Observed, len(status))
	for name, st := range status {
		if st != nil {
			o[name] = st.Status
		}
	}
	return o
}

// Clone returns a copy that can be changed (refreshed) on its own.
func (o Observed) Clone() Observed { return maps.Clone(o) }

// Digest is a sha256 over the canonical JSON form of the observation (map
// keys sorted, struct fields in declaration order), so that a saved plan
// can tell whether what it was made against has moved.
func (o Observed) Digest() string {
	if o == nil {
		o = Observed{}
	}
	return digestJSON(o)
}

// InventoryDigest is a sha256 over the canonical desired state: site,
// nodes, owners and templates, without status and file positions.
func InventoryDigest(inv *schema.Inventory) string {
	return digestJSON(struct {
		Site      *schema.Site             `json:"site"`
		Nodes     []*schema.Node           `json:"nodes"`
		Owners    []*schema.Owner          `json:"owners"`
		Templates []*schema.DeployTemplate `json:"templates"`
	}{inv.Site, inv.Nodes, inv.Owners, inv.Templates})
}

// digestJSON hashes v's JSON form, streamed into the hash so that a 50k
// node inventory is not held twice in memory.
func digestJSON(v any) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only values JSON cannot represent (NaN, channels) get here; the
		// schema types hold none. Hashing the error keeps the digest from
		// matching any real input.
		h.Reset()
		h.Write([]byte("unencodable: " + err.Error()))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
