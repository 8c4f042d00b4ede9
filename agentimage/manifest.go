package agentimage

import (
	"encoding/json"
	"fmt"
	"os"
)

// ManifestVersion is the manifest format's version.
const ManifestVersion = 1

// Slot paths: the two config-2 files of the template that each node's
// view replaces.
const (
	SlotMetaData    = "/openstack/latest/meta_data.json"
	SlotNetworkData = "/openstack/latest/network_data.json"
	// SlotSize is each slot's length: room for a CA bundle and a large
	// bond/VLAN network.
	SlotSize = 64 << 10
)

// Manifest describes a template ISO; it is written next to it as
// <iso>.json.
type Manifest struct {
	FormatVersion  int    `json:"formatVersion"`
	BuilderVersion string `json:"builderVersion"`
	// SHA256 and Size are the template ISO's.
	SHA256          string `json:"sha256"`
	Size            int64  `json:"size"`
	SourceDateEpoch int64  `json:"sourceDateEpoch"`
	Kernel          string `json:"kernel"`
	Cmdline         string `json:"cmdline"`
	Agent           struct {
		Package string `json:"package"`
		Version string `json:"version"`
		SHA256  string `json:"sha256"`
	} `json:"agent"`
	Packages []Deb `json:"packages"`
	// Modules are the allow-listed modules the agent loads at boot.
	Modules []string `json:"modules"`
	// Slots are the byte ranges of the slot files, by image path.
	Slots map[string]Slot `json:"slots"`
}

// Slot is a byte range of the ISO holding one file's data.
type Slot struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// ReadManifest reads the manifest at path and checks its shape.
func ReadManifest(path string) (Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, fmt.Errorf("agent image manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("agent image manifest %s: %w", path, err)
	}
	if m.FormatVersion != ManifestVersion {
		return Manifest{}, fmt.Errorf("agent image manifest %s: format version %d, want %d", path, m.FormatVersion, ManifestVersion)
	}
	for _, p := range []string{SlotMetaData, SlotNetworkData} {
		s, ok := m.Slots[p]
		if !ok || s.Offset <= 0 || s.Length <= 0 || s.Offset > m.Size-s.Length {
			return Manifest{}, fmt.Errorf("agent image manifest %s: slot %s missing or outside the image", path, p)
		}
	}
	return m, nil
}
