package fleetpage

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/fleet"
	"metalsync.dev/metalsync/fleetpage/fleetpagetest"
	inventoryexample "metalsync.dev/metalsync/inventory-example"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/repo/githistory"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/test/tools"
)

// exampleRevision is the revision exampleFleet shows.
const exampleRevision = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"

// testNow is the fixed clock of every page in these tests.
var testNow = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// fakeHistory answers every walk with one change and records the paths.
type fakeHistory struct {
	mu    sync.Mutex
	paths [][]string
}

func (h *fakeHistory) Walk(_ context.Context, paths []string, _ githistory.Options) (githistory.Result, error) {
	h.mu.Lock()
	h.paths = append(h.paths, paths)
	h.mu.Unlock()
	return githistory.Result{Scanned: 7, Changes: []githistory.Change{{
		Commit: "0123456789abcdef0123456789abcdef01234567", Author: "Alice", Email: "alice@example.net",
		When: testNow.Add(-time.Hour), Subject: "power r1-n04 off <b>now</b>",
		Files: []githistory.FileChange{{Path: paths[0], Fields: []githistory.Field{{Path: "spec.power", Old: "on", New: "off"}}}},
	}}}, nil
}

// fakeAgentLogs holds each node's agent log.
type fakeAgentLogs map[string]string

func (f fakeAgentLogs) LogTail(node string, limit int64) ([]byte, bool, error) {
	if node == "r2-n03" {
		return nil, false, errors.New("agent log of r2-n03: permission denied")
	}
	b := f[node]
	if int64(len(b)) > limit {
		return []byte(b[int64(len(b))-limit:]), true, nil
	}
	return []byte(b), false, nil
}

func loadExample(t testing.TB) *schema.Inventory {
	t.Helper()
	inv, diags := (&schema.Loader{}).Load(inventoryexample.FS)
	if diags.HasErrors() {
		t.Fatalf("example: %s", diags)
	}
	return inv
}

// exampleFleet is the example inventory in a spread of states: the page
// must show each distinctly.
func exampleFleet(t testing.TB) *fleetpagetest.Fleet {
	inv := loadExample(t)
	obs := reconcile.Observed{}
	stamp := testNow.Add(-90 * time.Second).Format(time.RFC3339)
	for _, n := range inv.Nodes {
		obs[n.Name()] = schema.NodeStatusBody{Updated: stamp, Power: n.Spec.Power, ProvisionState: n.Spec.Provision.State}
	}
	obs["r1-n02"] = schema.NodeStatusBody{Updated: stamp, Power: "on", ProvisionState: "deploying", Target: "active",
		Operation: &schema.Operation{Kind: "deploy", Step: 2, Steps: []string{"erase_devices_metadata", "apply_configuration", "write_image", "set-boot disk"},
			Intent: &schema.Intent{Step: "write_image", ID: "c-42", Started: stamp}}}
	obs["r1-n03"] = schema.NodeStatusBody{Updated: stamp, Power: "on", ProvisionState: "deploy failed",
		LastError: "write_image: checksum mismatch: want sha256:84f8…, got sha256:0000… <script>alert(1)</script>"}
	obs["r2-n01"] = schema.NodeStatusBody{Updated: stamp, Power: "on", ProvisionState: "active",
		Fault: &schema.Fault{Reason: "BMC unreachable: dial tcp 10.10.0.201:623: i/o timeout", Failures: 5, Since: stamp}}
	obs["r2-n02"] = schema.NodeStatusBody{Updated: stamp, Power: "on", ProvisionState: "active", PlanError: "template raid1-os: no disk matches"}
	delete(obs, "r2-n06") // never observed
	return fleetpagetest.New(daemon.Snapshot{Revision: exampleRevision, Inventory: inv, Observed: obs, Generation: 1})
}

func newHandler(t testing.TB, f Fleet, h History) *Handler {
	t.Helper()
	hd, err := New(Config{Fleet: f, History: h, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return hd
}

func get(t *testing.T, h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestFleetPageGolden keeps the whole fleet page in a golden file:
// a reviewer sees every change to what operators see.
func TestFleetPageGolden(t *testing.T) {
	h := newHandler(t, exampleFleet(t), &fakeHistory{})
	for _, tc := range []struct{ path, golden string }{
		{"/", "fleet.golden.html"},
		{"/nodes/r1-n02", "node.golden.html"},
	} {
		rec := get(t, h, tc.path)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", tc.path, rec.Code, rec.Body)
		}
		tools.Golden(t, filepath.Join("testdata", tc.golden), rec.Body.Bytes())
	}
}

func TestFleetPage(t *testing.T) {
	f := exampleFleet(t)
	h := newHandler(t, f, &fakeHistory{})
	body := get(t, h, "/").Body.String()
	for _, want := range []string{
		`<section class="rack" id="rack-rack1">`, `<section class="rack" id="rack-rack2">`,
		`data-node="r1-n01" data-class="active"`,
		`data-node="r1-n02" data-class="busy"`,
		`data-node="r1-n03" data-class="failed"`,
		`class="tile c-failed m-fault" href="nodes/r2-n01"`,
		`m-quarantined`, `m-retired`,
		`data-node="r2-n06" data-class="new"`,
		`deploy 3/4 write_image`,
		`&lt;script&gt;alert(1)&lt;/script&gt;`,
		`<meta http-equiv="refresh" content="15">`,
		`<code id="revision">9f8e7d6c5b4a</code>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("fleet page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Error("a last error's markup reached the page unescaped")
	}
	if got := strings.Count(body, `class="tile`); got != 14 {
		t.Errorf("%d tiles, want 14", got)
	}
	// Needs attention: failed first (deploy failed, fault), then the
	// quarantined node and the plan error.
	attn := regexp.MustCompile(`<li class="c-\w+"><span class="dot"></span><a href="nodes/([\w-]+)">`).FindAllStringSubmatch(body, -1)
	var names []string
	for _, m := range attn {
		names = append(names, m[1])
	}
	if d := cmp.Diff([]string{"r1-n03", "r2-n01", "r2-n02", "r2-n05"}, names); d != "" {
		t.Errorf("needs attention (-want +got):\n%s", d)
	}

	// A label filter narrows the grid; a bad one is said and ignored.
	body = get(t, h, "/?l=rack%3Drack2").Body.String()
	if got := strings.Count(body, `class="tile`); got != 6 || !strings.Contains(body, "<strong>6</strong> of 14 nodes") {
		t.Errorf("rack=rack2: %d tiles", got)
	}
	body = get(t, h, "/?l=rack").Body.String()
	if got := strings.Count(body, `class="tile`); got != 14 || !strings.Contains(body, "Filter ignored") {
		t.Errorf("bad filter: %d tiles, message shown %v", got, strings.Contains(body, "Filter ignored"))
	}

	// A refused revision is on every page.
	f.Update(func(s *daemon.Snapshot) {
		s.Invalid = "abcdef0123456789abcdef0123456789abcdef01"
		s.InvalidDiagnostics = schema.Diagnostics{{Severity: schema.SevError, File: "nodes/rack1/r1-n01.yaml", Line: 9, Message: "spec.power: want \"on\" or \"off\""}}
	})
	for _, p := range []string{"/", "/nodes/r1-n01"} {
		body = get(t, h, p).Body.String()
		if !strings.Contains(body, "Revision abcdef012345 is refused") || !strings.Contains(body, "nodes/rack1/r1-n01.yaml:9") {
			t.Errorf("%s does not report the refused revision", p)
		}
	}
}

func TestFleetPageBeforeFirstRevision(t *testing.T) {
	h := newHandler(t, fleetpagetest.New(daemon.Snapshot{Invalid: "abc", InvalidDiagnostics: schema.Diagnostics{{Severity: schema.SevError, Message: "broken"}}}), nil)
	rec := get(t, h, "/")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "none loaded yet") || !strings.Contains(rec.Body.String(), "No nodes") {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	if rec := get(t, h, "/nodes/x"); rec.Code != http.StatusNotFound {
		t.Errorf("node page before any revision: %d", rec.Code)
	}
}

func TestNodePage(t *testing.T) {
	hist := &fakeHistory{}
	h := newHandler(t, exampleFleet(t), hist)
	body := get(t, h, "/nodes/r1-n02").Body.String()
	for _, want := range []string{
		`<li class="done">erase_devices_metadata</li>`,
		`<li class="current">write_image ◀</li>`,
		`<li class="pending">set-boot disk</li>`,
		`Write-ahead intent: <code>write_image</code>`,
		`platform, leased to ml-research`,
		`<td>Alice<br><span class="muted">alice@example.net</span></td>`,
		`power r1-n04 off &lt;b&gt;now&lt;/b&gt;`,
		`<code class="old">on</code> → <code class="new">off</code>`,
		`7 commits read; older history is not held`,
		`<a href="../#rack-rack1">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("node page lacks %q", want)
		}
	}
	if d := cmp.Diff([][]string{{"nodes/rack1/r1-n02.yaml", "status/rack1/r1-n02.yaml"}}, hist.paths); d != "" {
		t.Errorf("history paths (-want +got):\n%s", d)
	}
	body = get(t, h, "/nodes/r2-n01").Body.String()
	if !strings.Contains(body, "BMC unreachable") || !strings.Contains(body, "5 failures") {
		t.Error("the fault is not on the node page")
	}

	// The agent's log, escaped, when there is one; a read error is said.
	logs := fakeAgentLogs{"r1-n02": "agent 1.0 starting\nwrite_image: 12% <of> 4 GiB\n", "r1-n03": strings.Repeat("x", agentLogTail+10)}
	withLogs, err := New(Config{Fleet: exampleFleet(t), AgentLogs: logs, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ node, want string }{
		{"r1-n02", "write_image: 12% &lt;of&gt; 4 GiB"},
		{"r1-n02", "as the agent sent it"},
		{"r1-n03", "the last 64 KiB"},
		{"r2-n03", "Reading the agent log failed: agent log of r2-n03: permission denied"},
	} {
		if body := get(t, withLogs, "/nodes/"+tc.node).Body.String(); !strings.Contains(body, tc.want) {
			t.Errorf("%s's page lacks %q", tc.node, tc.want)
		}
	}
	if body := get(t, withLogs, "/nodes/r1-n01").Body.String(); strings.Contains(body, "agent-log") {
		t.Error("a node without an agent log shows an agent log section")
	}

	// Without Git history the page says so.
	body = get(t, newHandler(t, exampleFleet(t), nil), "/nodes/r1-n01").Body.String()
	if !strings.Contains(body, "holds no Git history") {
		t.Error("no-history note missing")
	}
	rec := get(t, h, "/nodes/nope")
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "No node <code>nope</code>") {
		t.Errorf("unknown node: %d", rec.Code)
	}
}

func TestAPI(t *testing.T) {
	f := exampleFleet(t)
	h := newHandler(t, f, &fakeHistory{})
	rec := get(t, h, "/api/v1/nodes?l=rack%3Drack1")
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var rep fleet.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.FormatVersion != fleet.FormatVersion || rep.Revision != exampleRevision || len(rep.Nodes) != 8 || rep.Nodes[1].Operation == nil {
		t.Errorf("report: version %q revision %q, %d nodes", rep.FormatVersion, rep.Revision, len(rep.Nodes))
	}
	etag := rec.Header().Get("ETag")
	if rec := get(t, h, "/api/v1/nodes?l=rack%3Drack1", "If-None-Match", etag); rec.Code != http.StatusNotModified {
		t.Errorf("unchanged: %d, want 304", rec.Code)
	}
	if rec := get(t, h, "/api/v1/nodes", "If-None-Match", etag); rec.Code != http.StatusOK {
		t.Errorf("another selector with the same ETag: %d, want 200", rec.Code)
	}
	f.SetStatus("r1-n01", func(st *schema.NodeStatusBody) { st.Power = "off" })
	if rec := get(t, h, "/api/v1/nodes?l=rack%3Drack1", "If-None-Match", etag); rec.Code != http.StatusOK || rec.Header().Get("ETag") == etag {
		t.Errorf("changed: %d, ETag %s", rec.Code, rec.Header().Get("ETag"))
	}
	if rec := get(t, h, "/api/v1/nodes?l=bad"); rec.Code != http.StatusBadRequest {
		t.Errorf("bad selector: %d", rec.Code)
	}
	rec = get(t, h, "/api/v1/nodes/r1-n01/history")
	var res githistory.Result
	if err := json.Unmarshal(rec.Body.Bytes(), &res); rec.Code != http.StatusOK || err != nil || len(res.Changes) != 1 {
		t.Errorf("history: %d %v %s", rec.Code, err, rec.Body)
	}
	if rec := get(t, h, "/api/v1/nodes/nope/history"); rec.Code != http.StatusNotFound {
		t.Errorf("history of an unknown node: %d", rec.Code)
	}
}

func TestHeadersAndGzip(t *testing.T) {
	h := newHandler(t, exampleFleet(t), nil)
	rec := get(t, h, "/", "Accept-Encoding", "br, gzip")
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("not gzipped: %v", rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Contains(plain, []byte("r2-n06")) {
		t.Errorf("gzipped body: %v", err)
	}
	if rec := get(t, h, "/", "Accept-Encoding", "gzip;q=0"); rec.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 was gzipped")
	}
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Content-Type": "text/html; charset=utf-8"} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Error("no CSP")
	}
	if rec := get(t, h, "/nope"); rec.Code != http.StatusNotFound {
		t.Errorf("unknown path: %d", rec.Code)
	}
}

func TestNaturalCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"rack2", "rack10", -1}, {"rack10", "rack2", 1}, {"rack1", "rack1", 0}, {"a", "b", -1},
		{"rack01", "rack1", 0}, {"r1a", "r1b", -1}, {"rack", "rack1", -1},
	}
	for _, tt := range tests {
		got := naturalCompare(tt.a, tt.b)
		if (got < 0) != (tt.want < 0) || (got > 0) != (tt.want > 0) {
			t.Errorf("naturalCompare(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// countingFleet counts snapshots taken.
type countingFleet struct {
	*fleetpagetest.Fleet
	snapshots int
}

func (c *countingFleet) Snapshot() daemon.Snapshot {
	c.snapshots++
	return c.Fleet.Snapshot()
}

// TestFleetPageCache: the fleet page is built once per generation of the
// daemon's state and filter; the clock in the header is always now.
func TestFleetPageCache(t *testing.T) {
	f := &countingFleet{Fleet: exampleFleet(t)}
	now := testNow
	h, err := New(Config{Fleet: f, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	first := get(t, h, "/").Body.String()
	now = now.Add(time.Minute)
	second := get(t, h, "/").Body.String()
	if f.snapshots != 1 {
		t.Errorf("%d snapshots for two views of one generation", f.snapshots)
	}
	if !strings.Contains(second, "as of 2026-12-03 12:01:00Z") || strings.Replace(second, "12:01:00Z", "12:00:00Z", 1) != first {
		t.Error("a cached page differs from the first but for its clock")
	}
	get(t, h, "/?l=rack%3Drack1")
	if f.snapshots != 2 {
		t.Errorf("another filter: %d snapshots, want 2", f.snapshots)
	}
	f.SetStatus("r1-n01", func(st *schema.NodeStatusBody) { st.ProvisionState = "deploy failed" })
	if body := get(t, h, "/").Body.String(); f.snapshots != 3 || !strings.Contains(body, `data-node="r1-n01" data-class="failed"`) {
		t.Errorf("after a change: %d snapshots, r1-n01 failed shown %v", f.snapshots, strings.Contains(body, `data-node="r1-n01" data-class="failed"`))
	}
}

// TestNodePageRedactsSecrets: a credential someone committed into a node
// file stays in Git even when the commit was refused; the node page's
// history does not show it.
func TestNodePageRedactsSecrets(t *testing.T) {
	r := gittest.NewRepo(t)
	file := "nodes/rack1/r1-n01.yaml"
	orig, err := fs.ReadFile(inventoryexample.FS, file)
	if err != nil {
		t.Fatal(err)
	}
	r.Commit("Ops Bot", "add", map[string]string{file: string(orig)})
	leaked := strings.Replace(string(orig), "    credentialsRef: {set: rack1}\n", "    username: admin\n    password: hunter2\n", 1)
	leaked = strings.Replace(leaked, "redfish+https://10.10.0.101/", "redfish+https://admin:s3cr3t@10.10.0.101/", 1)
	r.Commit("Mallory", "inline credentials", map[string]string{file: leaked})
	h := newHandler(t, exampleFleet(t), githistory.Reader{Store: githistory.Dir(r.Dir)})
	body := get(t, h, "/nodes/r1-n01").Body.String()
	if !strings.Contains(body, "inline credentials") || !strings.Contains(body, "<code>spec.bmc.password</code>") {
		t.Fatalf("the history lacks the commit:\n%s", body)
	}
	for _, secret := range []string{"hunter2", "s3cr3t"} {
		if strings.Contains(body, secret) {
			t.Errorf("the node page shows %q", secret)
		}
	}
	if !strings.Contains(body, githistory.Redacted) {
		t.Error("no value is marked redacted")
	}
}
