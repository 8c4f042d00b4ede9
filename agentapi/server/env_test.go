package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/imagecache"
	"metalsync.dev/metalsync/test/tools"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// env is a Server behind a TLS listener whose certificate comes from the
// package's own CA, as the daemon runs it.
type env struct {
	srv     *Server
	ts      *httptest.Server
	client  *http.Client // trusts the CA only
	images  *dirImages
	logDir  string
	caDir   string
	logs    *tools.SyncBuffer
	metrics *prometheus.Registry
}

// counter reads the counter name with labels (name=value pairs).
func (e *env) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := e.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

type envOpt func(*Config)

func newEnv(t *testing.T, caDir string, opts ...envOpt) *env {
	t.Helper()
	if caDir == "" {
		caDir = t.TempDir()
	}
	e := &env{images: newDirImages(t), logDir: t.TempDir(), caDir: caDir, logs: &tools.SyncBuffer{}, metrics: prometheus.NewRegistry()}
	cfg := Config{
		Key:    testKey,
		Log:    slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		LogDir: e.logDir,
		Images: e.images,
		ConfigDrive: func(_ context.Context, node string) ([]byte, error) {
			return []byte("config-drive-of-" + node), nil
		},
		PollWait:   time.Minute,
		Registerer: e.metrics,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	ca, err := LoadOrCreateCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewUnstartedServer(srv)
	e.ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	e.ts.StartTLS()
	t.Cleanup(e.ts.Close)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.PEM()) {
		t.Fatal("CA PEM not parsed")
	}
	e.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// allow publishes node's media with epoch and returns the agent that
// boots from it.
func (e *env) allow(t *testing.T, node, epoch string) *testAgent {
	t.Helper()
	e.srv.Allow(node, epoch)
	token := agentapi.Token(testKey, node, epoch)
	t.Cleanup(func() {
		if strings.Contains(e.logs.String(), token) {
			t.Errorf("the server's log holds node %s's token", node)
		}
	})
	return &testAgent{e: e, node: node, token: token, bootID: "boot-1"}
}

// testAgent speaks the protocol with net/http, as the deploy agent does.
type testAgent struct {
	e           *env
	node, token string
	bootID      string
	results     []agentapi.Result // every result of this boot, sent with each poll
}

// to returns a copy of the agent talking to another daemon.
func (a *testAgent) to(e *env) *testAgent {
	b := *a
	b.e = e
	return &b
}

func (a *testAgent) request(t *testing.T, method, path string, body []byte, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.e.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if a.node != "" {
		req.Header.Set(agentapi.HeaderNode, a.node)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := a.e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// poll asks for the next command, reporting every result so far.
func (a *testAgent) poll(t *testing.T, wait time.Duration) (int, *agentapi.Command) {
	t.Helper()
	code, cmd, err := a.pollErr(wait)
	if err != nil {
		t.Fatal(err)
	}
	return code, cmd
}

// pollErr is poll for goroutines other than the test's.
func (a *testAgent) pollErr(wait time.Duration) (int, *agentapi.Command, error) {
	body, err := json.Marshal(agentapi.Poll{BootID: a.bootID, Version: "test", Results: a.results, Wait: agentapi.Duration(wait)})
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, a.e.ts.URL+agentapi.PathNext, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set(agentapi.HeaderNode, a.node)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, err
	}
	var cmd agentapi.Command
	if err := json.Unmarshal(b, &cmd); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("command %s: %w", b, err)
	}
	return resp.StatusCode, &cmd, nil
}

// take polls until a command comes; the server holds the poll open, so
// this waits for RunStep to queue one.
func (a *testAgent) take(t *testing.T) agentapi.Command {
	t.Helper()
	code, cmd := a.poll(t, 30*time.Second)
	if code != http.StatusOK {
		t.Fatalf("poll: status %d, want a command", code)
	}
	return *cmd
}

// note records a result the agent reports with its next poll.
func (a *testAgent) note(r agentapi.Result) {
	for i := range a.results {
		if a.results[i].ID == r.ID {
			a.results[i] = r
			return
		}
	}
	a.results = append(a.results, r)
}

// report posts a result and records it.
func (a *testAgent) report(t *testing.T, r agentapi.Result) {
	t.Helper()
	a.note(r)
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if resp, b := a.request(t, http.MethodPost, agentapi.PathResult, body, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("result: status %d: %s", resp.StatusCode, b)
	}
}

// waitQueued returns once id is in node's queue.
func waitQueued(t *testing.T, s *Server, node, id string) {
	t.Helper()
	for {
		s.mu.Lock()
		n := s.nodeLocked(node)
		queued := false
		for _, q := range n.queue {
			queued = queued || q.cmd.ID == id
		}
		changed := n.changed
		s.mu.Unlock()
		if queued {
			return
		}
		select {
		case <-changed:
		case <-t.Context().Done():
			t.Fatal("test ended before the command was queued")
		}
	}
}

// dirImages is an image cache over a directory: Prepare "fetches" the
// bytes registered for a URL and checks the checksum.
type dirImages struct {
	dir string

	mu       sync.Mutex
	contents map[string][]byte // by url; guarded by mu
	prepared []string          // urls, in order; guarded by mu
}

func newDirImages(t *testing.T) *dirImages {
	return &dirImages{dir: t.TempDir(), contents: map[string][]byte{}}
}

func (d *dirImages) add(url string, b []byte) (checksum string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.contents[url] = b
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (d *dirImages) Prepare(_ context.Context, url, checksum, format string) (string, int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prepared = append(d.prepared, url)
	b, ok := d.contents[url]
	if !ok {
		return "", 0, fmt.Errorf("fetch image: 404")
	}
	if format != "raw" {
		return "", 0, fmt.Errorf("%w: format %q: want raw", imagecache.ErrRefused, format)
	}
	sum := sha256.Sum256(b)
	sha := hex.EncodeToString(sum[:])
	if checksum != "sha256:"+sha {
		return "", 0, fmt.Errorf("%w: want %s, got sha256:%s", imagecache.ErrChecksumMismatch, checksum, sha)
	}
	if err := os.WriteFile(filepath.Join(d.dir, sha), b, 0o600); err != nil {
		return "", 0, err
	}
	return sha, int64(len(b)), nil
}

func (d *dirImages) Open(sha string) (*os.File, error) {
	return os.Open(filepath.Join(d.dir, sha))
}
