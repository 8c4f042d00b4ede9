package redfishsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Request is one recorded request.
type Request struct {
	Time   time.Time // on the simulator's clock
	Method string
	Path   string
	System string // the system the path names (or the BMC's own), "" for none
	// Status is the HTTP status sent; 0 when none was (connection reset,
	// or the client gave up on a hung request).
	Status   int
	Body     string // POST/PATCH/PUT bodies, with any "Password" redacted
	Duration time.Duration
}

// Counts are per-system request counters.
type Counts struct {
	Requests, Get, Post, Patch, Delete int64
	// Errors counts answers with status >= 400 or none at all.
	Errors int64
}

type recorder struct {
	limit    int
	disabled bool
	total    counters // requests that name no system

	mu  sync.Mutex
	log []Request // guarded by mu
}

func (s *Server) record(c *call, status int, d time.Duration) {
	cs := &s.rec.total
	id := ""
	if c.sys != nil {
		cs, id = &c.sys.count, c.sys.id
	}
	cs.add(c.r.Method, status)
	if s.rec.disabled {
		return
	}
	req := Request{Time: c.now, Method: c.r.Method, Path: c.r.URL.Path, System: id, Status: status, Duration: d}
	if len(c.body) > 0 {
		req.Body = redact(c.body)
	}
	r := &s.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.log) >= r.limit {
		r.log = slices.Delete(r.log, 0, len(r.log)/2+1)
	}
	r.log = append(r.log, req)
}

func (cs *counters) add(method string, status int) {
	cs.requests.Add(1)
	switch method {
	case http.MethodGet, http.MethodHead:
		cs.get.Add(1)
	case http.MethodPost:
		cs.post.Add(1)
	case http.MethodPatch, http.MethodPut:
		cs.patch.Add(1)
	case http.MethodDelete:
		cs.del.Add(1)
	}
	if status == 0 || status >= 400 {
		cs.errors.Add(1)
	}
}

func (cs *counters) load() Counts {
	return Counts{
		Requests: cs.requests.Load(), Get: cs.get.Load(), Post: cs.post.Load(),
		Patch: cs.patch.Load(), Delete: cs.del.Load(), Errors: cs.errors.Load(),
	}
}

// redact replaces top-level "Password" values in a JSON body: recorded
// requests end up in test logs.
func redact(body []byte) string {
	if !bytes.Contains(body, []byte("Password")) {
		return string(body)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return "[unparsed body containing a password]"
	}
	for k := range m {
		if k == "Password" {
			m[k] = json.RawMessage(`"[redacted]"`)
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Requests returns the recorded requests, oldest first.
func (s *Server) Requests() []Request {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return slices.Clone(s.rec.log)
}

// RequestsFor returns the recorded requests that named system id.
func (s *Server) RequestsFor(id string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.System == id {
			out = append(out, r)
		}
	}
	return out
}

// ResetRequests empties the request log (counters keep counting).
func (s *Server) ResetRequests() {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.log = nil
}

// Counts returns the counters of system id; "" counts the requests that
// named no system (service root, sessions, update service on the shared
// listener).
func (s *Server) Counts(id string) Counts {
	if id == "" {
		return s.rec.total.load()
	}
	sys, ok := s.systems[id]
	if !ok {
		return Counts{}
	}
	return sys.count.load()
}

// TotalCounts sums the counters of every system and of requests naming none.
func (s *Server) TotalCounts() Counts {
	t := s.rec.total.load()
	for _, sys := range s.order {
		c := sys.count.load()
		t.Requests += c.Requests
		t.Get += c.Get
		t.Post += c.Post
		t.Patch += c.Patch
		t.Delete += c.Delete
		t.Errors += c.Errors
	}
	return t
}
