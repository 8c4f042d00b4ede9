package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"metalsync.dev/metalsync/test/tools"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/internal/backoff"
)

const (
	token = "tok-0123456789abcdef-very-secret"
	node  = "r1-n01"
)

// daemon is a scripted agent listener. next decides each poll's answer;
// result decides each result's status.
type daemon struct {
	t      *testing.T
	next   func(n int, p agentapi.Poll) (int, *agentapi.Command)
	result func(attempt int, r agentapi.Result) int

	mu       sync.Mutex
	polls    []agentapi.Poll   // guarded by mu
	attempts int               // guarded by mu: result posts
	results  []agentapi.Result // guarded by mu: results taken
	logs     bytes.Buffer      // guarded by mu
}

func (d *daemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get(agentapi.HeaderNode) != node {
		d.t.Errorf("%s %s: wrong credentials or node header", r.Method, r.URL.Path)
		http.Error(w, "who are you", http.StatusUnauthorized)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch r.URL.Path {
	case agentapi.PathNext:
		var p agentapi.Poll
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			d.t.Errorf("poll: %v", err)
		}
		d.polls = append(d.polls, p)
		code, cmd := d.next(len(d.polls), p)
		if cmd == nil {
			w.WriteHeader(code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(cmd)
	case agentapi.PathResult:
		var res agentapi.Result
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			d.t.Errorf("result: %v", err)
		}
		d.attempts++
		code := http.StatusNoContent
		if d.result != nil {
			code = d.result(d.attempts, res)
		}
		if code == http.StatusNoContent {
			d.results = append(d.results, res)
		}
		w.WriteHeader(code)
	case agentapi.PathLog:
		io.Copy(&d.logs, r.Body)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func caPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func newClient(t *testing.T, srv *httptest.Server, logs *LogBuffer, local io.Writer, onReady func()) *Client {
	t.Helper()
	w := local
	if logs != nil {
		w = io.MultiWriter(local, logs)
	}
	c, err := New(Config{
		URL: srv.URL, Node: node, Token: secret.Value(token), CA: caPEM(srv), Version: "v-test",
		Log: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), Logs: logs,
		Wait: time.Second, Backoff: backoff.Policy{Base: time.Millisecond, Max: 4 * time.Millisecond},
		PollSpacing: time.Millisecond, OnReady: onReady,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// countingRunner counts runs and holds each until released.
type countingRunner struct {
	mu      sync.Mutex
	runs    map[string]int
	release chan struct{}
}

func (r *countingRunner) Run(ctx context.Context, cmd agentapi.Command) agentapi.Result {
	r.mu.Lock()
	r.runs[cmd.ID]++
	r.mu.Unlock()
	select {
	case <-r.release:
		return agentapi.Result{State: agentapi.StateSucceeded, RootDevice: "/dev/vda"}
	case <-ctx.Done():
		return agentapi.Result{State: agentapi.StateFailed, Error: ctx.Err().Error()}
	}
}

func stateOf(p agentapi.Poll, id string) string {
	for _, r := range p.Results {
		if r.ID == id {
			return r.State
		}
	}
	return ""
}

// TestCommandRunsOnce: the daemon hands the same id out while it runs and
// again after it finished, and refuses the first result post; the
// runner still runs it once, polls report it running then succeeded, and
// the result is delivered.
func TestCommandRunsOnce(t *testing.T) {
	cmd := &agentapi.Command{ID: "deploy-1", Interface: "deploy", Step: "write_image"}
	runner := &countingRunner{runs: map[string]int{}, release: make(chan struct{})}
	done := make(chan struct{})
	var sawRunning, sawDone sync.Once
	afterDone := 0 // polls that reported the command done
	d := &daemon{t: t}
	d.next = func(n int, p agentapi.Poll) (int, *agentapi.Command) {
		switch stateOf(p, cmd.ID) {
		case "":
			return 0, cmd
		case agentapi.StateRunning:
			sawRunning.Do(func() { close(runner.release) })
			return 0, cmd
		case agentapi.StateSucceeded:
			afterDone++
			if afterDone == 1 {
				return 0, cmd // once more, after it finished
			}
			if len(d.results) == 1 {
				sawDone.Do(func() { close(done) })
				return http.StatusNoContent, nil
			}
			return http.StatusNoContent, nil
		}
		t.Errorf("poll %d: state %q", n, stateOf(p, cmd.ID))
		return http.StatusNoContent, nil
	}
	d.result = func(attempt int, r agentapi.Result) int {
		if attempt == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	}
	srv := httptest.NewTLSServer(d)
	defer srv.Close()
	c := newClient(t, srv, nil, io.Discard, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, runner) }()
	<-done
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if runner.runs[cmd.ID] != 1 {
		t.Errorf("ran %d times, want 1", runner.runs[cmd.ID])
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	want := agentapi.Result{ID: cmd.ID, State: agentapi.StateSucceeded, RootDevice: "/dev/vda"}
	if len(d.results) != 1 || d.results[0] != want {
		t.Errorf("results posted = %+v, want [%+v]", d.results, want)
	}
	for i, p := range d.polls {
		if p.BootID != c.BootID() || p.Version != "v-test" || p.Wait != agentapi.Duration(time.Second) {
			t.Errorf("poll %d = %+v", i, p)
		}
	}
}

func TestUnauthorizedStops(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "token expired", http.StatusUnauthorized)
	}))
	defer srv.Close()
	var local tools.SyncBuffer
	c := newClient(t, srv, nil, &local, nil)
	err := c.Run(context.Background(), &countingRunner{runs: map[string]int{}})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Run = %v, want ErrUnauthorized", err)
	}
	if want := "POST /agent/v1/next: 401 Unauthorized: token expired: daemon rejected the agent token"; err.Error() != want {
		t.Errorf("Run = %q, want %q", err, want)
	}
	if strings.Contains(err.Error()+local.String(), token) {
		t.Errorf("token shows in the error or log")
	}
}

// TestRetriesAndShipsLogs: the daemon is down for three polls (it
// restarts), then answers; the agent becomes ready, ships its log, and
// the token shows in no log even when a step writes it.
func TestRetriesAndShipsLogs(t *testing.T) {
	ready := make(chan struct{})
	shipped := make(chan struct{})
	d := &daemon{t: t}
	d.next = func(n int, p agentapi.Poll) (int, *agentapi.Command) {
		if n <= 3 {
			return http.StatusServiceUnavailable, nil
		}
		if strings.Contains(d.logs.String(), "step says") {
			select {
			case <-shipped:
			default:
				close(shipped)
			}
		}
		return http.StatusNoContent, nil
	}
	srv := httptest.NewTLSServer(d)
	defer srv.Close()
	var local tools.SyncBuffer
	logs := NewLogBuffer(1 << 20)
	c := newClient(t, srv, logs, &local, func() {
		// A step that leaks the token into the shipped log.
		logs.Write([]byte("step says " + token + "\n"))
		close(ready)
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, &countingRunner{runs: map[string]int{}}) }()
	<-ready
	<-shipped
	cancel()
	<-errc
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.polls) < 4 {
		t.Errorf("ready after %d polls, want after the 3 refused", len(d.polls))
	}
	if !strings.Contains(local.String(), "poll failed") || !strings.Contains(d.logs.String(), "poll failed") {
		t.Errorf("the retries are not logged:\nlocal:\n%s\nshipped:\n%s", local.String(), d.logs.String())
	}
	if strings.Contains(local.String(), token) || strings.Contains(d.logs.String(), token) {
		t.Errorf("token shows in a log:\nlocal:\n%s\nshipped:\n%s", local.String(), d.logs.String())
	}
	if !strings.Contains(d.logs.String(), "step says [redacted]") {
		t.Errorf("shipped log lacks the redacted step line:\n%s", d.logs.String())
	}
}

func TestRunnerPanicFails(t *testing.T) {
	got := runOne(context.Background(), panicRunner{}, agentapi.Command{ID: "x"})
	if got.ID != "x" || got.State != agentapi.StateFailed || !strings.Contains(got.Error, "panicked: boom") {
		t.Errorf("runOne = %+v", got)
	}
	got = runOne(context.Background(), stateRunner(agentapi.StateRunning), agentapi.Command{ID: "y"})
	if got.State != agentapi.StateFailed || got.ID != "y" {
		t.Errorf("runOne with a running result = %+v", got)
	}
}

type panicRunner struct{}

func (panicRunner) Run(context.Context, agentapi.Command) agentapi.Result { panic("boom") }

type stateRunner string

func (s stateRunner) Run(context.Context, agentapi.Command) agentapi.Result {
	return agentapi.Result{State: string(s)}
}

func TestLogBufferDropsOldest(t *testing.T) {
	b := NewLogBuffer(12)
	for _, l := range []string{"one\n", "two\n", "three\n", "four"} {
		b.Write([]byte(l))
	}
	if got, want := string(b.take(1<<10)), "metalsync-agent: 2 log lines dropped\nthree\nfour\n"; got != want {
		t.Errorf("take = %q, want %q", got, want)
	}
	if got := b.take(1 << 10); got != nil {
		t.Errorf("take on empty = %q", got)
	}
	b.Write([]byte("aa\nbb\ncc\n"))
	if got := string(b.take(7)); got != "aa\nbb\n" {
		t.Errorf("take(7) = %q, want whole lines", got)
	}
	b.putBack([]byte("zz\n"))
	if got := string(b.take(100)); got != "zz\ncc\n" {
		t.Errorf("after putBack = %q", got)
	}
}

func TestOpen(t *testing.T) {
	content := "0123456789abcdef"
	mux := http.NewServeMux()
	mux.HandleFunc(agentapi.PathImage+"abc", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get(agentapi.HeaderNode) != node {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		http.ServeContent(w, r, "img", time.Time{}, strings.NewReader(content))
	})
	mux.HandleFunc("/norange", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, content) })
	mux.HandleFunc("/denied", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "stage over", http.StatusForbidden) })
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	c := newClient(t, srv, nil, io.Discard, nil)
	tests := []struct {
		name    string
		path    string
		offset  int64
		want    string
		wantErr string
	}{
		{"whole", agentapi.PathImage + "abc", 0, content, ""},
		{"resume", agentapi.PathImage + "abc", 10, "abcdef", ""},
		{"server ignores range", "/norange", 10, "", "GET /norange from 10: 200 OK, want 206"},
		{"forbidden", "/denied", 0, "", "GET /denied: 403 Forbidden: stage over: daemon rejected the agent token"},
		{"missing", "/nothing", 0, "", "GET /nothing: 404 Not Found: 404 page not found"},
		{"relative path", "nothing", 0, "", "want an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := c.Open(context.Background(), tt.path, tt.offset)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open = %v, want error %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil || string(b) != tt.want {
				t.Errorf("read %q, %v; want %q", b, err, tt.want)
			}
		})
	}
}

// TestTrustsOnlyTheMediaCA: a server whose certificate does not chain to
// the media's CA is refused, whatever the system trusts.
func TestTrustsOnlyTheMediaCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, Node: node, Token: token, CA: otherCA(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Open(context.Background(), "/x", 0)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Open against an untrusted server = %v, want a certificate error", err)
	}
}

// otherCA is a self-signed CA the test server's certificate does not
// chain to.
func otherCA(t *testing.T) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestNewRejects(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"http", Config{URL: "http://h:1", Node: node, Token: token, CA: caPEM(srv)}, "want https://host:port"},
		{"no token", Config{URL: srv.URL, Node: node, CA: caPEM(srv)}, "node and token are required"},
		{"no ca", Config{URL: srv.URL, Node: node, Token: token}, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCarriesResultsOver: a new client of the same boot (PID 1 starts
// over after an error) keeps the boot id and does not run a known id.
func TestCarriesResultsOver(t *testing.T) {
	cmd := &agentapi.Command{ID: "c1", Interface: "deploy", Step: "write_image"}
	done := make(chan struct{})
	d := &daemon{t: t}
	d.next = func(n int, p agentapi.Poll) (int, *agentapi.Command) {
		if n == 1 {
			if stateOf(p, "c1") != agentapi.StateSucceeded || p.BootID != "boot-1" {
				t.Errorf("first poll of the new client = %+v", p)
			}
			return 0, cmd
		}
		if n == 2 {
			close(done)
		}
		return http.StatusNoContent, nil
	}
	srv := httptest.NewTLSServer(d)
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, Node: node, Token: token, CA: caPEM(srv), PollSpacing: time.Millisecond,
		BootID: "boot-1", Results: []agentapi.Result{{ID: "c1", State: agentapi.StateSucceeded}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runner := &countingRunner{runs: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, runner) }()
	<-done
	cancel()
	<-errc
	if runner.runs["c1"] != 0 {
		t.Errorf("a known command ran %d times", runner.runs["c1"])
	}
	if got := c.Results(); len(got) != 1 || got[0].State != agentapi.StateSucceeded {
		t.Errorf("Results = %+v", got)
	}
}
