package mediaserver

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/redfish"
	"metalsync.dev/metalsync/sim/redfishsim"
)

// TestBMCInsertsPublishedMedia: a simulated Redfish BMC, driven by the
// Redfish driver, inserts a published image from the media server over
// IPv4 and over [::1] (the simulator fetches it with HEAD and a ranged GET,
// as BMCs do), and can no longer once the image is unpublished.
func TestBMCInsertsPublishedMedia(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			e := start(t, host, nil)
			// The simulator's clock is real; the media server's TTL clock is
			// the test's, so the image does not expire mid-test.
			sim, err := redfishsim.New(redfishsim.Config{Systems: redfishsim.Systems(1, redfishsim.SystemConfig{}), Username: "admin", Password: "pw-media-1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sim.Close)
			l, err := sim.Listen(strings.Replace(host, "::1", "[::1]", 1) + ":0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			u, _ := url.Parse(l.SystemURL("sys-0001"))
			b, err := redfish.Open(t.Context(), drivers.Config{Endpoint: u, Username: "admin", Password: "pw-media-1", CallTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(t.Context())
			mm := b.(drivers.MediaManager)

			pub, err := e.srv.Publish("r2-n04", bytes.NewReader(testImage(1<<20)), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if err := mm.InsertMedia(t.Context(), drivers.MediaCD, pub.URL); err != nil {
				t.Fatalf("insert %s: %v", pub.URL, err)
			}
			st, err := mm.MediaStatus(t.Context(), drivers.MediaCD)
			if err != nil || !st.Inserted || st.Image != pub.URL {
				t.Fatalf("media status %+v, %v; want %s inserted", st, err, pub.URL)
			}
			if log := e.log.String(); !strings.Contains(log, "r2-n04") || strings.Contains(log, strings.TrimPrefix(pub.Path, "/media/")) {
				t.Errorf("access log must name the node and not the token:\n%s", log)
			}
			if err := mm.EjectMedia(t.Context(), drivers.MediaCD); err != nil {
				t.Fatal(err)
			}
			if err := e.srv.Unpublish("r2-n04"); err != nil {
				t.Fatal(err)
			}
			err = mm.InsertMedia(t.Context(), drivers.MediaCD, pub.URL)
			if err == nil {
				t.Fatal("BMC inserted an unpublished image")
			}
			if errors.Is(err, drivers.ErrUnsupported) {
				t.Errorf("unpublished image reported as unsupported: %v", err)
			}
		})
	}
}
