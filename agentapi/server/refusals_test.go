package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/internal/clock/clocktest"
)

// TestRefusalLimiter: the first refusal of a source is logged, later ones
// at most once per interval with the number held back; a source is its
// host (not its port) and the node it claims when that node is known.
func TestRefusalLimiter(t *testing.T) {
	type refusal struct {
		remote, node string
		known        bool
		after        time.Duration // clock advance before the refusal
	}
	type result struct {
		Log        bool
		Suppressed int
	}
	tests := []struct {
		name     string
		refusals []refusal
		want     []result
	}{
		{"first logged, repeats held back", []refusal{
			{remote: "192.0.2.1:1000", node: "n1", known: true},
			{remote: "192.0.2.1:1001", node: "n1", known: true, after: time.Second},
			{remote: "192.0.2.1:1002", node: "n1", known: true, after: 58 * time.Second},
		}, []result{{true, 0}, {false, 0}, {false, 0}}},
		{"a minute later, logged with the count", []refusal{
			{remote: "192.0.2.1:1000", node: "n1", known: true},
			{remote: "192.0.2.1:1001", node: "n1", known: true, after: 30 * time.Second},
			{remote: "192.0.2.1:1002", node: "n1", known: true, after: 30 * time.Second},
			{remote: "192.0.2.1:1003", node: "n1", known: true},
			{remote: "192.0.2.1:1004", node: "n1", known: true, after: time.Minute},
		}, []result{{true, 0}, {false, 0}, {true, 1}, {false, 0}, {true, 1}}},
		{"another known node from the host is another source", []refusal{
			{remote: "192.0.2.1:1000", node: "n1", known: true},
			{remote: "192.0.2.1:1001", node: "n2", known: true},
			{remote: "192.0.2.1:1002", node: "n2", known: true},
		}, []result{{true, 0}, {true, 0}, {false, 0}}},
		{"unknown names share the host's source", []refusal{
			{remote: "[2001:db8::1]:1000", node: "x1"},
			{remote: "[2001:db8::1]:1001", node: "x2"},
			{remote: "[2001:db8::1]:1002", node: ""},
		}, []result{{true, 0}, {false, 0}, {false, 0}}},
		{"another host is another source", []refusal{
			{remote: "192.0.2.1:1000", node: "n1", known: true},
			{remote: "192.0.2.2:1000", node: "n1", known: true},
		}, []result{{true, 0}, {true, 0}}},
		{"an address without a port is the host", []refusal{
			{remote: "192.0.2.1", node: "n1", known: true},
			{remote: "192.0.2.1", node: "n1", known: true},
		}, []result{{true, 0}, {false, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newRefusalLimiter(time.Minute, 16)
			now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
			var got []result
			for _, r := range tt.refusals {
				now = now.Add(r.after)
				log, n := l.refuse(r.remote, r.node, r.known, now)
				got = append(got, result{log, n})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestRefusalLimiterBounded: the limiter remembers at most its size of
// sources and forgets the one refused least recently, so a source still
// hammering keeps its place.
func TestRefusalLimiterBounded(t *testing.T) {
	const size = 4
	l := newRefusalLimiter(time.Minute, size)
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	l.refuse("192.0.2.200:1", "", false, now) // the hammering source
	for i := range 100 {
		if log, _ := l.refuse(fmt.Sprintf("198.51.100.%d:1", i), "", false, now); !log {
			t.Fatalf("first refusal of source %d not logged", i)
		}
		if log, _ := l.refuse("192.0.2.200:2", "", false, now); log {
			t.Fatalf("after source %d: the hammering source was forgotten and logged again", i)
		}
		if n := len(l.entries); n > size || l.recent.Len() != n {
			t.Fatalf("after source %d: %d entries, %d in order; want at most %d", i, n, l.recent.Len(), size)
		}
	}
	// The first of the hundred was forgotten long ago: it is new again.
	if log, _ := l.refuse("198.51.100.0:1", "", false, now); !log {
		t.Errorf("a forgotten source's refusal was not logged")
	}
}

// TestRefusedRequestsLogThinned: a node polling with a bad token gets a
// 401 every time and every refusal is counted, but the log has its first
// refusal and then one line a minute carrying the number held back.
func TestRefusedRequestsLogThinned(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	logs := &recordHandler{}
	reg := prometheus.NewRegistry()
	srv, err := New(Config{Key: testKey, Log: slog.New(logs), Clock: clk, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv.Allow("n1", "e1")
	bad := agentapi.Token(testKey, "n1", "e0")
	refused := func(port int) {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, agentapi.PathNext, nil)
		req.RemoteAddr = fmt.Sprintf("192.0.2.7:%d", port)
		req.Header.Set(agentapi.HeaderNode, "n1")
		req.Header.Set("Authorization", "Bearer "+bad)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", w.Code)
		}
	}
	for i := range 10 {
		refused(40000 + i)
		clk.Advance(time.Second)
	}
	clk.Advance(time.Minute)
	refused(50000)
	want := []logLine{
		{Msg: "agent request refused", Node: "n1", Remote: "192.0.2.7:40000"},
		{Msg: "agent request refused", Node: "n1", Remote: "192.0.2.7:50000", Suppressed: 9},
	}
	if diff := cmp.Diff(want, logs.lines()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	e := &env{metrics: reg}
	if got := e.counter(t, "metalsync_agent_requests_total", "endpoint", "next", "code", "401"); got != 11 {
		t.Errorf("refused requests counted: %v, want 11", got)
	}
}

type logLine struct {
	Msg, Node, Remote string
	Suppressed        int64
}

// recordHandler keeps the warnings logged.
type recordHandler struct {
	mu  sync.Mutex
	got []logLine // guarded by mu
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *recordHandler) WithGroup(string) slog.Handler                { return h }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	l := logLine{Msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "node":
			l.Node = a.Value.String()
		case "remote":
			l.Remote = a.Value.String()
		case "suppressed":
			l.Suppressed = a.Value.Int64()
		}
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, l)
	return nil
}

func (h *recordHandler) lines() []logLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logLine(nil), h.got...)
}
