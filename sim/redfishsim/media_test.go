package redfishsim

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// imageServer serves test images and records what BMCs asked for.
type imageServer struct {
	*httptest.Server
	mu  sync.Mutex
	log []string // "METHOD path range"
}

func newImageServer(t *testing.T) *imageServer {
	is := &imageServer{}
	iso := bytes.Repeat([]byte("CD001"), 20000)
	is.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		is.log = append(is.log, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+r.Header.Get("Range")))
		is.mu.Unlock()
		switch r.URL.Path {
		case "/ok.iso":
			http.ServeContent(w, r, "ok.iso", t0, bytes.NewReader(iso))
		case "/nohead.iso":
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			w.Write(iso[:100])
		case "/empty.iso":
			w.WriteHeader(http.StatusOK)
		case "/secret.iso":
			w.WriteHeader(http.StatusForbidden)
		case "/broken.iso":
			w.WriteHeader(http.StatusBadGateway)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(is.Close)
	return is
}

func (is *imageServer) requests() []string {
	is.mu.Lock()
	defer is.mu.Unlock()
	out := is.log
	is.log = nil
	return out
}

func TestVirtualMediaInsert(t *testing.T) {
	img := newImageServer(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	sim := newTestSim(t, Config{Systems: []SystemConfig{
		{ID: "actions", Media: MediaActions},
		{ID: "patch", Media: MediaPatch},
		{ID: "both", Media: MediaBoth},
	}})
	tests := []struct {
		name     string
		system   string
		patch    bool // PATCH the resource instead of the InsertMedia action
		image    string
		status   int
		msgID    any
		inserted bool
		fetched  []string
	}{
		{"action", "actions", false, img.URL + "/ok.iso", 204, nil, true, []string{"HEAD /ok.iso", "GET /ok.iso bytes=0-36863"}},
		{"patch on actions-only BMC", "actions", true, img.URL + "/ok.iso", 405, msgActionNotSupported, false, nil},
		{"patch", "patch", true, img.URL + "/ok.iso", 204, nil, true, []string{"HEAD /ok.iso", "GET /ok.iso bytes=0-36863"}},
		{"action on patch-only BMC", "patch", false, img.URL + "/ok.iso", 404, msgResourceMissing, false, nil},
		{"both: action", "both", false, img.URL + "/ok.iso", 204, nil, true, []string{"HEAD /ok.iso", "GET /ok.iso bytes=0-36863"}},
		{"both: patch", "both", true, img.URL + "/ok.iso", 204, nil, true, []string{"HEAD /ok.iso", "GET /ok.iso bytes=0-36863"}},
		{"missing image", "actions", false, img.URL + "/missing.iso", 400, msgActionParamValue, false, []string{"HEAD /missing.iso"}},
		{"forbidden image", "patch", true, img.URL + "/secret.iso", 400, msgUnauthorizedURI, false, []string{"HEAD /secret.iso"}},
		{"image server error", "actions", false, img.URL + "/broken.iso", 500, msgInternal, false, []string{"HEAD /broken.iso"}},
		{"image server down", "both", false, closed.URL + "/ok.iso", 500, msgInternal, false, nil},
		{"server without HEAD", "actions", false, img.URL + "/nohead.iso", 204, nil, true, []string{"HEAD /nohead.iso", "GET /nohead.iso bytes=0-36863"}},
		{"empty image", "actions", false, img.URL + "/empty.iso", 400, msgActionParamValue, false, []string{"HEAD /empty.iso", "GET /empty.iso bytes=0-36863"}},
		{"not http", "actions", false, "ftp://example.org/x.iso", 400, msgActionParamFormat, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := sim.url + "/redfish/v1/Managers/" + tt.system + "/VirtualMedia/CD1"
			var r resp
			if tt.patch {
				r = do(t, "PATCH", dev, map[string]any{"Image": tt.image, "Inserted": true}, nil)
			} else {
				r = do(t, "POST", dev+"/Actions/VirtualMedia.InsertMedia", map[string]any{"Image": tt.image, "Inserted": true, "WriteProtected": true}, nil)
			}
			if r.status != tt.status || errorID(r) != tt.msgID {
				t.Errorf("insert: %d %v, want %d %v: %v", r.status, errorID(r), tt.status, tt.msgID, r.body)
			}
			if diff := cmp.Diff(tt.fetched, img.requests()); diff != "" {
				t.Errorf("image server saw (-want +got):\n%s", diff)
			}
			got := do(t, "GET", dev, nil, nil).body
			if got["Inserted"] != tt.inserted {
				t.Errorf("Inserted %v, want %v", got["Inserted"], tt.inserted)
			}
			if tt.inserted && got["Image"] != tt.image {
				t.Errorf("Image %v, want %s", got["Image"], tt.image)
			}
			// Eject the way the BMC allows, for the next case.
			if sim.systems[tt.system].cfg.Media.actions() {
				do(t, "POST", dev+"/Actions/VirtualMedia.EjectMedia", map[string]any{}, nil)
			} else {
				do(t, "PATCH", dev, map[string]any{"Image": nil, "Inserted": false}, nil)
			}
			if st, _ := sim.System(tt.system); st.Media[0] != (MediaState{ID: "CD1"}) {
				t.Errorf("after eject: %+v", st.Media[0])
			}
		})
	}
}

func TestVirtualMediaRules(t *testing.T) {
	img := newImageServer(t)
	sim := newTestSim(t, Config{Systems: Systems(1, SystemConfig{Media: MediaBoth})})
	dev := sim.url + "/redfish/v1/Managers/sys-0001/VirtualMedia/RemovableDisk1"
	insert := dev + "/Actions/VirtualMedia.InsertMedia"
	tests := []struct {
		name   string
		method string
		url    string
		body   any
		status int
	}{
		{"insert", "POST", insert, map[string]any{"Image": img.URL + "/ok.iso"}, 204},
		{"insert again", "POST", insert, map[string]any{"Image": img.URL + "/ok.iso"}, 409},
		{"patch replaces", "PATCH", dev, map[string]any{"Image": img.URL + "/nohead.iso"}, 204},
		{"unknown property", "PATCH", dev, map[string]any{"MediaTypes": []string{"CD"}}, 400},
		{"eject by patch", "PATCH", dev, map[string]any{"Inserted": false}, 204},
		{"insert without image", "POST", insert, map[string]any{}, 400},
		{"protocol mismatch", "POST", insert, map[string]any{"Image": img.URL + "/ok.iso", "TransferProtocolType": "HTTPS"}, 400},
		{"unknown device", "GET", sim.url + "/redfish/v1/Managers/sys-0001/VirtualMedia/Floppy9", nil, 404},
		{"unknown action", "POST", dev + "/Actions/VirtualMedia.Explode", map[string]any{}, 404},
	}
	for _, tt := range tests {
		if r := do(t, tt.method, tt.url, tt.body, nil); r.status != tt.status {
			t.Errorf("%s: %d, want %d: %v", tt.name, r.status, tt.status, r.body)
		}
	}
	d := do(t, "GET", dev, nil, nil).body
	if d["Inserted"] != false || d["Image"] != nil || d["ConnectedVia"] != "NotConnected" {
		t.Errorf("after eject: %v", d)
	}
}

func TestBootFromVirtualMedia(t *testing.T) {
	img := newImageServer(t)
	sim := newTestSim(t, Config{})
	sys := sim.url + "/redfish/v1/Systems/sys-0001"
	do(t, "POST", sim.url+"/redfish/v1/Managers/sys-0001/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia", map[string]any{"Image": img.URL + "/ok.iso"}, nil)
	do(t, "PATCH", sys, map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": "Cd", "BootSourceOverrideEnabled": "Once"}}, nil)
	do(t, "POST", sys+"/Actions/ComputerSystem.Reset", map[string]any{"ResetType": "On"}, nil)
	st, _ := sim.System("sys-0001")
	if diff := cmp.Diff(BootRecord{Time: t0, Target: "Cd", Mode: "UEFI", Image: img.URL + "/ok.iso"}, st.LastBoot); diff != "" {
		t.Errorf("last boot (-want +got):\n%s", diff)
	}
}

func TestVirtualMediaOnSystem(t *testing.T) {
	img := newImageServer(t)
	sim := newTestSim(t, Config{Systems: Systems(1, SystemConfig{MediaOnSystem: true})})
	sys := sim.url + "/redfish/v1/Systems/sys-0001"
	tests := []struct {
		name   string
		method string
		url    string
		body   any
		status int
	}{
		{"collection under the system", "GET", sys + "/VirtualMedia", nil, 200},
		{"insert under the system", "POST", sys + "/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia", map[string]any{"Image": img.URL + "/ok.iso"}, 204},
		{"nothing under the manager", "GET", sim.url + "/redfish/v1/Managers/sys-0001/VirtualMedia", nil, 404},
	}
	for _, tt := range tests {
		if r := do(t, tt.method, tt.url, tt.body, nil); r.status != tt.status {
			t.Errorf("%s: %d, want %d: %v", tt.name, r.status, tt.status, r.body)
		}
	}
	links := []any{
		field(do(t, "GET", sys, nil, nil).body, "VirtualMedia", "@odata.id"),
		field(do(t, "GET", sim.url+"/redfish/v1/Managers/sys-0001", nil, nil).body, "VirtualMedia", "@odata.id"),
		field(do(t, "GET", sys+"/VirtualMedia/CD1", nil, nil).body, "Actions", "#VirtualMedia.InsertMedia", "target"),
	}
	want := []any{"/redfish/v1/Systems/sys-0001/VirtualMedia", nil, "/redfish/v1/Systems/sys-0001/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia"}
	if diff := cmp.Diff(want, links); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
}
