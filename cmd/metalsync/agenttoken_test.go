package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/agentimage"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/test/tools"
)

// TestAgentTokenRefused runs the real agent binary (outside a VM, with
// --config-dir) against the daemon's real agent listener: a token made
// with another key, or for another publication, is refused and the agent
// says so; the right one is accepted. The token never shows in the
// agent's output.
func TestAgentTokenRefused(t *testing.T) {
	requireVMTools(t) // the listener serves media views of the agent template
	img, err := agentimage.Ensure(t.Context(), agentimage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	site := &schema.Site{Spec: schema.SiteSpec{Agent: &schema.AgentSettings{Image: img.ISO, URL: "https://127.0.0.1", Listen: "127.0.0.1:0"}}}
	reg := prometheus.NewRegistry()
	stack, err := buildAgentStack(site, state, func(string) string { return "" }, func(string) *schema.Node { return nil }, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stack.close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	go stack.serve(ctx, func(a net.Addr) { addrc <- a })
	addr := <-addrc
	const node, epoch = "n1", "0123456789abcdef"
	stack.srv.Allow(node, epoch)

	bin := filepath.Join(t.TempDir(), "metalsync-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "../metalsync-agent").CombinedOutput(); err != nil {
		t.Fatalf("build the agent: %v\n%s", err, out)
	}
	run := func(token string) string {
		dir := t.TempDir()
		meta, _ := json.Marshal(map[string]any{"name": node, "meta": map[string]string{
			agentapi.MetaURL: "https://" + addr.String(), agentapi.MetaToken: token, agentapi.MetaCA: string(stack.ca.PEM())}})
		if err := os.WriteFile(filepath.Join(dir, "meta_data.json"), meta, 0o600); err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 90*time.Second) // an idle first poll is held 25 s
		defer rcancel()
		var out tools.SyncBuffer
		cmd := exec.CommandContext(rctx, bin, "--config-dir", dir)
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.WaitDelay = time.Second
		done := make(chan struct{})
		go func() { cmd.Run(); close(done) }()
		for {
			s := out.String()
			if strings.Contains(s, "ready node="+node) || strings.Contains(s, "rejected the agent token") {
				rcancel()
				<-done
				if strings.Contains(s, token) {
					t.Errorf("the token is in the agent's output:\n%s", s)
				}
				return s
			}
			select {
			case <-done:
				return out.String()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	for _, tt := range []struct {
		name, token string
		ok          bool
	}{
		{"another site's key", agentapi.Token([]byte(strings.Repeat("k", 32)), node, epoch), false},
		{"an earlier publication", agentapi.Token(stack.key, node, "fedcba9876543210"), false},
		{"the right token", agentapi.Token(stack.key, node, epoch), true},
	} {
		out := run(tt.token)
		if got := strings.Contains(out, "ready node="+node); got != tt.ok {
			t.Errorf("%s: accepted = %v, want %v; agent output:\n%s", tt.name, got, tt.ok, out)
		}
	}
	if n := refused(t, reg); n < 2 {
		t.Errorf("the listener counted %v refused requests, want at least 2", n)
	}
}

// refused sums the agent listener's 401 answers.
func refused(t *testing.T, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "metalsync_agent_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() == fmt.Sprint(401) {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
