package mediaserver

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/render"
	"metalsync.dev/metalsync/schema"
)

func testNode(dhcp *bool) *schema.Node {
	return &schema.Node{
		Metadata: schema.Meta{Name: "r1-n07"},
		Spec: schema.NodeSpec{Network: &schema.Network{
			DHCP:   dhcp,
			Links:  []schema.Link{{Name: "eno1", Type: "phy", MAC: "52:54:00:00:00:07", Addresses: []string{"192.0.2.7/24"}}},
			Routes: []schema.Route{{To: "0.0.0.0/0", Via: "192.0.2.1"}},
		}},
	}
}

// TestPublisher: the published image is exactly what render writes for
// the node, behind a URL that Unpublish revokes.
func TestPublisher(t *testing.T) {
	no := false
	tests := []struct {
		name     string
		site     *schema.Site
		opts     PublisherOptions
		dhcp     *bool
		wantTTL  time.Duration
		wantNet  bool
		wantFmt  render.Format
		wantPath string
	}{
		{name: "defaults", wantTTL: DefaultTTL, wantNet: true, wantFmt: render.ConfigDrive},
		{name: "site ttl", site: &schema.Site{Spec: schema.SiteSpec{Media: &schema.MediaSettings{TTL: "15m"}}}, wantTTL: 15 * time.Minute, wantNet: true, wantFmt: render.ConfigDrive},
		{name: "nocloud, option ttl wins", site: &schema.Site{Spec: schema.SiteSpec{Media: &schema.MediaSettings{TTL: "15m"}}}, opts: PublisherOptions{Format: render.NoCloud, TTL: time.Minute}, wantTTL: time.Minute, wantNet: true, wantFmt: render.NoCloud},
		{name: "site dhcp default", site: &schema.Site{Spec: schema.SiteSpec{DHCP: true}}, wantTTL: DefaultTTL, wantNet: false, wantFmt: render.ConfigDrive},
		{name: "node overrides site dhcp", site: &schema.Site{Spec: schema.SiteSpec{DHCP: true}}, dhcp: &no, wantTTL: DefaultTTL, wantNet: true, wantFmt: render.ConfigDrive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, "127.0.0.1", nil)
			tt.opts.Agent = func(node, _ string) (*render.Agent, error) {
				return &render.Agent{URL: "https://192.0.2.1/agent", Token: "tok-" + node}, nil
			}
			p, err := NewPublisher(e.srv, tt.site, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			node := testNode(tt.dhcp)
			url, sha, err := p.Publish(context.Background(), node, "e1")
			if err != nil {
				t.Fatal(err)
			}
			resp, body := e.get(t, "GET", url, nil)
			if resp.StatusCode != 200 || sum(body) != sha {
				t.Fatalf("download: status %d sha %s, want 200 %s", resp.StatusCode, sum(body), sha)
			}
			rn := render.Node{Name: "r1-n07", Network: node.Spec.Network, Agent: &render.Agent{URL: "https://192.0.2.1/agent", Token: "tok-r1-n07"}}
			if !tt.wantNet {
				rn.Network = nil
			}
			var want bytes.Buffer
			if _, err := render.Write(&want, tt.wantFmt, rn, time.Unix(0, 0)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, want.Bytes()) {
				t.Errorf("published image differs from render.Write(%s, network %v)", tt.wantFmt, tt.wantNet)
			}
			e.srv.mu.Lock()
			gotTTL := e.srv.byNode["r1-n07"].expires.Sub(e.clock.Now())
			e.srv.mu.Unlock()
			if diff := cmp.Diff(tt.wantTTL, gotTTL); diff != "" {
				t.Errorf("ttl (-want +got):\n%s", diff)
			}
			if err := p.Unpublish(context.Background(), "r1-n07"); err != nil {
				t.Fatal(err)
			}
			if resp, _ := e.get(t, "GET", url, nil); resp.StatusCode != 404 {
				t.Errorf("after Unpublish: %d, want 404", resp.StatusCode)
			}
		})
	}
}

// TestPublisherBaseURL: a BMC gets a site base URL of its own IP family.
func TestPublisherBaseURL(t *testing.T) {
	e := start(t, "127.0.0.1", nil)
	site := &schema.Site{Spec: schema.SiteSpec{Media: &schema.MediaSettings{
		BaseURLs: []string{"http://[2001:db8:1::10]:8080", "http://10.10.0.10:8080/"},
	}}}
	p, err := NewPublisher(e.srv, site, PublisherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ bmc, want string }{
		{"redfish+https://10.1.2.3/redfish/v1/Systems/1", "http://10.10.0.10:8080/media/"},
		{"redfish+https://[2001:db8:20::104]/redfish/v1/Systems/1", "http://[2001:db8:1::10]:8080/media/"},
		{"ipmi://bmc-r1-n07.example.net", "http://[2001:db8:1::10]:8080/media/"},
	} {
		node := testNode(nil)
		node.Spec.BMC.Address = tt.bmc
		u, sha, err := p.Publish(context.Background(), node, "e1")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u, tt.want) {
			t.Errorf("BMC %s: URL %s, want prefix %s", tt.bmc, u, tt.want)
		}
		// The same path works on the server itself.
		path := u[strings.Index(u, "/media/"):]
		if resp, body := e.get(t, "GET", e.base+path, nil); resp.StatusCode != 200 || sum(body) != sha {
			t.Errorf("BMC %s: GET %s: %d", tt.bmc, path, resp.StatusCode)
		}
	}
	for _, bad := range []string{"ftp://h/", "http://h/other"} {
		site := &schema.Site{Spec: schema.SiteSpec{Media: &schema.MediaSettings{BaseURLs: []string{bad}}}}
		if _, err := NewPublisher(e.srv, site, PublisherOptions{}); err == nil {
			t.Errorf("base URL %q: no error", bad)
		}
	}
}

func TestPublisherErrors(t *testing.T) {
	e := start(t, "127.0.0.1", nil)
	if _, err := NewPublisher(e.srv, &schema.Site{Spec: schema.SiteSpec{Media: &schema.MediaSettings{TTL: "soon"}}}, PublisherOptions{}); err == nil {
		t.Error("bad site ttl: no error")
	}
	if _, err := NewPublisher(e.srv, nil, PublisherOptions{Format: "floppy"}); err == nil {
		t.Error("bad format: no error")
	}
	p, err := NewPublisher(e.srv, nil, PublisherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := testNode(nil)
	bad.Spec.Network.Routes[0].Via = "198.51.100.1"
	if _, _, err := p.Publish(context.Background(), bad, "e1"); err == nil || !strings.Contains(err.Error(), "node r1-n07") {
		t.Errorf("unrenderable network: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := p.Publish(ctx, testNode(nil), "e1"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	failing, _ := NewPublisher(e.srv, nil, PublisherOptions{Agent: func(string, string) (*render.Agent, error) { return nil, errors.New("no token store") }})
	if _, _, err := failing.Publish(context.Background(), testNode(nil), "e1"); err == nil || !strings.Contains(err.Error(), "no token store") {
		t.Errorf("agent error: %v", err)
	}
}

// executorPublisher is the shape the executor's virtual media step uses.
type executorPublisher interface {
	Publish(ctx context.Context, node *schema.Node, epoch string) (url, sha256 string, err error)
	Unpublish(ctx context.Context, node string) error
}

var _ executorPublisher = (*Publisher)(nil)
