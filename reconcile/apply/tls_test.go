package apply

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/schema"
)

// TestCAFileReachesDriver: a node's bmc.tls settings become the driver's
// TLS config; a missing CA file stalls the node before any BMC call.
func TestCAFileReachesDriver(t *testing.T) {
	tests := []struct {
		name      string
		tls       *schema.TLS
		wantCA    string
		wantSkip  bool
		wantStall string
	}{
		{"default verifies", nil, "", false, ""},
		{"own CA", &schema.TLS{Verify: true, CAFile: "/etc/metalsync/ca.pem"}, "PEM", false, ""},
		{"verification off", &schema.TLS{Verify: false}, "", true, ""},
		{"missing CA", &schema.TLS{Verify: true, CAFile: "/nope.pem"}, "", false, "bmc.tls.caFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			var got *drivers.Config
			entry := r.fleet.Entry()
			open := entry.Open
			entry.Open = func(ctx context.Context, cfg drivers.Config) (drivers.BMC, error) {
				got = &cfg
				return open(ctx, cfg)
			}
			r.ex.Registry = drivers.Registry{"fake": entry}
			r.ex.ReadFile = func(name string) ([]byte, error) {
				if name == "/etc/metalsync/ca.pem" {
					return []byte("PEM"), nil
				}
				return nil, fs.ErrNotExist
			}
			n := fakeNode("n1", "manageable", func(s *schema.NodeSpec) { s.BMC.TLS = tt.tls })
			inv := loaded(&schema.Inventory{Site: &schema.Site{}, Nodes: []*schema.Node{n}})
			_, rep := r.pass(t.Context(), inv)
			if tt.wantStall != "" {
				err := rep.Nodes[0].Err
				var st *StalledError
				if !errors.As(err, &st) || !strings.Contains(err.Error(), tt.wantStall) {
					t.Fatalf("err = %v, want a stall naming %s", err, tt.wantStall)
				}
				if got != nil {
					t.Errorf("driver opened despite the missing CA")
				}
				return
			}
			if got == nil {
				t.Fatalf("driver never opened: %+v", rep)
			}
			if d := cmp.Diff(tt.wantCA, string(got.CAPEM)); d != "" {
				t.Errorf("CAPEM (-want +got):\n%s", d)
			}
			if got.InsecureSkipVerify != tt.wantSkip {
				t.Errorf("InsecureSkipVerify = %v, want %v", got.InsecureSkipVerify, tt.wantSkip)
			}
		})
	}
}
