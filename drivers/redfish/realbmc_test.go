package redfish_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/redfish"
	"metalsync.dev/metalsync/sim/mockupserver"
	"metalsync.dev/metalsync/sim/redfishsim"
)

// ownBMC serves system id of sim as its own BMC and returns the driver
// config for it (no system path: the driver finds the system).
func ownBMC(t *testing.T, sim *redfishsim.Server, id string) drivers.Config {
	t.Helper()
	h, err := sim.BMC(id)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	u, _ := url.Parse(ts.URL)
	return drivers.Config{Endpoint: u, Username: simUser, Password: simPass}
}

// TestInventoryDegrades: a section the BMC links but cannot serve (404:
// absent, 501: not implemented) becomes a warning; the rest is read.
func TestInventoryDegrades(t *testing.T) {
	cases := []struct {
		name        string
		sections    map[redfishsim.Section]int
		warnings    []string // substrings, one per warning, in order
		nicsUnknown bool
	}{
		{name: "complete"},
		{name: "memory-404", sections: map[redfishsim.Section]int{redfishsim.SectionMemory: 404},
			warnings: []string{"memory: not read: GET /redfish/v1/Systems/sys-0001/Memory: 404 not found"}},
		{name: "memory-501", sections: map[redfishsim.Section]int{redfishsim.SectionMemory: 501},
			warnings: []string{"memory: not read: GET /redfish/v1/Systems/sys-0001/Memory: 501 not implemented: /redfish/v1/Systems/sys-0001/Memory is not implemented"}},
		{name: "firmware-inventory-404", sections: map[redfishsim.Section]int{redfishsim.SectionFirmware: 404},
			warnings: []string{"firmware: inventory not read, versions of BIOS and BMC only: GET /redfish/v1/UpdateService/FirmwareInventory: 404 not found"}},
		{name: "nics-404", sections: map[redfishsim.Section]int{redfishsim.SectionNICs: 404},
			warnings: []string{"network: not read: GET /redfish/v1/Systems/sys-0001/EthernetInterfaces: 404"}, nicsUnknown: true},
		{name: "cpus-501-storage-404", sections: map[redfishsim.Section]int{redfishsim.SectionProcessors: 501, redfishsim.SectionStorage: 404},
			warnings: []string{"processors: not read:", "storage: not read:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim, _ := newSim(t, redfishsim.Systems(1, redfishsim.SystemConfig{PoweredOn: true, Sections: tc.sections}))
			b := openSim(t, ownBMC(t, sim, "sys-0001"))
			defer b.Close(t.Context())
			inv, err := b.Inventory(t.Context())
			if err != nil {
				t.Fatalf("Inventory: %v", err)
			}
			if len(inv.Warnings) != len(tc.warnings) {
				t.Fatalf("warnings = %q, want %d like %q", inv.Warnings, len(tc.warnings), tc.warnings)
			}
			for i, w := range tc.warnings {
				if !strings.Contains(inv.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, inv.Warnings[i], w)
				}
			}
			if inv.NICsUnknown != tc.nicsUnknown || (tc.nicsUnknown && inv.NICs != nil) {
				t.Errorf("NICsUnknown = %v, NICs = %v; want unknown %v (and nil NICs)", inv.NICsUnknown, inv.NICs, tc.nicsUnknown)
			}
			broken := func(s redfishsim.Section) bool { return tc.sections[s] != 0 }
			checks := []struct {
				sec  redfishsim.Section
				read bool
			}{
				{redfishsim.SectionProcessors, len(inv.CPUs) == 2},
				{redfishsim.SectionMemory, inv.MemoryMiB == 8*32768},
				{redfishsim.SectionStorage, len(inv.Disks) == 4},
				{redfishsim.SectionNICs, len(inv.NICs) == 2},
			}
			for _, c := range checks {
				if c.read == broken(c.sec) {
					t.Errorf("%s: read %v, broken %v: %+v", c.sec, c.read, broken(c.sec), inv)
				}
			}
			if len(inv.Firmware) == 0 {
				t.Errorf("no firmware versions at all: %+v", inv)
			}
			if inv.System.Serial == "" {
				t.Errorf("no system identity: %+v", inv.System)
			}
		})
	}
}

// TestInventoryFailsWithoutCredentials: what the node cannot be managed
// without still fails the call.
func TestInventoryFailsWithoutCredentials(t *testing.T) {
	sim, l := newSim(t, redfishsim.Systems(1, redfishsim.SystemConfig{PoweredOn: true}))
	cfg := simConfig(t, l, "sys-0001")
	b := openSim(t, cfg)
	defer b.Close(t.Context())
	sim.SetFaults("sys-0001", redfishsim.Faults{BadCredentials: true})
	if _, err := b.Inventory(t.Context()); !errors.Is(err, drivers.ErrAuth) {
		t.Fatalf("Inventory with rejected credentials = %v, want ErrAuth", err)
	}
}

// answer is one canned reply of a scripted BMC.
type answer struct {
	status int
	header map[string]string
	body   string
}

// scripted is a BMC without sessions (basic auth) whose system path
// answers what the test says; it records what it was asked.
type scripted struct {
	mu      sync.Mutex
	answers map[string]answer // by "METHOD path"
	seen    []string          // "METHOD path body"
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(body)))
	a, ok := s.answers[r.Method+" "+r.URL.Path]
	s.mu.Unlock()
	if r.URL.Path == "/redfish/v1/" {
		w.Write([]byte(`{"Systems":{"@odata.id":"/redfish/v1/Systems"}}`))
		return
	}
	if !ok {
		a = answer{status: 404, body: `{"error":{"message":"nothing at ` + r.URL.Path + `"}}`}
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	w.Write([]byte(a.body))
}

func (s *scripted) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.seen
	s.seen = nil
	return out
}

func startScripted(t *testing.T, answers map[string]answer) (*scripted, drivers.Config) {
	t.Helper()
	s := &scripted{answers: answers}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	u, _ := url.Parse(ts.URL + "/redfish/v1/Systems/1")
	return s, drivers.Config{Endpoint: u, Username: "root", Password: "password"}
}

func redfishError(id, msg string) string {
	return `{"error":{"code":"Base.1.8.GeneralError","message":"See ExtendedInfo","@Message.ExtendedInfo":[{"MessageId":"` + id + `","Message":"` + msg + `"}]}}`
}

// TestErrorsClassified: the driver says whether a failure is permanent,
// an authentication problem, the BMC failing, or worth another try, keeps
// the BMC's own message (redacted), and carries Retry-After.
func TestErrorsClassified(t *testing.T) {
	cases := []struct {
		name       string
		ans        answer
		class      error // nil: transient without a class
		retryAfter time.Duration
		message    string
	}{
		{"400", answer{status: 400, body: redfishError("Base.1.8.PropertyValueNotInList", "The value 'x' is not allowed")}, drivers.ErrPermanent, 0, "The value 'x' is not allowed"},
		{"401", answer{status: 401}, drivers.ErrAuth, 0, ""},
		{"403", answer{status: 403, body: redfishError("Base.1.8.InsufficientPrivilege", "needs ConfigureComponents")}, drivers.ErrPermanent, 0, "needs ConfigureComponents"},
		{"404", answer{status: 404, body: redfishError("Base.1.8.ResourceMissingAtURI", "The resource at the URI /redfish/v1/Systems/1 was not found.")}, drivers.ErrPermanent, 0, "was not found"},
		{"405", answer{status: 405}, drivers.ErrPermanent, 0, ""},
		{"501", answer{status: 501}, drivers.ErrPermanent, 0, ""},
		{"500", answer{status: 500, body: redfishError("Base.1.8.InternalError", "internal error")}, drivers.ErrBMCFailing, 0, "internal error"},
		{"500-action-not-supported", answer{status: 500, body: redfishError("Base.1.8.ActionNotSupported", "not supported")}, drivers.ErrPermanent, 0, "not supported"},
		{"503-retry-after", answer{status: 503, header: map[string]string{"Retry-After": "20"}}, drivers.ErrBMCFailing, 20 * time.Second, ""},
		{"429-retry-after", answer{status: 429, header: map[string]string{"Retry-After": "3"}}, nil, 3 * time.Second, ""},
		{"409-resource-in-use", answer{status: 409, body: redfishError("Base.1.8.ResourceInUse", "busy")}, nil, 0, "busy"},
		{"400-but-in-use", answer{status: 400, body: redfishError("Base.1.8.ResourceInUse", "busy")}, nil, 0, "busy"},
		{"password-word-kept", answer{status: 400, body: redfishError("Base.1.8.GeneralError", "invalid username or password")}, drivers.ErrPermanent, 0, "invalid username or password"},
		{"password-value-redacted", answer{status: 400, body: redfishError("Base.1.8.PropertyValueFormatError", "The value 'password' for Password is bad")}, drivers.ErrPermanent, 0, "The value '[redacted]' for Password is bad"},
	}
	classes := []error{drivers.ErrPermanent, drivers.ErrAuth, drivers.ErrBMCFailing, drivers.ErrUnreachable}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, cfg := startScripted(t, map[string]answer{"GET /redfish/v1/Systems/1": tc.ans})
			b := openSim(t, cfg)
			defer b.Close(t.Context())
			s.requests()
			_, err := b.PowerState(t.Context())
			if err == nil {
				t.Fatal("PowerState succeeded")
			}
			for _, c := range classes {
				if errors.Is(err, c) != (c == tc.class) {
					t.Errorf("errors.Is(%v, %q) = %v", err, c, !(c == tc.class))
				}
			}
			var be *drivers.BMCError
			if !errors.As(err, &be) || be.StatusCode != tc.ans.status {
				t.Fatalf("error %v is not a BMCError with status %d", err, tc.ans.status)
			}
			if got, _ := drivers.RetryAfter(err); got != tc.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tc.retryAfter)
			}
			if be.Message != tc.message && !strings.Contains(be.Message, tc.message) {
				t.Errorf("Message = %q, want %q", be.Message, tc.message)
			}
			// The driver itself does not retry: one request, whatever
			// the class; retrying is the executor's decision.
			if got := s.requests(); len(got) != 1 {
				t.Errorf("requests = %q, want one", got)
			}
		})
	}
}

// TestRedirects: redirects on the BMC's own scheme and host are followed
// (at most three; POST and PATCH keep method and body on 307/308 only);
// any other is refused with its target named.
func TestRedirects(t *testing.T) {
	const sys = "/redfish/v1/Systems/1"
	loc := func(status int, to string) answer {
		return answer{status: status, header: map[string]string{"Location": to}}
	}
	powerDoc := answer{status: 200, body: `{"PowerState":"On","Actions":{"#ComputerSystem.Reset":{"target":"` + sys + `/Actions/Reset"}}}`}
	cases := []struct {
		name    string
		answers map[string]answer
		call    func(ctx context.Context, b *redfish.BMC) error
		wantErr string // "" for success
		want    []string
	}{
		{
			name:    "get-relative-and-absolute",
			answers: map[string]answer{"GET " + sys: loc(307, "/redfish/v1/Systems/uuid-1"), "GET /redfish/v1/Systems/uuid-1": loc(301, "uuid-2"), "GET /redfish/v1/Systems/uuid-2": powerDoc},
			call:    func(ctx context.Context, b *redfish.BMC) error { _, err := b.PowerState(ctx); return err },
			want:    []string{"GET " + sys, "GET /redfish/v1/Systems/uuid-1", "GET /redfish/v1/Systems/uuid-2"},
		},
		{
			name:    "other-host-refused",
			answers: map[string]answer{"GET " + sys: loc(307, "https://user:pw@evil.example/redfish/v1/Systems/1")},
			call:    func(ctx context.Context, b *redfish.BMC) error { _, err := b.PowerState(ctx); return err },
			wantErr: "307 temporary redirect: redirected to https://user:xxxxx@evil.example/redfish/v1/Systems/1: another scheme or host",
			want:    []string{"GET " + sys},
		},
		{
			name: "loop-refused",
			answers: map[string]answer{"GET " + sys: loc(302, "/a"), "GET /a": loc(302, "/b"),
				"GET /b": loc(302, "/c"), "GET /c": loc(302, "/d")},
			call:    func(ctx context.Context, b *redfish.BMC) error { _, err := b.PowerState(ctx); return err },
			wantErr: "redirected to http://" + "HOST/d: more than 3 redirects",
			want:    []string{"GET " + sys, "GET /a", "GET /b", "GET /c"},
		},
		{
			name: "post-302-refused",
			answers: map[string]answer{"GET " + sys: {status: 200, body: `{"PowerState":"Off","Actions":{"#ComputerSystem.Reset":{"target":"` + sys + `/Actions/Reset"}}}`},
				"POST " + sys + "/Actions/Reset": loc(302, "/elsewhere")},
			call:    func(ctx context.Context, b *redfish.BMC) error { return b.SetPower(ctx, drivers.ActionOn) },
			wantErr: "302 found: redirected to http://HOST/elsewhere: only 307 and 308 keep the method and body of a POST",
			want:    []string{"GET " + sys, `POST ` + sys + `/Actions/Reset {"ResetType":"On"}`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, cfg := startScripted(t, tc.answers)
			b := openSim(t, cfg)
			defer b.Close(t.Context())
			s.requests()
			err := tc.call(t.Context(), b)
			wantErr := strings.ReplaceAll(tc.wantErr, "HOST", cfg.Endpoint.Host)
			switch {
			case wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
				t.Fatalf("err = %v, want it to contain %q", err, wantErr)
			case wantErr != "" && !errors.Is(err, drivers.ErrPermanent):
				t.Errorf("refused redirect %v is not ErrPermanent", err)
			}
			if diff := cmp.Diff(tc.want, s.requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRedirectPostKeepsBody: a 307 on an action is followed with the same
// method and body.
func TestRedirectPostKeepsBody(t *testing.T) {
	const sys = "/redfish/v1/Systems/1"
	s, cfg := startScripted(t, map[string]answer{
		"GET " + sys:                       {status: 200, body: `{"Boot":{"BootSourceOverrideTarget":"Cd","BootSourceOverrideEnabled":"Once"}}`},
		"PATCH " + sys:                     {status: 308, header: map[string]string{"Location": "/redfish/v1/Systems/uuid-1"}},
		"PATCH /redfish/v1/Systems/uuid-1": {status: 204},
	})
	b := openSim(t, cfg)
	defer b.Close(t.Context())
	s.requests()
	if err := b.SetBoot(t.Context(), drivers.BootOptions{Device: drivers.BootCD}); err != nil {
		t.Fatal(err)
	}
	body := `{"Boot":{"BootSourceOverrideEnabled":"Once","BootSourceOverrideTarget":"Cd"}}`
	want := []string{"GET " + sys, "PATCH " + sys + " " + body, "PATCH /redfish/v1/Systems/uuid-1 " + body, "GET " + sys}
	if diff := cmp.Diff(want, s.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestRedirectNameToUUIDSimulator: a system addressed by name that the
// BMC redirects to its UUID URL works, and once moved a power read costs
// one request again.
func TestRedirectNameToUUIDSimulator(t *testing.T) {
	sim, l := newSim(t, redfishsim.Systems(2, redfishsim.SystemConfig{RedirectToUUID: true}))
	id := "sys-0002"
	b := openSim(t, simConfig(t, l, id)) // .../Systems/sys-0002: the name
	defer b.Close(t.Context())
	if _, err := b.PowerState(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.System(), "/redfish/v1/Systems/") || strings.HasSuffix(b.System(), id) {
		t.Errorf("System() = %q, want the UUID URL", b.System())
	}
	before := sim.Counts(id)
	if st, err := b.PowerState(t.Context()); err != nil || st != drivers.PowerOff {
		t.Fatalf("PowerState = %v, %v", st, err)
	}
	if got := sim.Counts(id).Requests - before.Requests; got != 1 {
		t.Errorf("power read after the move: %d requests, want 1", got)
	}
	if err := b.SetPower(t.Context(), drivers.ActionOn); err != nil {
		t.Fatal(err)
	}
	if err := b.SetBoot(t.Context(), drivers.BootOptions{Device: drivers.BootPXE, Persistent: true}); err != nil {
		t.Fatal(err)
	}
	st, _ := sim.System(id)
	if st.PowerState != "On" || st.BootTarget != "Pxe" || st.BootEnabled != "Continuous" {
		t.Errorf("simulator: %+v", st)
	}
}

// simClock is a redfishsim.Clock the test moves.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestSessionsKeptAcrossOpens: a Pool keeps one session per BMC across
// Open/Close, so a power read per pass costs exactly one request; an
// expired session is renewed on its 401; a changed password logs in
// anew; Pool.Close logs out.
func TestSessionsKeptAcrossOpens(t *testing.T) {
	clock := &simClock{now: fixedTime}
	sim, err := redfishsim.New(redfishsim.Config{
		Systems:  redfishsim.Systems(3, redfishsim.SystemConfig{PoweredOn: true}),
		Username: simUser, Password: simPass, Clock: clock, SessionLifetime: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ls, err := sim.StartBMCs(redfishsim.BMCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	pool := redfish.NewPool(redfish.PoolOptions{})
	defer pool.Close(context.Background())
	ctx := t.Context()
	cfgs := map[string]drivers.Config{}
	for _, id := range sim.IDs() {
		u, _ := url.Parse(ls.Listener(id).URL)
		cfgs[id] = drivers.Config{Endpoint: u, Username: simUser, Password: simPass}
	}
	sweep := func() map[string]int64 {
		t.Helper()
		before := map[string]int64{}
		for _, id := range sim.IDs() {
			before[id] = sim.Counts(id).Requests
		}
		for _, id := range sim.IDs() {
			b, err := pool.Open(ctx, cfgs[id])
			if err != nil {
				t.Fatal(err)
			}
			if st, err := b.PowerState(ctx); err != nil || st != drivers.PowerOn {
				t.Fatalf("%s: PowerState = %v, %v", id, st, err)
			}
			if err := b.Close(ctx); err != nil {
				t.Fatal(err)
			}
		}
		got := map[string]int64{}
		for _, id := range sim.IDs() {
			got[id] = sim.Counts(id).Requests - before[id]
		}
		return got
	}
	each := func(n int64) map[string]int64 {
		return map[string]int64{"sys-0001": n, "sys-0002": n, "sys-0003": n}
	}
	// First pass: service root, login, Systems collection, power read.
	if diff := cmp.Diff(each(4), sweep()); diff != "" {
		t.Errorf("first sweep requests per BMC (-want +got):\n%s", diff)
	}
	for range 3 {
		if diff := cmp.Diff(each(1), sweep()); diff != "" {
			t.Errorf("steady sweep requests per BMC (-want +got):\n%s", diff)
		}
	}
	if n := sim.Sessions("sys-0001"); n != 1 || pool.Sessions() != 3 {
		t.Errorf("sessions: %d on the BMC, %d kept by the pool; want 1 and 3", n, pool.Sessions())
	}
	// The sessions' lifetime ends: the 401 logs in again, once per BMC.
	clock.Advance(time.Hour)
	if diff := cmp.Diff(each(3), sweep()); diff != "" {
		t.Errorf("sweep after expiry (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(each(1), sweep()); diff != "" {
		t.Errorf("sweep after renewal (-want +got):\n%s", diff)
	}
	// A changed password (same BMC, same user) replaces the session.
	cfg := cfgs["sys-0001"]
	cfg.Password = "another-password"
	if _, err := pool.Open(ctx, cfg); !errors.Is(err, drivers.ErrAuth) {
		t.Errorf("open with a wrong password = %v, want ErrAuth", err)
	}
	if err := pool.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range sim.IDs() {
		if n := sim.Sessions(id); n != 0 {
			t.Errorf("%s: %d sessions left after Pool.Close", id, n)
		}
	}
	if _, err := pool.Open(ctx, cfgs["sys-0001"]); err == nil {
		t.Error("Open after Pool.Close succeeded")
	}
}

// TestBootReadBack: SetBoot reads back target, mode and once/continuous;
// a BMC that ignores the PATCH is caught, one that turns Once into
// Continuous (sushy-tools) is accepted and BootOverride tells.
func TestBootReadBack(t *testing.T) {
	cases := []struct {
		name    string
		wrap    func(h http.Handler) http.Handler
		opts    drivers.BootOptions
		wantErr error
		want    drivers.BootOptions
	}{
		{name: "once-uefi", opts: drivers.BootOptions{Device: drivers.BootCD, Mode: drivers.BootModeUEFI},
			want: drivers.BootOptions{Device: drivers.BootCD, Mode: drivers.BootModeUEFI}},
		{name: "continuous-legacy", opts: drivers.BootOptions{Device: drivers.BootPXE, Mode: drivers.BootModeLegacy, Persistent: true},
			want: drivers.BootOptions{Device: drivers.BootPXE, Mode: drivers.BootModeLegacy, Persistent: true}},
		{name: "ignored-patch", opts: drivers.BootOptions{Device: drivers.BootCD},
			wrap: func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPatch {
						w.WriteHeader(http.StatusNoContent)
						return
					}
					h.ServeHTTP(w, r)
				})
			},
			wantErr: redfish.ErrBootNotApplied},
		{name: "once-reads-continuous", opts: drivers.BootOptions{Device: drivers.BootCD},
			wrap: func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPatch {
						body, _ := io.ReadAll(r.Body)
						body = []byte(strings.ReplaceAll(string(body), `"Once"`, `"Continuous"`))
						r.Body, r.ContentLength = io.NopCloser(strings.NewReader(string(body))), int64(len(body))
					}
					h.ServeHTTP(w, r)
				})
			},
			want: drivers.BootOptions{Device: drivers.BootCD, Mode: drivers.BootModeUEFI, Persistent: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim, err := redfishsim.New(redfishsim.Config{Systems: redfishsim.Systems(1, redfishsim.SystemConfig{}), Username: simUser, Password: simPass})
			if err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			h, _ := sim.BMC("sys-0001")
			if tc.wrap != nil {
				h = tc.wrap(h)
			}
			ts := httptest.NewServer(h)
			defer ts.Close()
			u, _ := url.Parse(ts.URL)
			b := openSim(t, drivers.Config{Endpoint: u, Username: simUser, Password: simPass})
			defer b.Close(t.Context())
			err = b.SetBoot(t.Context(), tc.opts)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("SetBoot = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			got, err := b.BootOverride(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("BootOverride = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestFirmwareTargets: SimpleUpdate names the system in Targets on a
// service that manages several systems, and sends none on a BMC of one.
func TestFirmwareTargets(t *testing.T) {
	img := imageServer(t)
	sim, l := newSim(t, redfishsim.Systems(2, redfishsim.SystemConfig{}))
	cases := []struct {
		name    string
		cfg     drivers.Config
		targets string
	}{
		{"shared-service-two-systems", simConfig(t, l, "sys-0002"), `"Targets":["/redfish/v1/Systems/sys-0002"]`},
		{"own-bmc", ownBMC(t, sim, "sys-0001"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := openSim(t, tc.cfg)
			defer b.Close(t.Context())
			sim.ResetRequests()
			if err := b.UpdateFirmware(t.Context(), img, nil); err != nil {
				t.Fatal(err)
			}
			var body string
			for _, r := range sim.Requests() {
				if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "SimpleUpdate") {
					body = r.Body
				}
			}
			if tc.targets != "" && !strings.Contains(body, tc.targets) || tc.targets == "" && strings.Contains(body, "Targets") {
				t.Errorf("SimpleUpdate body %s, want targets %q", body, tc.targets)
			}
		})
	}
}

// breakSection answers status for every path under a segment seg.
func breakSection(h http.Handler, seg string, status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path+"/", "/"+seg+"/") {
			w.WriteHeader(status)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// TestInventoryDegradesMockups: on real vendor-shaped trees with one
// section broken, the inventory is the complete one without that section,
// plus a warning.
func TestInventoryDegradesMockups(t *testing.T) {
	cases := []struct {
		mockup, seg string
		status      int
		drop        func(inv *drivers.Inventory)
	}{
		{"public-rackmount1", "EthernetInterfaces", 404, func(inv *drivers.Inventory) { inv.NICs, inv.NICsUnknown = nil, true }},
		{"public-rackmount1", "Processors", 501, func(inv *drivers.Inventory) { inv.CPUs = nil }},
		{"public-tower", "Storage", 404, func(inv *drivers.Inventory) { inv.Disks = nil }},
		{"public-tower", "FirmwareInventory", 501, nil},
	}
	for _, tc := range cases {
		t.Run(tc.mockup+"/"+tc.seg, func(t *testing.T) {
			_, full := serveMockup(t, tc.mockup, mockupserver.Options{})
			want, err := openMock(t, mockConfig(t, full.URL)).Inventory(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			m, _ := serveMockup(t, tc.mockup, mockupserver.Options{})
			broken := httptest.NewServer(breakSection(m, tc.seg, tc.status))
			t.Cleanup(broken.Close)
			got, err := openMock(t, mockConfig(t, broken.URL)).Inventory(t.Context())
			if err != nil {
				t.Fatalf("Inventory with %s answering %d: %v", tc.seg, tc.status, err)
			}
			if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], tc.seg) {
				t.Errorf("warnings = %q, want one naming %s", got.Warnings, tc.seg)
			}
			if tc.drop != nil {
				tc.drop(&want)
			}
			got.Warnings, want.Warnings = nil, nil
			if tc.seg == "FirmwareInventory" {
				got.Firmware, want.Firmware = nil, nil // the fallback lists other components
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("inventory (-complete minus %s +got):\n%s", tc.seg, diff)
			}
		})
	}
}
