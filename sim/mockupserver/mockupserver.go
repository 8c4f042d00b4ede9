// Package mockupserver serves a DMTF Redfish mockup directory (see
// mockups/, embedded) over HTTP for tests of Redfish clients.
//
// The documents are loaded once and served read-only from memory; what the
// static mockups cannot express is added on top, minimally: session login
// and logout, optional credential checks, ComputerSystem.Reset changing
// PowerState, and PATCH merging into a few writable resources (virtual
// media, the system's Boot, BIOS settings). Every request is recorded so a
// test can assert exactly what a client sent.
package mockupserver

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"metalsync.dev/metalsync/internal/httpstatus"
	"net/http"

	"path"
	"strings"
	"sync"
)

// Options change what the server enforces.
type Options struct {
	// Username and Password, when Username is set, are required on every
	// request but the service root and login: by session token or basic auth.
	Username string
	Password string
	// NoSessions removes the SessionService: login gets 404, as on
	// services that only take basic auth.
	NoSessions bool
	// RequireIfMatch answers a PATCH without If-Match with 428.
	RequireIfMatch bool
	// DropProperties removes these top-level properties from every
	// document, to make a service that lacks something (e.g.
	// "VirtualMedia").
	DropProperties []string
}

// Request is one recorded request.
type Request struct {
	Method  string
	Path    string
	Body    string // as sent, with the password replaced by "[password]"
	IfMatch string
	Auth    string // "token", "basic" or ""
	Status  int
}

// Server serves one mockup.
type Server struct {
	opts Options

	mu       sync.Mutex
	docs     map[string]map[string]any // guarded by mu; by path without trailing slash
	sessions map[string]string         // guarded by mu; token -> session path
	next     int                       // guarded by mu
	log      []Request                 // guarded by mu
}

// The DMTF mockups the tests use, copied unchanged with their licence
// (mockups/README.md), so a checkout tests on its own.
//
//go:embed mockups
var mockups embed.FS

// Mockups names the embedded DMTF mockups.
var Mockups = []string{"public-localstorage", "public-rackmount1", "public-tower"}

// Open loads one of the embedded DMTF mockups by name (see Mockups).
func Open(name string, opts Options) (*Server, error) {
	sub, err := fs.Sub(mockups, "mockups/"+name)
	if err != nil {
		return nil, fmt.Errorf("mockupserver: mockup %q: %w", name, err)
	}
	return New(sub, opts)
}

// New loads a mockup tree (the tree below /redfish/v1, as DMTF lays it out).
func New(fsys fs.FS, opts Options) (*Server, error) {
	s := &Server{opts: opts, docs: map[string]map[string]any{}, sessions: map[string]string{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "index.json" {
			return err
		}
		rel := path.Dir(p)
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, p := range opts.DropProperties {
			delete(doc, p)
		}
		key := "/redfish/v1"
		if rel != "." {
			key += "/" + rel
		}
		s.docs[key] = doc
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mockupserver: %w", err)
	}
	if _, ok := s.docs["/redfish/v1"]; !ok {
		return nil, errors.New("mockupserver: the mockup has no service root index.json")
	}
	if opts.NoSessions {
		root := s.docs["/redfish/v1"]
		delete(root, "SessionService")
		delete(root, "Links")
	}
	return s, nil
}

// Requests returns the requests recorded so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// ExpireSessions forgets every session, as a BMC does on timeout.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions = map[string]string{}
}

// Doc returns a copy of the document at path, or nil.
func (s *Server) Doc(path string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[strings.TrimSuffix(path, "/")]
	if !ok {
		return nil
	}
	var out map[string]any
	data, _ := json.Marshal(d)
	_ = json.Unmarshal(data, &out)
	return out
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := Request{Method: r.Method, Path: r.URL.Path, IfMatch: r.Header.Get("If-Match")}
	if len(body) > 0 {
		b := string(body)
		if s.opts.Password != "" {
			b = strings.ReplaceAll(b, s.opts.Password, "[password]")
		}
		rec.Body = b
	}
	rec.Auth = s.authKind(r)
	sw := &httpstatus.Recorder{ResponseWriter: w}
	s.serveLocked(sw, r, body, rec.Auth)
	rec.Status = sw.StatusOr200()
	s.log = append(s.log, rec)
}

func (s *Server) authKind(r *http.Request) string {
	if r.Header.Get("X-Auth-Token") != "" {
		return "token"
	}
	if strings.HasPrefix(r.Header.Get("Authorization"), "Basic ") {
		return "basic"
	}
	return ""
}

// authorizedLocked checks credentials when the server requires them.
func (s *Server) authorizedLocked(r *http.Request) bool {
	if s.opts.Username == "" {
		return true
	}
	if t := r.Header.Get("X-Auth-Token"); t != "" {
		_, ok := s.sessions[t]
		return ok
	}
	u, p, ok := r.BasicAuth()
	return ok && u == s.opts.Username && p == s.opts.Password
}

const sessionsPath = "/redfish/v1/SessionService/Sessions"

func (s *Server) serveLocked(w http.ResponseWriter, r *http.Request, body []byte, auth string) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	if path == "/redfish/v1" && r.Method == http.MethodGet {
		s.writeDocLocked(w, path)
		return
	}
	if path == sessionsPath && r.Method == http.MethodPost {
		s.loginLocked(w, body)
		return
	}
	if !s.authorizedLocked(r) {
		writeError(w, http.StatusUnauthorized, "authentication required")
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.writeDocLocked(w, path)
	case http.MethodPatch:
		s.patchLocked(w, r, path, body)
	case http.MethodPost:
		s.postLocked(w, path, body)
	case http.MethodDelete:
		if strings.HasPrefix(path, sessionsPath+"/") && !s.opts.NoSessions {
			for tok, p := range s.sessions {
				if p == path {
					delete(s.sessions, tok)
				}
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeError(w, http.StatusMethodNotAllowed, "DELETE is not allowed on "+path)
	default:
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed")
	}
}

func (s *Server) loginLocked(w http.ResponseWriter, body []byte) {
	if s.opts.NoSessions {
		writeError(w, http.StatusNotFound, "no SessionService")
		return
	}
	var req struct{ UserName, Password string }
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad login body")
		return
	}
	if s.opts.Username != "" && (req.UserName != s.opts.Username || req.Password != s.opts.Password) {
		writeError(w, http.StatusUnauthorized, "invalid credentials")
		return
	}
	s.next++
	tok := fmt.Sprintf("token-%d", s.next)
	p := fmt.Sprintf("%s/%d", sessionsPath, s.next)
	s.sessions[tok] = p
	w.Header().Set("X-Auth-Token", tok)
	w.Header().Set("Location", p)
	writeJSON(w, http.StatusCreated, map[string]any{"@odata.id": p, "Id": fmt.Sprint(s.next), "UserName": req.UserName})
}

func (s *Server) writeDocLocked(w http.ResponseWriter, path string) {
	d, ok := s.docs[path]
	if !ok {
		writeError(w, http.StatusNotFound, "no resource at "+path)
		return
	}
	w.Header().Set("ETag", etag(d))
	writeJSON(w, http.StatusOK, d)
}

// writable reports whether a PATCH of path is accepted.
func writable(path string, d map[string]any) bool {
	t, _ := d["@odata.type"].(string)
	return strings.Contains(t, "VirtualMedia.") || strings.Contains(t, "ComputerSystem.") ||
		strings.HasSuffix(path, "/Bios/Settings")
}

func (s *Server) patchLocked(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	d, ok := s.docs[path]
	if !ok {
		writeError(w, http.StatusNotFound, "no resource at "+path)
		return
	}
	if !writable(path, d) {
		writeError(w, http.StatusMethodNotAllowed, "PATCH is not allowed on "+path)
		return
	}
	im := r.Header.Get("If-Match")
	switch {
	case im == "" && s.opts.RequireIfMatch:
		writeError(w, http.StatusPreconditionRequired, "If-Match required")
		return
	case im != "" && im != etag(d):
		writeError(w, http.StatusPreconditionFailed, "ETag mismatch")
		return
	}
	var patch map[string]any
	if err := json.Unmarshal(body, &patch); err != nil {
		writeError(w, http.StatusBadRequest, "body is not a JSON object")
		return
	}
	merge(d, patch)
	w.WriteHeader(http.StatusNoContent)
}

// merge applies a JSON merge patch (RFC 7396) to d.
func merge(d, patch map[string]any) {
	for k, v := range patch {
		pm, isObj := v.(map[string]any)
		dm, hasObj := d[k].(map[string]any)
		switch {
		case isObj && hasObj:
			merge(dm, pm)
		default:
			d[k] = v
		}
	}
}

func (s *Server) postLocked(w http.ResponseWriter, path string, body []byte) {
	sysPath, ok := strings.CutSuffix(path, "/Actions/ComputerSystem.Reset")
	sys := s.docs[sysPath]
	if !ok || sys == nil {
		if _, exists := s.docs[path]; exists {
			writeError(w, http.StatusMethodNotAllowed, "POST is not allowed on "+path)
			return
		}
		writeError(w, http.StatusNotFound, "no action at "+path)
		return
	}
	var req struct{ ResetType string }
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad reset body")
		return
	}
	switch req.ResetType {
	case "On", "ForceOn", "ForceRestart", "GracefulRestart", "PowerCycle", "PushPowerButton":
		sys["PowerState"] = "On"
	case "ForceOff", "GracefulShutdown":
		sys["PowerState"] = "Off"
	default:
		writeError(w, http.StatusBadRequest, "unsupported ResetType "+req.ResetType)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func etag(d map[string]any) string {
	data, _ := json.Marshal(d)
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": "Base.1.0.GeneralError", "message": msg}})
}
