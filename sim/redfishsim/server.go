package redfishsim

import (
	crand "crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"metalsync.dev/metalsync/internal/httpstatus"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the simulator: many systems behind one http.Handler. It serves
// every system on one path-based listener (ServeHTTP) and each system as
// its own BMC (BMC). Close it when done to release hung requests.
type Server struct {
	cfg     Config
	clock   Clock
	systems map[string]*system
	bySeg   map[string]*system // by the path segment of /Systems/<seg>
	order   []*system
	shared  *service
	bmcs    map[string]*service
	rec     recorder
	done    chan struct{} // closed by Close
	once    sync.Once
	hung    atomic.Int64 // requests held by the hang fault now
}

// New builds a simulator from cfg.
func New(cfg Config) (*Server, error) {
	if len(cfg.Systems) == 0 {
		return nil, errors.New("redfishsim: no systems configured")
	}
	if cfg.Username == "" && cfg.Password == "" {
		cfg.Username, cfg.Password = "admin", "password"
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 30 * time.Minute
	}
	if cfg.LogLimit == 0 {
		cfg.LogLimit = 100000
	}
	if _, err := ParseProfile(string(cfg.Profile)); err != nil {
		return nil, fmt.Errorf("redfishsim: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		clock:   cfg.Clock,
		systems: make(map[string]*system, len(cfg.Systems)),
		bySeg:   make(map[string]*system, len(cfg.Systems)),
		bmcs:    make(map[string]*service, len(cfg.Systems)),
		done:    make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = wallClock{}
	}
	s.rec.limit, s.rec.disabled = cfg.LogLimit, cfg.DisableLog
	fetch := cfg.HTTPClient
	if fetch == nil {
		fetch = &http.Client{Timeout: 30 * time.Second}
	}
	for i, sc := range cfg.Systems {
		if sc.ID == "" || strings.ContainsAny(sc.ID, "/?#% ") {
			return nil, fmt.Errorf("redfishsim: system %d: id %q: want a non-empty URL path segment", i+1, sc.ID)
		}
		if _, dup := s.systems[sc.ID]; dup {
			return nil, fmt.Errorf("redfishsim: system %q: duplicate id", sc.ID)
		}
		if _, err := ParseProfile(string(sc.Profile)); err != nil {
			return nil, fmt.Errorf("redfishsim: system %q: %w", sc.ID, err)
		}
		if sc.FetchBytes <= 0 {
			sc.FetchBytes = 36864
		}
		sys := newSystem(sc, i+1, fetch)
		s.systems[sc.ID] = sys
		s.bySeg[sys.seg] = sys
		s.order = append(s.order, sys)
		s.bmcs[sc.ID] = newService(s, sys, sc.MaxSessions)
	}
	s.shared = newService(s, nil, cfg.MaxSessions)
	return s, nil
}

// ServeHTTP serves every system on one service root (path-based).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.shared.ServeHTTP(w, r) }

// BMC returns a handler that serves system id alone, as its own BMC would:
// its service root lists one system, one manager and one chassis, and it
// has its own sessions (limited by the system's MaxSessions).
func (s *Server) BMC(id string) (http.Handler, error) {
	v, ok := s.bmcs[id]
	if !ok {
		return nil, fmt.Errorf("redfishsim: system %q: no such system", id)
	}
	return v, nil
}

// IDs lists the system ids in configuration order.
func (s *Server) IDs() []string {
	out := make([]string, len(s.order))
	for i, sys := range s.order {
		out[i] = sys.id
	}
	return out
}

// Close releases requests held by the hang fault. The Server must not
// serve after Close.
func (s *Server) Close() { s.once.Do(func() { close(s.done) }) }

func (s *Server) system(id string) (*system, error) {
	sys, ok := s.systems[id]
	if !ok {
		return nil, fmt.Errorf("redfishsim: system %q: no such system", id)
	}
	return sys, nil
}

// SetFaults replaces the faults of system id, from the next request on.
func (s *Server) SetFaults(id string, f Faults) error {
	sys, err := s.system(id)
	if err != nil {
		return err
	}
	sys.mu.Lock()
	defer sys.mu.Unlock()
	sys.faults = f
	return nil
}

// SetAllFaults replaces the faults of every system.
func (s *Server) SetAllFaults(f Faults) {
	for _, sys := range s.order {
		sys.mu.Lock()
		sys.faults = f
		sys.mu.Unlock()
	}
}

// System returns a snapshot of system id.
func (s *Server) System(id string) (SystemState, error) {
	sys, err := s.system(id)
	if err != nil {
		return SystemState{}, err
	}
	return sys.snapshot(s.clock.Now()), nil
}

// service is one Redfish service root: the shared listener (only == nil)
// or one system's BMC.
type service struct {
	srv         *Server
	only        *system
	maxSessions int

	mu       sync.Mutex
	sessions map[string]*session // guarded by mu; by token
	byID     map[string]*session // guarded by mu; by session id
	tasks    map[string]*task    // guarded by mu
	nextTask int                 // guarded by mu
}

type session struct {
	id, token, user string
	created         time.Time
	lastUsed        time.Time
}

// expiredLocked reports whether s outlived Config.SessionLifetime.
func (s *Server) expiredLocked(ss *session, now time.Time) bool {
	return s.cfg.SessionLifetime > 0 && now.Sub(ss.created) >= s.cfg.SessionLifetime
}

// sectionFails answers the status SystemConfig.Sections gives the
// section, and reports whether it did.
func (c *call) sectionFails(sec Section) bool {
	status := c.sys.cfg.Sections[sec]
	if status == 0 {
		return false
	}
	c.failSection(status)
	return true
}

func (c *call) failSection(status int) {
	switch status {
	case http.StatusNotFound:
		c.notFound()
	case http.StatusNotImplemented:
		writeError(c.w, status, msgNotImplemented, "%s is not implemented by this service", c.r.URL.Path)
	default:
		writeError(c.w, status, msgGeneral, "%s failed (injected)", c.r.URL.Path)
	}
}

// firmwareFails answers for a FirmwareInventory that SectionFirmware
// breaks, and reports whether it did.
func (v *service) firmwareFails(c *call) bool {
	systems := v.systems()
	status := systems[0].cfg.Sections[SectionFirmware]
	for _, s := range systems[1:] {
		if s.cfg.Sections[SectionFirmware] != status {
			return false
		}
	}
	if status == 0 {
		return false
	}
	c.failSection(status)
	return true
}

func newService(srv *Server, only *system, maxSessions int) *service {
	return &service{
		srv:         srv,
		only:        only,
		maxSessions: maxSessions,
		sessions:    map[string]*session{},
		byID:        map[string]*session{},
		tasks:       map[string]*task{},
	}
}

// systems lists what this service root shows.
func (v *service) systems() []*system {
	if v.only != nil {
		return []*system{v.only}
	}
	return v.srv.order
}

// call is one request being served.
type call struct {
	v    *service
	w    http.ResponseWriter
	r    *http.Request
	sys  *system // the system the path names (or the BMC's own), or nil
	segs []string
	now  time.Time
	body []byte
}

// ServeHTTP runs one request through latency, faults, authentication and
// routing, and records it.
func (v *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &httpstatus.Recorder{ResponseWriter: w}
	c := &call{v: v, w: sw, r: r, now: v.srv.clock.Now()}
	if r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return // the client went away
		}
		c.body = b
	}
	segs, ok := splitPath(r.URL.Path)
	c.segs = segs
	c.sys = v.only
	if v.only == nil && len(segs) >= 2 && (segs[0] == "Systems" || segs[0] == "Managers" || segs[0] == "Chassis") {
		c.sys = v.srv.systems[segs[1]]
		if segs[0] == "Systems" && v.srv.bySeg[segs[1]] != nil {
			c.sys = v.srv.bySeg[segs[1]]
		}
	}
	defer func() { v.srv.record(c, sw.Status(), time.Since(start)) }()

	profile := v.srv.cfg.Profile
	if c.sys != nil {
		profile = c.sys.cfg.Profile
	}
	if d := profile.latency(); d > 0 && !c.wait(d) {
		return
	}
	var f Faults
	if c.sys != nil {
		c.sys.mu.Lock()
		f = c.sys.faults
		c.sys.mu.Unlock()
	}
	switch {
	case f.ResetRate > 0 && rand.Float64() < f.ResetRate:
		resetConn(sw)
		return
	case f.HangRate > 0 && rand.Float64() < f.HangRate:
		v.srv.hung.Add(1)
		defer v.srv.hung.Add(-1)
		if !c.wait(-1) {
			return
		}
	case f.ErrorRate > 0 && rand.Float64() < f.ErrorRate:
		writeError(sw, http.StatusInternalServerError, msgInternal, "the BMC encountered an internal error (injected)")
		return
	}
	if !ok {
		writeError(sw, http.StatusNotFound, msgResourceMissing, "the resource at %s was not found", r.URL.Path)
		return
	}
	if !c.public() {
		if f.BadCredentials || !c.authenticate() {
			sw.Header().Set("WWW-Authenticate", `Basic realm="Redfish"`)
			writeError(sw, http.StatusUnauthorized, msgNoValidSession, "there is no valid session established with the implementation")
			return
		}
	} else if f.BadCredentials && r.Method == http.MethodPost {
		writeError(sw, http.StatusUnauthorized, msgNoValidSession, "invalid username or password")
		return
	}
	c.route()
}

// wait sleeps d (forever when d < 0) unless the client gives up or the
// server closes; it reports whether to go on.
func (c *call) wait(d time.Duration) bool {
	var tc <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-tc:
		return true
	case <-c.r.Context().Done():
		return false
	case <-c.v.srv.done:
		writeError(c.w, http.StatusServiceUnavailable, msgServiceUnavailable, "the simulator is shutting down")
		return false
	}
}

// resetConn closes the client's connection with a TCP RST, as a BMC whose
// web server crashed would.
func resetConn(w *httpstatus.Recorder) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2 or a recorder: abort the stream instead
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// splitPath returns the segments below /redfish/v1, or false for a path
// outside the Redfish tree. "/redfish" itself is the version document.
func splitPath(p string) ([]string, bool) {
	if p == "/redfish" || p == "/redfish/" {
		return []string{""}, true
	}
	rest, ok := strings.CutPrefix(p, "/redfish/v1")
	if !ok || (rest != "" && rest[0] != '/') {
		return nil, false
	}
	var segs []string
	for s := range strings.SplitSeq(rest, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs, true
}

// public reports whether the request needs no credentials: the service
// root, OData documents and login.
func (c *call) public() bool {
	switch {
	case len(c.segs) == 0, len(c.segs) == 1 && (c.segs[0] == "" || c.segs[0] == "odata" || c.segs[0] == "$metadata"):
		return c.r.Method == http.MethodGet || c.r.Method == http.MethodHead
	case len(c.segs) == 2 && c.segs[0] == "SessionService" && c.segs[1] == "Sessions":
		return c.r.Method == http.MethodPost
	}
	return false
}

// authenticate accepts a live session token of this service or basic auth.
func (c *call) authenticate() bool {
	if tok := c.r.Header.Get("X-Auth-Token"); tok != "" {
		v := c.v
		v.mu.Lock()
		defer v.mu.Unlock()
		s, ok := v.sessions[tok]
		if !ok {
			return false
		}
		if c.now.Sub(s.lastUsed) > v.srv.cfg.SessionTimeout || v.srv.expiredLocked(s, c.now) {
			v.dropLocked(s)
			return false
		}
		s.lastUsed = c.now
		return true
	}
	u, p, ok := c.r.BasicAuth()
	return ok && c.v.srv.credentialsOK(u, p)
}

func (s *Server) credentialsOK(user, pass string) bool {
	uok := subtle.ConstantTimeCompare([]byte(user), []byte(s.cfg.Username))
	pok := subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.Password))
	return uok&pok == 1
}

func (v *service) dropLocked(s *session) {
	delete(v.sessions, s.token)
	delete(v.byID, s.id)
}

// route dispatches an authenticated request by path.
func (c *call) route() {
	segs := c.segs
	if len(segs) == 0 {
		c.get(c.serviceRoot(), nil)
		return
	}
	switch segs[0] {
	case "":
		c.get(doc{"v1": "/redfish/v1/"}, nil)
	case "odata":
		c.get(c.odata(), nil)
	case "SessionService":
		c.sessionService(segs[1:])
	case "Systems", "Managers", "Chassis":
		if len(segs) == 1 {
			c.members(segs[0])
			return
		}
		if c.sys == nil {
			c.notFound()
			return
		}
		if segs[0] == "Systems" && segs[1] != c.sys.seg {
			if segs[1] == c.sys.id { // addressed by name: redirect to the UUID
				c.redirect(c.sys.path() + strings.TrimPrefix(c.r.URL.Path, sysPath(c.sys.id)))
				return
			}
			c.notFound()
			return
		}
		if segs[0] != "Systems" && c.sys.id != segs[1] {
			c.notFound()
			return
		}
		switch segs[0] {
		case "Systems":
			if len(segs) > 2 && segs[2] == "VirtualMedia" && c.sys.cfg.MediaOnSystem {
				c.virtualMedia(segs[3:]) // may fetch: not under the system lock
				return
			}
			c.systemRoutes(segs[2:])
		case "Managers":
			c.managerRoutes(segs[2:])
		default:
			c.chassisRoutes(segs[2:])
		}
	case "UpdateService":
		c.updateService(segs[1:])
	case "TaskService":
		c.taskService(segs[1:])
	default:
		c.notFound()
	}
}

// redirect answers 307 to path, keeping the query: the method and body
// of the request are to be sent again there.
func (c *call) redirect(path string) {
	if c.r.URL.RawQuery != "" {
		path += "?" + c.r.URL.RawQuery
	}
	c.w.Header().Set("Location", path)
	writeError(c.w, http.StatusTemporaryRedirect, msgGeneral, "the system is at %s", path)
}

func (c *call) notFound() {
	writeError(c.w, http.StatusNotFound, msgResourceMissing, "the resource at %s was not found", c.r.URL.Path)
}

// get answers GET (and HEAD) with d; other methods get 405.
func (c *call) get(d doc, etagSrc any) {
	if !c.method(http.MethodGet) {
		return
	}
	c.ok(d, etagSrc)
}

// ok writes d with status 200 and an ETag computed from etagSrc, the part
// of a writable resource a client can change; read-only resources (nil)
// get one of their whole document.
func (c *call) ok(d doc, etagSrc any) {
	if etagSrc == nil {
		etagSrc = d
	}
	writeJSON(c.w, http.StatusOK, d, etagOf(etagSrc))
}

// method reports whether the request's method is one of allowed, and
// answers 405 otherwise. GET allows HEAD.
func (c *call) method(allowed ...string) bool {
	m := c.r.Method
	if m == http.MethodHead {
		m = http.MethodGet
	}
	if slices.Contains(allowed, m) {
		return true
	}
	c.w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(c.w, http.StatusMethodNotAllowed, msgOperationNotAllow, "%s is not allowed on %s", c.r.Method, c.r.URL.Path)
	return false
}

// decode reads the JSON body into v, answering 400 when it cannot.
func (c *call) decode(v any) bool {
	if err := json.Unmarshal(c.body, v); err != nil {
		writeError(c.w, http.StatusBadRequest, msgMalformedJSON, "the request body is not valid JSON: %v", err)
		return false
	}
	return true
}

// ifMatch checks If-Match against the resource's current ETag source,
// answering 412 on mismatch (or 428 when required and missing).
func (c *call) ifMatch(etagSrc any) bool {
	want := c.r.Header.Get("If-Match")
	if want == "" {
		if c.sys != nil && c.sys.cfg.RequireIfMatch {
			writeError(c.w, http.StatusPreconditionRequired, msgPreconditionReq, "an If-Match header is required to change %s", c.r.URL.Path)
			return false
		}
		return true
	}
	cur := strings.TrimPrefix(etagOf(etagSrc), "W/")
	for tag := range strings.SplitSeq(want, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == cur || `"`+tag+`"` == cur {
			return true
		}
	}
	writeError(c.w, http.StatusPreconditionFailed, msgPreconditionFailed, "the ETag supplied did not match the ETag required to change %s", c.r.URL.Path)
	return false
}

// newToken returns n random bytes in hex.
func newToken(n int) string {
	b := make([]byte, n)
	crand.Read(b)
	return hex.EncodeToString(b)
}
