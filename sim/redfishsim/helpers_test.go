package redfishsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/internal/clock/clocktest"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testSim is a simulator behind an httptest server, on a fake clock.
type testSim struct {
	*Server
	clock *clocktest.Fake
	url   string
}

func newTestSim(t *testing.T, cfg Config) *testSim {
	t.Helper()
	clock := clocktest.New(t0)
	cfg.Clock = clock
	if len(cfg.Systems) == 0 {
		cfg.Systems = Systems(2, SystemConfig{})
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		ts.Close()
	})
	return &testSim{Server: sim, clock: clock, url: ts.URL}
}

// resp is a decoded answer.
type resp struct {
	status int
	header http.Header
	body   map[string]any
}

// do sends one request with basic auth (unless hdr sets X-Auth-Token or
// Authorization to "-") and decodes the JSON answer.
func do(t *testing.T, method, url string, body any, hdr map[string]string) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", "password")
	for k, v := range hdr {
		if k == "Authorization" && v == "-" {
			req.Header.Del("Authorization")
			continue
		}
		if k == "X-Auth-Token" {
			req.Header.Del("Authorization")
		}
		req.Header.Set(k, v)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer r.Body.Close()
	out := resp{status: r.StatusCode, header: r.Header}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v: %s", method, url, err, b)
		}
	}
	return out
}

// field walks a decoded document by keys and array indexes ("Boot",
// "BootSourceOverrideTarget").
func field(d any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := d.(map[string]any)
			if !ok {
				return nil
			}
			d = m[k]
		case int:
			a, ok := d.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			d = a[k]
		}
	}
	return d
}

// errorID is the first MessageId of a Redfish error body.
func errorID(r resp) any {
	return field(r.body, "error", "@Message.ExtendedInfo", 0, "MessageId")
}
