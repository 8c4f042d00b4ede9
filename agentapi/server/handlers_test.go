package server

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/schema"
)

func TestImage(t *testing.T) {
	e := newEnv(t, "")
	a := e.allow(t, "n1", "e1")
	other := e.allow(t, "n2", "e2")
	img := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(rng.Uint32())
	}
	sum := e.images.add("https://images.example/os.raw", img)
	rot := false
	done := runStep(t.Context(), e.srv, "n1", "c1", agentStep("deploy", "write_image", map[string]any{
		"url": "https://images.example/os.raw", "checksum": sum, "format": "raw",
		"root_device_hints": &schema.RootDeviceHints{Serial: "S1", Size: 8, Rotational: &rot},
	}))
	cmd := a.take(t)
	var args agentapi.WriteImageArgs
	if err := json.Unmarshal(cmd.Args, &args); err != nil {
		t.Fatal(err)
	}
	sha := strings.TrimPrefix(sum, "sha256:")
	want := agentapi.WriteImageArgs{ImagePath: agentapi.PathImage + sha, SHA256: sha, Size: int64(len(img)),
		Hints: &agentapi.RootDeviceHints{Serial: "S1", Size: 8, Rotational: &rot}, ConfigDrive: true}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Fatalf("write_image args (-want +got):\n%s", diff)
	}

	tests := []struct {
		name     string
		agent    *testAgent
		path     string
		rng      string
		wantCode int
		want     []byte
	}{
		{"whole", a, args.ImagePath, "", http.StatusOK, img},
		{"range", a, args.ImagePath, "bytes=1000-1999", http.StatusPartialContent, img[1000:2000]},
		{"tail", a, args.ImagePath, "bytes=-10", http.StatusPartialContent, img[len(img)-10:]},
		{"other node", other, args.ImagePath, "", http.StatusNotFound, nil},
		{"not handed out", a, agentapi.PathImage + strings.Repeat("0", 64), "", http.StatusNotFound, nil},
		{"not a sha", a, agentapi.PathImage + "../../etc/passwd", "", http.StatusNotFound, nil},
		{"config drive", a, agentapi.PathConfigDrive, "", http.StatusOK, []byte("config-drive-of-n1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.rng != "" {
				hdr.Set("Range", tt.rng)
			}
			resp, b := tt.agent.request(t, http.MethodGet, tt.path, nil, hdr)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if tt.want != nil && !bytes.Equal(b, tt.want) {
				t.Fatalf("got %d bytes, not the %d wanted", len(b), len(tt.want))
			}
		})
	}

	a.report(t, agentapi.Result{ID: cmd.ID, State: agentapi.StateSucceeded, RootDevice: "/dev/vda"})
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
	e.srv.Revoke("n1")
	if resp, _ := a.request(t, http.MethodGet, args.ImagePath, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("image after Revoke: status %d, want 401", resp.StatusCode)
	}
	// New media, new token: images handed out before are gone.
	b := e.allow(t, "n1", "e9")
	if resp, _ := b.request(t, http.MethodGet, args.ImagePath, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("image under new media: status %d, want 404", resp.StatusCode)
	}
}

func TestAgentLog(t *testing.T) {
	e := newEnv(t, "")
	a := e.allow(t, "n1", "e1")
	posts := []string{
		"agent 1.0 starting\nread meta_data: token=" + a.token + "\n",
		"network up\nno newline at the end",
		"",
	}
	for _, p := range posts {
		if resp, b := a.request(t, http.MethodPost, agentapi.PathLog, []byte(p), nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("log: status %d: %s", resp.StatusCode, b)
		}
	}
	got, err := os.ReadFile(filepath.Join(e.logDir, "n1.log"))
	if err != nil {
		t.Fatal(err)
	}
	want := "agent 1.0 starting\nread meta_data: token=[token]\nnetwork up\nno newline at the end\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Fatalf("n1.log (-want +got):\n%s", diff)
	}

	// The fleet page reads the end of it, from a line's start.
	for _, tc := range []struct {
		node    string
		limit   int64
		want    string
		partial bool
	}{
		{"n1", 1 << 20, want, false},
		{"n1", 30, "no newline at the end\n", true},
		{"n1", int64(len(want)), want, false},
		{"nobody", 100, "", false},
		{"../n1", 100, "", false},
	} {
		got, partial, err := e.srv.LogTail(tc.node, tc.limit)
		if err != nil || string(got) != tc.want || partial != tc.partial {
			t.Errorf("LogTail(%q, %d) = %q, %v, %v; want %q, %v", tc.node, tc.limit, got, partial, err, tc.want, tc.partial)
		}
	}

	// Without a log dir the lines go to the server's log, token blanked.
	e2 := newEnv(t, "", func(c *Config) { c.LogDir = "" })
	a2 := e2.allow(t, "n1", "e1")
	a2.request(t, http.MethodPost, agentapi.PathLog, []byte("hello "+a2.token+"\n"), nil)
	if !strings.Contains(e2.logs.String(), `line="hello [token]"`) {
		t.Fatalf("server log lacks the agent's line:\n%s", e2.logs.String())
	}
}

func TestBodies(t *testing.T) {
	const limit = 4 << 10
	big := func(n int) []byte { return bytes.Repeat([]byte(" "), n) }
	pollWith := func(extra string) []byte {
		return []byte(`{"bootID":"b1","wait":"0s"` + extra + `}`)
	}
	tests := []struct {
		name string
		path string
		body []byte
		want int
	}{
		{"poll", agentapi.PathNext, pollWith(""), http.StatusNoContent},
		{"poll with unknown fields", agentapi.PathNext, pollWith(`,"future":{"x":1}`), http.StatusNoContent},
		{"poll too large", agentapi.PathNext, append(pollWith(""), big(limit)...), http.StatusRequestEntityTooLarge},
		{"poll not JSON", agentapi.PathNext, []byte("bootID=b1"), http.StatusBadRequest},
		{"poll twice", agentapi.PathNext, append(pollWith(""), pollWith("")...), http.StatusBadRequest},
		{"poll without boot id", agentapi.PathNext, []byte(`{"wait":"0s"}`), http.StatusBadRequest},
		{"poll bad wait", agentapi.PathNext, []byte(`{"bootID":"b1","wait":"soon"}`), http.StatusBadRequest},
		{"poll bad state", agentapi.PathNext, pollWith(`,"results":[{"id":"c1","state":"done"}]`), http.StatusBadRequest},
		{"poll result without id", agentapi.PathNext, pollWith(`,"results":[{"state":"running"}]`), http.StatusBadRequest},
		{"result", agentapi.PathResult, []byte(`{"id":"c1","state":"running"}`), http.StatusNoContent},
		{"result too large", agentapi.PathResult, append([]byte(`{"id":"c1","state":"running"}`), big(limit)...), http.StatusRequestEntityTooLarge},
		{"result bad state", agentapi.PathResult, []byte(`{"id":"c1","state":""}`), http.StatusBadRequest},
		{"log", agentapi.PathLog, []byte("line\n"), http.StatusNoContent},
		{"log too large", agentapi.PathLog, big(limit + 1), http.StatusRequestEntityTooLarge},
	}
	e := newEnv(t, "")
	// Small limits keep the race detector's JSON scanning quick.
	e.srv.limits.poll, e.srv.limits.result, e.srv.limits.log = limit, limit, limit
	a := e.allow(t, "n1", "e1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := a.request(t, http.MethodPost, tt.path, tt.body, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, b)
			}
		})
	}
	if resp, _ := a.request(t, http.MethodGet, agentapi.PathNext, nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET %s: status %d, want 405", agentapi.PathNext, resp.StatusCode)
	}
}
