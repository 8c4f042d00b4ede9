package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/agent/client"
	"metalsync.dev/metalsync/agentapi"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr bool
	}{
		{"config dir", []string{"--config-dir", "d"}, options{configDir: "d", resolvConf: "/etc/resolv.conf"}, false},
		{"network", []string{"--config-dir=d", "--network", "--resolv-conf", "/tmp/r"}, options{configDir: "d", network: true, resolvConf: "/tmp/r"}, false},
		{"version", []string{"--version"}, options{showVersion: true, resolvConf: "/etc/resolv.conf"}, false},
		{"no config dir", nil, options{}, true},
		{"stray argument", []string{"--config-dir", "d", "x"}, options{}, true},
		{"unknown flag", []string{"--frobnicate"}, options{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags = %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(options{})); diff != "" {
					t.Errorf("parseFlags (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// lineWatch is stdout that closes ready when a line holds want.
type lineWatch struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	ready chan struct{}
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.ready != nil && strings.Contains(w.buf.String(), w.want) {
		close(w.ready)
		w.ready = nil
	}
	return len(p), nil
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type noRunner struct{ t *testing.T }

func (r noRunner) Run(context.Context, agentapi.Command) agentapi.Result {
	r.t.Error("no command was handed out")
	return agentapi.Result{State: agentapi.StateFailed}
}

// TestLocalRun runs Main with --config-dir against a TLS daemon that has
// nothing to do: it prints the start and ready lines the VM test waits
// for, and never the token.
func TestLocalRun(t *testing.T) {
	const token = "tok-secret-0123456789"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	dir := t.TempDir()
	meta, _ := json.Marshal(map[string]any{"name": "r1-n01", "meta": map[string]string{
		agentapi.MetaURL: srv.URL, agentapi.MetaToken: token,
		agentapi.MetaCA: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
	}})
	if err := os.WriteFile(filepath.Join(dir, "meta_data.json"), append(meta, "   \n  "...), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &lineWatch{want: "metalsync-agent: ready node=r1-n01\n", ready: make(chan struct{})}
	ready := out.ready
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	d := deps{version: "v1.2.3", newRunner: func(*client.Client, logger) client.Runner { return noRunner{t} }}
	go func() { code <- Main(ctx, []string{"--config-dir", dir}, out, out, d) }()
	<-ready
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("Main = %d after cancel, want 0", c)
	}
	if !strings.HasPrefix(out.String(), "metalsync-agent: v1.2.3 starting\n") {
		t.Errorf("output does not start with the version line:\n%s", out)
	}
	if strings.Contains(out.String(), token) {
		t.Errorf("token in the output:\n%s", out)
	}
}

func TestLocalRunBadConfig(t *testing.T) {
	var stderr bytes.Buffer
	d := deps{version: "v", newRunner: func(*client.Client, logger) client.Runner { return noRunner{t} }}
	if c := Main(context.Background(), []string{"--config-dir", t.TempDir()}, io.Discard, &stderr, d); c != 1 {
		t.Errorf("Main = %d, want 1", c)
	}
	if !strings.Contains(stderr.String(), "meta_data.json: no such file") {
		t.Errorf("stderr = %q", stderr.String())
	}
}
