// Package hints picks the root disk: with Ironic's root device hints when
// the node has them, else the way IPA guesses (smallest disk of at least
// 4 GiB).
package hints

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"metalsync.dev/metalsync/agentapi"
)

// MinRootBytes is the smallest disk chosen without hints (IPA's
// guess_root_disk minimum).
const MinRootBytes = 4 << 30

// ErrNoMatch is returned when no disk satisfies the hints.
var ErrNoMatch = errors.New("no disk matches")

// Choose returns the root disk among disks. With hints, every given hint
// must match and the first match in name order wins, as in IPA's
// match_root_device_hints. Without hints, the smallest disk of at least
// MinRootBytes, sorted by (size, name).
func Choose(disks []agentapi.Disk, h *agentapi.RootDeviceHints) (agentapi.Disk, error) {
	sorted := append([]agentapi.Disk(nil), disks...)
	if h == nil || *h == (agentapi.RootDeviceHints{}) {
		sort.Slice(sorted, func(i, j int) bool {
			if sorted[i].SizeBytes != sorted[j].SizeBytes {
				return sorted[i].SizeBytes < sorted[j].SizeBytes
			}
			return sorted[i].Name < sorted[j].Name
		})
		for _, d := range sorted {
			if d.SizeBytes >= MinRootBytes {
				return d, nil
			}
		}
		return agentapi.Disk{}, fmt.Errorf("root disk: %w: none of %d disks has at least 4 GiB", ErrNoMatch, len(disks))
	}
	if h.Size < 0 {
		return agentapi.Disk{}, fmt.Errorf("root device hints: size %d GiB is not positive", h.Size)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, d := range sorted {
		if Match(d, h) {
			return d, nil
		}
	}
	return agentapi.Disk{}, fmt.Errorf("root disk: %w the hints %s", ErrNoMatch, describe(h))
}

// Match reports whether d satisfies every hint that is set. String hints
// compare after Ironic's normalisation (trim, lower case, URL quoting, on
// both sides); a device with an empty value for a given hint never
// matches. Size is in GiB and must equal the disk's size exactly, as
// Ironic's "== N" on size/GiB does.
func Match(d agentapi.Disk, h *agentapi.RootDeviceHints) bool {
	strs := []struct{ hint, dev string }{
		{h.Model, d.Model}, {h.Vendor, d.Vendor}, {h.Serial, d.Serial},
		{h.WWN, d.WWN}, {h.HCTL, d.HCTL},
	}
	for _, s := range strs {
		if s.hint != "" && !equal(s.hint, s.dev) {
			return false
		}
	}
	if h.Name != "" {
		name := h.Name
		if !strings.HasPrefix(name, "/dev/") {
			name = "/dev/" + name
		}
		if !equal(name, d.Name) {
			return false
		}
	}
	if h.Size > 0 && d.SizeBytes != h.Size<<30 {
		return false
	}
	if h.Rotational != nil && *h.Rotational != d.Rotational {
		return false
	}
	return true
}

func equal(hint, dev string) bool {
	n := normalize(dev)
	return n != "" && normalize(hint) == n
}

// normalize is Ironic's _normalize_hint_expression for a value without
// operator: strip, lower case, then quote.
func normalize(s string) string {
	return url.PathEscape(strings.ToLower(strings.TrimSpace(s)))
}

func describe(h *agentapi.RootDeviceHints) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", k, v))
		}
	}
	add("name", h.Name)
	add("model", h.Model)
	add("vendor", h.Vendor)
	add("serial", h.Serial)
	add("wwn", h.WWN)
	add("hctl", h.HCTL)
	if h.Size > 0 {
		parts = append(parts, fmt.Sprintf("size=%dGiB", h.Size))
	}
	if h.Rotational != nil {
		parts = append(parts, fmt.Sprintf("rotational=%t", *h.Rotational))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
