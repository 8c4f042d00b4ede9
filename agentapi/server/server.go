// Package server is the daemon side of the deploy agent protocol
// (agentapi): it authenticates each node's agent by its token, queues the
// node's commands and hands them out to long polls, learns what the agent
// ran from every poll, and serves the agent its image, its config drive
// and a place for its log.
//
// What the server knows of an agent lives in memory only. A restarted
// daemon learns it again from the agent's first poll, which carries every
// result the agent knows; that is why Command waits for that poll.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"metalsync.dev/metalsync/internal/httpstatus"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/internal/clock"
)

// Images fetches, verifies and caches the images write_image deploys
// (imagecache.Cache implements it).
type Images interface {
	// Prepare makes the image at url, verified against checksum
	// ("sha256:<hex>" or "sha512:<hex>") and converted to raw when
	// format is qcow2, available to Open; it returns the raw bytes'
	// sha256 (hex) and size.
	Prepare(ctx context.Context, url, checksum, format string) (sha256 string, size int64, err error)
	Open(sha256 string) (*os.File, error)
}

// Config configures a Server.
type Config struct {
	// Key is the site's agent key (at least 32 bytes) the tokens are
	// derived from. It comes from credentials, never from Git.
	Key []byte
	Log *slog.Logger
	// LogDir receives each agent's log as <node>.log, appended. Empty:
	// the lines go to Log at debug level.
	LogDir string
	// Images serves write_image; nil refuses the step.
	Images Images
	// ConfigDrive renders the config drive (ISO 9660, label config-2) of
	// the node's deployed OS; nil: write_image writes none.
	ConfigDrive func(ctx context.Context, node string) ([]byte, error)
	// PollWait bounds how long a poll is held open (default 25s).
	PollWait time.Duration
	// Clock times the long polls (default the wall clock).
	Clock clock.Clock
	// Registerer takes the listener's metrics; nil: none are exported.
	Registerer prometheus.Registerer
}

// MinKeyLen is the least length of Config.Key.
const MinKeyLen = 32

// DefaultPollWait is Config.PollWait's default: below common proxy and
// NAT idle timeouts (30–60 s).
const DefaultPollWait = 25 * time.Second

// Request body limits. A poll carries every result, an inspection's
// inventory included; a few MiB holds a machine with hundreds of disks.
const (
	maxPollBody   = 4 << 20
	maxResultBody = 4 << 20
	maxLogBody    = 1 << 20
	maxLogFile    = 64 << 20 // per node
	maxBootID     = 128
	maxNodeInLog  = 64 // of an unauthenticated node header
)

// ErrNotAllowed says the node has no agent media published: its agent
// cannot authenticate, so it cannot run or report a command.
var ErrNotAllowed = errors.New("no agent media published for the node")

// Server is the agent listener's handler and the daemon's view of every
// node's agent.
type Server struct {
	key         []byte
	log         *slog.Logger
	logDir      string
	images      Images
	configDrive func(ctx context.Context, node string) ([]byte, error)
	pollWait    time.Duration
	clock       clock.Clock

	// Request body limits: the max* constants; tests lower them.
	limits struct{ poll, result, log int64 }

	mux      *http.ServeMux
	metrics  *metrics
	refusals *refusalLimiter

	mu    sync.Mutex
	nodes map[string]*node // guarded by mu; entries are never removed

	logMu sync.Mutex // serialises appends to the agent log files
}

// New returns a Server; it serves nothing until nodes are allowed.
func New(cfg Config) (*Server, error) {
	if len(cfg.Key) < MinKeyLen {
		return nil, fmt.Errorf("agent key: %d bytes, want at least %d", len(cfg.Key), MinKeyLen)
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = DefaultPollWait
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o750); err != nil {
			return nil, fmt.Errorf("agent log dir: %w", err)
		}
	}
	s := &Server{
		key: append([]byte(nil), cfg.Key...), log: cfg.Log, logDir: cfg.LogDir,
		images: cfg.Images, configDrive: cfg.ConfigDrive, pollWait: cfg.PollWait,
		clock: clock.Or(cfg.Clock), nodes: map[string]*node{},
		refusals: newRefusalLimiter(refusalEvery, maxRefusalSources),
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.limits.poll, s.limits.result, s.limits.log = maxPollBody, maxResultBody, maxLogBody
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST "+agentapi.PathNext, s.serveNext)
	s.mux.HandleFunc("POST "+agentapi.PathResult, s.serveResult)
	s.mux.HandleFunc("POST "+agentapi.PathLog, s.serveLog)
	s.mux.HandleFunc("GET "+agentapi.PathImage+"{sha}", s.serveImage)
	s.mux.HandleFunc("GET "+agentapi.PathConfigDrive, s.serveConfigDrive)
	return s, nil
}

// Allow makes node's token for epoch valid: call it when the node's agent
// media is published, and again for every node whose status records
// agent media when the daemon starts.
func (s *Server) Allow(name, epoch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodeLocked(name)
	if n.epoch != epoch {
		n.newMediaLocked()
	}
	n.epoch = epoch
	n.broadcastLocked()
}

// Revoke makes node's token invalid: call it when the agent media is
// ejected. Commands waiting for the node's agent fail.
func (s *Server) Revoke(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[name]
	if !ok {
		return
	}
	n.epoch = ""
	n.images = map[string]bool{}
	n.broadcastLocked()
}

// ServeHTTP authenticates the request, then serves the agent API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &httpstatus.Recorder{ResponseWriter: w}
	defer func() { s.metrics.request(r.URL.Path, sw.Status()) }()
	if _, ok := s.authenticate(r); !ok {
		http.Error(sw, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// authenticate checks the node header and bearer token against the
// node's allowed epoch and returns the epoch. A refusal is logged with
// the node and the remote address, never the token: the first from a
// source, then at most once a minute with the number not logged since.
func (s *Server) authenticate(r *http.Request) (string, bool) {
	name := r.Header.Get(agentapi.HeaderNode)
	token, hasToken := bearer(r.Header.Get("Authorization"))
	s.mu.Lock()
	var epoch string
	n, known := s.nodes[name]
	if known {
		epoch = n.epoch
	}
	s.mu.Unlock()
	if name != "" && hasToken && agentapi.CheckToken(s.key, name, epoch, token) {
		return epoch, true
	}
	log, suppressed := s.refusals.refuse(r.RemoteAddr, name, known, s.clock.Now())
	if !log {
		return "", false
	}
	if len(name) > maxNodeInLog {
		name = name[:maxNodeInLog] + "..."
	}
	attrs := []any{"node", name, "remote", r.RemoteAddr, "path", r.URL.Path, "allowed", epoch != "", "token", hasToken}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	s.log.Warn("agent request refused", attrs...)
	return "", false
}

// bearer returns the token of an "Authorization: Bearer <token>" value.
func bearer(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return h[len(prefix):], true
}

// nodeLocked returns node's state, creating it.
func (s *Server) nodeLocked(name string) *node {
	n, ok := s.nodes[name]
	if !ok {
		n = &node{results: map[string]agentapi.Result{}, images: map[string]bool{}, changed: make(chan struct{})}
		s.nodes[name] = n
	}
	return n
}
