package redfish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"metalsync.dev/metalsync/drivers"
)

// biosDoc is the part of a Bios resource the driver reads.
type biosDoc struct {
	ODataID    string `json:"@odata.id"`
	Attributes map[string]any
	Settings   struct {
		SettingsObject link
	} `json:"@Redfish.Settings"`
}

// bios reads the system's Bios resource, numbers kept exact.
func (b *BMC) bios(ctx context.Context) (*biosDoc, error) {
	var sys struct{ Bios link }
	if _, err := b.get(ctx, b.system(), &sys); err != nil {
		return nil, err
	}
	if sys.Bios.ID == "" {
		return nil, fmt.Errorf("system has no Bios resource: %w", drivers.ErrUnsupported)
	}
	resp, err := b.get(ctx, sys.Bios.ID)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.UseNumber()
	var doc biosDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("GET %s: decode: %w", sys.Bios.ID, err)
	}
	if doc.ODataID == "" {
		doc.ODataID = sys.Bios.ID
	}
	for k, v := range doc.Attributes {
		doc.Attributes[k] = plainNumber(v)
	}
	return &doc, nil
}

// plainNumber turns a JSON number into int64 when it is whole, else
// float64, so that callers compare attributes with ordinary Go values.
func plainNumber(v any) any {
	n, ok := v.(json.Number)
	if !ok {
		return v
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	f, _ := n.Float64()
	return f
}

// BIOSAttributes returns the current BIOS attributes.
func (b *BMC) BIOSAttributes(ctx context.Context) (map[string]any, error) {
	doc, err := b.bios(ctx)
	if err != nil {
		return nil, fmt.Errorf("redfish: bios attributes: %w", err)
	}
	if doc.Attributes == nil {
		doc.Attributes = map[string]any{}
	}
	return doc.Attributes, nil
}

// ApplyBIOS stages the attributes that differ from the current ones at the
// @Redfish.Settings object (or the Bios resource itself when the BMC has
// none); most BMCs apply them at the next reboot. Unknown names are refused
// before anything is sent.
func (b *BMC) ApplyBIOS(ctx context.Context, attrs map[string]any) error {
	doc, err := b.bios(ctx)
	if err != nil {
		return fmt.Errorf("redfish: apply bios: %w", err)
	}
	var unknown []string
	changed := map[string]any{}
	for k, v := range attrs {
		cur, ok := doc.Attributes[k]
		switch {
		case !ok:
			unknown = append(unknown, k)
		case !sameValue(cur, v):
			changed[k] = v
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("redfish: apply bios: unknown attributes %s (the BMC has %d, e.g. %s)",
			strings.Join(unknown, ", "), len(doc.Attributes), strings.Join(firstN(slices.Sorted(maps.Keys(doc.Attributes)), 5), ", "))
	}
	if len(changed) == 0 {
		return nil
	}
	target := doc.Settings.SettingsObject.ID
	if target == "" {
		target = doc.ODataID
	}
	if _, err := b.patch(ctx, target, "", map[string]any{"Attributes": changed}); err != nil {
		return fmt.Errorf("redfish: apply bios: %w", err)
	}
	return nil
}

// sameValue compares a BMC value with a requested one, numbers by value
// whatever their Go type.
func sameValue(cur, want any) bool {
	cf, ok1 := toFloat(cur)
	wf, ok2 := toFloat(want)
	if ok1 && ok2 {
		return cf == wf
	}
	return reflect.DeepEqual(cur, want)
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
