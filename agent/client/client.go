// Package client is the deploy agent's side of agentapi: it polls the
// daemon for commands over HTTPS, runs each command id at most once,
// reports results until the daemon takes them, streams the agent's log,
// and opens daemon paths (image, config drive) for the disk steps.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/internal/backoff"
	"metalsync.dev/metalsync/internal/clock"
)

// ErrUnauthorized means the daemon refused the token: retrying with the
// same media will not help.
var ErrUnauthorized = errors.New("daemon rejected the agent token")

// Runner runs one command. It is the consumer's interface: the disk steps
// implement it.
type Runner interface {
	Run(ctx context.Context, cmd agentapi.Command) agentapi.Result
}

// Config configures a Client.
type Config struct {
	URL     string // https://host:port of the agent listener
	Node    string
	Token   secret.Value
	CA      []byte // PEM; the only roots trusted
	Version string
	Log     *slog.Logger
	// Logs, when set, is shipped to the daemon's log path while Run runs.
	Logs *LogBuffer
	// Wait is how long the daemon may hold a poll (25 s when zero).
	Wait time.Duration
	// Backoff spaces retries while the daemon is unreachable (1 s to
	// 30 s when zero).
	Backoff backoff.Policy
	// PollSpacing is the least time between the starts of two polls that
	// brought nothing new (1 s when zero), so a daemon that answers at
	// once instead of holding the poll does not spin the agent.
	PollSpacing time.Duration
	Clock       clock.Clock
	// OnReady is called once, after the first poll the daemon answered.
	OnReady func()
	// BootID and Results carry a boot's identity and what it ran over to
	// a new Client (PID 1 makes one per attempt): a command is never run
	// twice in a boot. Empty BootID means a new random one.
	BootID  string
	Results []agentapi.Result
}

// Client talks to the daemon for one node.
type Client struct {
	cfg    Config
	base   *url.URL
	http   *http.Client
	bootID string
	clock  clock.Clock

	mu      sync.Mutex
	order   []string                   // guarded by mu: ids in arrival order
	results map[string]agentapi.Result // guarded by mu
}

// New checks cfg and builds a client that trusts only cfg.CA.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("agent url %q: want https://host:port", cfg.URL)
	}
	if cfg.Token == "" || cfg.Node == "" {
		return nil, errors.New("agent client: node and token are required")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cfg.CA) {
		return nil, errors.New("agent client: no PEM certificate in the CA")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Wait == 0 {
		cfg.Wait = 25 * time.Second
	}
	if cfg.PollSpacing == 0 {
		cfg.PollSpacing = time.Second
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Policy{Base: time.Second, Max: 30 * time.Second}
	}
	if cfg.BootID == "" {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, fmt.Errorf("boot id: %w", err)
		}
		cfg.BootID = hex.EncodeToString(id[:])
	}
	tr := &http.Transport{
		// No proxy from the environment and no system roots: the agent
		// talks to one daemon whose CA came with the media.
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	c := &Client{
		cfg:     cfg,
		base:    u,
		http:    &http.Client{Transport: tr},
		bootID:  cfg.BootID,
		clock:   clock.Or(cfg.Clock),
		results: map[string]agentapi.Result{},
	}
	for _, r := range cfg.Results {
		if _, dup := c.results[r.ID]; r.ID != "" && !dup {
			c.order = append(c.order, r.ID)
		}
		c.results[r.ID] = r
	}
	return c, nil
}

// BootID is this boot's random id.
func (c *Client) BootID() string { return c.bootID }

// Results is every command known, in arrival order. A command still
// running when its client is dropped stays "running": it is not run again.
func (c *Client) Results() []agentapi.Result { return c.snapshot() }

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) endpoint(path string) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

func (c *Client) newRequest(ctx context.Context, method, path string, body []byte, ctype string) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path), r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token.Reveal())
	req.Header.Set(agentapi.HeaderNode, c.cfg.Node)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return req, nil
}

// StatusError is a request the daemon answered with a status other than
// the one wanted. 401 and 403 unwrap to ErrUnauthorized.
type StatusError struct {
	Method, Path string
	Code         int
	Status       string
	Detail       string // start of the body
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: %s", e.Method, e.Path, e.Status)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Unwrap() != nil {
		s += ": " + ErrUnauthorized.Error()
	}
	return s
}

// Unwrap classifies a refused token.
func (e *StatusError) Unwrap() error {
	if e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden {
		return ErrUnauthorized
	}
	return nil
}

// permanent says retrying the same request cannot help.
func permanent(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code/100 == 4 && se.Code != http.StatusRequestTimeout && se.Code != http.StatusTooManyRequests
}

func statusError(method, path string, resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &StatusError{Method: method, Path: path, Code: resp.StatusCode, Status: resp.Status, Detail: strings.TrimSpace(string(msg))}
}

// post sends v as JSON and returns the response for 2xx.
func (c *Client) post(ctx context.Context, path string, v any) (*http.Response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	req, err := c.newRequest(ctx, http.MethodPost, path, body, "application/json")
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, statusError(http.MethodPost, path, resp)
	}
	return resp, nil
}

// Open GETs a daemon path from offset on (the disk steps resume an image
// download with it). With offset > 0 the daemon must answer 206 from
// exactly that offset.
func (c *Client) Open(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	if !strings.HasPrefix(path, "/") || offset < 0 {
		return nil, fmt.Errorf("open %q at %d: want an absolute path and offset >= 0", path, offset)
	}
	req, err := c.newRequest(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	want := http.StatusOK
	if offset > 0 {
		want = http.StatusPartialContent
	}
	if resp.StatusCode != want {
		defer resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil, fmt.Errorf("GET %s from %d: %s, want %d", path, offset, resp.Status, want)
		}
		return nil, statusError(http.MethodGet, path, resp)
	}
	if offset > 0 {
		var start int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != offset {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s from %d: Content-Range %q", path, offset, resp.Header.Get("Content-Range"))
		}
	}
	return resp.Body, nil
}
