package apply

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/redfish"
	"metalsync.dev/metalsync/schema"
)

// TestCredentialsFollowTheSite checks that the executor sends a BMC
// nothing, not even a connection's first request, unless the site lets
// the node's BMC have its credentials: the check sits where credentials
// are resolved, before the driver is opened.
func TestCredentialsFollowTheSite(t *testing.T) {
	tests := []struct {
		name     string
		networks []schema.BMCNetwork
		set      string
		reached  bool
	}{
		{"plain http refused", []schema.BMCNetwork{{CIDR: "127.0.0.0/8"}}, "bmc", false},
		{"outside the networks", []schema.BMCNetwork{{CIDR: "10.0.0.0/8", AllowPlainHTTP: true}}, "bmc", false},
		{"network of another owner", []schema.BMCNetwork{{CIDR: "127.0.0.0/8", AllowPlainHTTP: true, Owners: []string{"other"}}}, "bmc", false},
		{"unknown set", []schema.BMCNetwork{{CIDR: "127.0.0.0/8", AllowPlainHTTP: true}}, "nope", false},
		{"plain http allowed", []schema.BMCNetwork{{CIDR: "127.0.0.0/8", AllowPlainHTTP: true}}, "bmc", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				requests.Add(1)
				http.Error(w, "no", http.StatusServiceUnavailable)
			}))
			t.Cleanup(srv.Close)
			r := newRig(t)
			r.ex.Registry = drivers.Registry{"redfish": {Open: redfish.Open, Capabilities: redfish.Capabilities()}}
			n := fakeNode("n1", "manageable", func(s *schema.NodeSpec) {
				s.BMC.Address = "redfish+http://" + strings.TrimPrefix(srv.URL, "http://") + "/redfish/v1/Systems/1"
				s.BMC.CredentialsRef.Set = tt.set
			})
			inv := &schema.Inventory{Nodes: []*schema.Node{n}, Site: &schema.Site{Spec: schema.SiteSpec{BMCNetworks: tt.networks}}}
			_, rep := r.pass(t.Context(), inv)
			if got := requests.Load() > 0; got != tt.reached {
				t.Errorf("BMC reached = %v, want %v (outcomes %v)", got, tt.reached, outcomes(rep))
			}
			if !tt.reached && (len(rep.Nodes) != 1 || rep.Nodes[0].Outcome != Failed || Classify(rep.Nodes[0].Err) != Stalled) {
				t.Errorf("outcomes = %v, want the node failed, stalled for a person", outcomes(rep))
			}
		})
	}
}
