package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/reconcile/plan"
)

func agentStep(iface, step string, args map[string]any) plan.Step {
	return plan.Step{Action: plan.ActionAgentStep, Agent: &plan.Agent{Interface: iface, Step: step, Args: args}}
}

type stepResult struct {
	res apply.AgentResult
	err error
}

// runStep runs RunStep in the background.
func runStep(ctx context.Context, s *Server, node, id string, step plan.Step) <-chan stepResult {
	ch := make(chan stepResult, 1)
	go func() {
		res, err := s.Agent().RunStep(ctx, node, id, step)
		ch <- stepResult{res, err}
	}()
	return ch
}

type commandResult struct {
	res apply.AgentResult
	ran bool
	err error
}

func command(ctx context.Context, s *Server, node, id string) <-chan commandResult {
	ch := make(chan commandResult, 1)
	go func() {
		res, ran, err := s.Agent().Command(ctx, node, id)
		ch <- commandResult{res, ran, err}
	}()
	return ch
}

func TestUnauthorized(t *testing.T) {
	e := newEnv(t, "")
	good := e.allow(t, "n1", "e1")
	e.allow(t, "n2", "e2")
	revoked := e.allow(t, "n3", "e3")
	e.srv.Revoke("n3")
	sha := strings.Repeat("ab", 32)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := runStep(ctx, e.srv, "n1", "c1", agentStep("deploy", "erase_devices_metadata", nil))
	waitQueued(t, e.srv, "n1", "c1")

	tests := []struct {
		name  string
		agent testAgent
		auth  string // replaces the Authorization header when set
	}{
		{name: "no token", agent: testAgent{node: "n1"}},
		{name: "other node's token", agent: testAgent{node: "n1", token: agentapi.Token(testKey, "n2", "e2")}},
		{name: "old epoch", agent: testAgent{node: "n1", token: agentapi.Token(testKey, "n1", "e0")}},
		{name: "other key", agent: testAgent{node: "n1", token: agentapi.Token([]byte(strings.Repeat("x", 32)), "n1", "e1")}},
		{name: "basic scheme", agent: testAgent{node: "n1"}, auth: "Basic " + good.token},
		{name: "no node", agent: testAgent{token: good.token}},
		{name: "revoked", agent: testAgent{node: "n3", token: revoked.token}},
		{name: "never allowed", agent: testAgent{node: "n4", token: agentapi.Token(testKey, "n4", "e1")}},
		{name: "empty epoch", agent: testAgent{node: "n4", token: agentapi.Token(testKey, "n4", "")}},
	}
	paths := []struct{ method, path string }{
		{http.MethodPost, agentapi.PathNext},
		{http.MethodPost, agentapi.PathResult},
		{http.MethodPost, agentapi.PathLog},
		{http.MethodGet, agentapi.PathImage + sha},
		{http.MethodGet, agentapi.PathConfigDrive},
		{http.MethodGet, "/agent/v1/nothing"},
	}
	for _, tt := range tests {
		for _, p := range paths {
			t.Run(tt.name+p.path, func(t *testing.T) {
				a := tt.agent
				a.e, a.bootID = e, "boot-1"
				hdr := http.Header{}
				if tt.auth != "" {
					hdr.Set("Authorization", tt.auth)
				}
				body := `{"bootID":"boot-1","wait":"0s","id":"c1","state":"succeeded"}`
				resp, b := a.request(t, p.method, p.path, []byte(body), hdr)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", resp.StatusCode)
				}
				if strings.Contains(string(b), "c1") || strings.Contains(string(b), "config-drive") {
					t.Fatalf("401 body says too much: %q", b)
				}
			})
		}
	}

	// Nothing was handed out, and no result was taken in.
	e.srv.mu.Lock()
	n := e.srv.nodes["n1"]
	handed, results := n.queue[0].handedTo, len(n.results)
	e.srv.mu.Unlock()
	if handed != "" || results != 0 {
		t.Fatalf("after refused requests: command handed to %q, %d results known", handed, results)
	}
	refused := e.counter(t, "metalsync_agent_requests_total", "endpoint", "next", "code", "401")
	if want := float64(len(tests)); refused != want {
		t.Errorf("metric of refused polls: %v, want %v", refused, want)
	}
	if got := good.take(t); got.ID != "c1" {
		t.Fatalf("the allowed agent got command %q, want c1", got.ID)
	}
	good.report(t, agentapi.Result{ID: "c1", State: agentapi.StateSucceeded})
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
}

func TestRunStep(t *testing.T) {
	inv := &agentapi.Inventory{CPUs: 4, MemoryMiB: 2048, BootMode: "uefi",
		Disks: []agentapi.Disk{{Name: "/dev/vda", SizeBytes: 8 << 30}}, NICs: []agentapi.NIC{{Name: "eth0", MAC: "52:54:00:00:00:01", Link: true}}}
	tests := []struct {
		name    string
		id      string
		step    plan.Step
		result  agentapi.Result
		want    apply.AgentResult
		wantErr string
	}{
		{name: "erase", id: "c1", step: agentStep("deploy", "erase_devices_metadata", nil),
			result: agentapi.Result{State: agentapi.StateSucceeded}},
		{name: "inspect without an id", step: agentStep("inspect", "inspect", map[string]any{"token": "t1"}),
			result: agentapi.Result{State: agentapi.StateSucceeded, Inventory: inv},
			want: apply.AgentResult{Inventory: map[string]any{"cpus": 4.0, "memoryMiB": 2048.0, "bootMode": "uefi", "secureBoot": false,
				"disks": []any{map[string]any{"name": "/dev/vda", "sizeBytes": float64(8 << 30), "rotational": false}},
				"nics":  []any{map[string]any{"name": "eth0", "mac": "52:54:00:00:00:01", "link": true}}}}},
		{name: "failed", id: "c2", step: agentStep("deploy", "erase_devices_metadata", nil),
			result:  agentapi.Result{State: agentapi.StateFailed, Error: "wipefs /dev/vda: device busy"},
			wantErr: "node n1: agent deploy.erase_devices_metadata failed: wipefs /dev/vda: device busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "")
			a := e.allow(t, "n1", "e1")
			done := runStep(t.Context(), e.srv, "n1", tt.id, tt.step)
			cmd := a.take(t)
			if tt.id != "" && cmd.ID != tt.id {
				t.Fatalf("command id %q, want %q", cmd.ID, tt.id)
			}
			if cmd.Interface+"."+cmd.Step != tt.step.Agent.Interface+"."+tt.step.Agent.Step {
				t.Fatalf("command %s.%s, want %s.%s", cmd.Interface, cmd.Step, tt.step.Agent.Interface, tt.step.Agent.Step)
			}
			// The agent starts it; a poll that says so gets nothing more.
			a.note(agentapi.Result{ID: cmd.ID, State: agentapi.StateRunning})
			if code, got := a.poll(t, 0); code != http.StatusNoContent {
				t.Fatalf("poll while running: status %d, command %+v", code, got)
			}
			r := tt.result
			r.ID = cmd.ID
			a.report(t, r)
			got := <-done
			if tt.wantErr != "" {
				if got.err == nil || !strings.Contains(got.err.Error(), tt.wantErr) {
					t.Fatalf("RunStep error %v, want %q", got.err, tt.wantErr)
				}
				if apply.Classify(got.err) != apply.Stalled {
					t.Fatalf("RunStep error class %v, want stalled", apply.Classify(got.err))
				}
				return
			}
			if got.err != nil {
				t.Fatal(got.err)
			}
			if diff := cmp.Diff(tt.want, got.res); diff != "" {
				t.Fatalf("result (-want +got):\n%s", diff)
			}
			name := tt.step.Agent.Interface + "." + tt.step.Agent.Step
			if n := e.counter(t, "metalsync_agent_commands_total", "step", name, "result", "succeeded"); n != 1 {
				t.Errorf("metric of succeeded %s commands: %v, want 1", name, n)
			}
			// A retry of a finished id is answered without the agent.
			if tt.id != "" {
				if _, err := e.srv.Agent().RunStep(t.Context(), "n1", tt.id, tt.step); err != nil {
					t.Fatalf("RunStep again: %v", err)
				}
			}
		})
	}
}

func TestRunStepRefusals(t *testing.T) {
	e := newEnv(t, "")
	_, err := e.srv.Agent().RunStep(t.Context(), "n9", "c1", agentStep("deploy", "erase_devices_metadata", nil))
	if !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("RunStep on a node without media: %v, want ErrNotAllowed", err)
	}
	_, _, err = e.srv.Agent().Command(t.Context(), "n9", "c1")
	if !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("Command on a node without media: %v, want ErrNotAllowed", err)
	}

	// Ejecting the media ends the wait.
	e.allow(t, "n1", "e1")
	done := runStep(t.Context(), e.srv, "n1", "c1", agentStep("deploy", "erase_devices_metadata", nil))
	waitQueued(t, e.srv, "n1", "c1")
	e.srv.Revoke("n1")
	if r := <-done; !errors.Is(r.err, ErrNotAllowed) {
		t.Fatalf("RunStep after Revoke: %v, want ErrNotAllowed", r.err)
	}

	// The context bounds the wait.
	e.allow(t, "n2", "e1")
	ctx, cancel := context.WithCancel(t.Context())
	done = runStep(ctx, e.srv, "n2", "c1", agentStep("deploy", "erase_devices_metadata", nil))
	waitQueued(t, e.srv, "n2", "c1")
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("RunStep after cancel: %v, want context.Canceled", r.err)
	}
	e.srv.mu.Lock()
	queued := len(e.srv.nodes["n2"].queue)
	e.srv.mu.Unlock()
	if queued != 0 {
		t.Fatalf("%d commands left queued after RunStep returned", queued)
	}
}

// A daemon restarts while the agent runs a command: the new daemon learns
// of it from the agent's first poll, never hands it out again, and
// Command reports it once it finishes.
func TestDaemonRestart(t *testing.T) {
	step := agentStep("deploy", "erase_devices_metadata", nil)
	old := newEnv(t, "")
	a := old.allow(t, "n1", "e1")
	ctx, cancel := context.WithCancel(t.Context())
	oldRun := runStep(ctx, old.srv, "n1", "c1", step)
	if cmd := a.take(t); cmd.ID != "c1" {
		t.Fatalf("command %q, want c1", cmd.ID)
	}
	a.note(agentapi.Result{ID: "c1", State: agentapi.StateRunning})
	if code, _ := a.poll(t, 0); code != http.StatusNoContent {
		t.Fatalf("poll: status %d, want 204", code)
	}
	cancel() // the old daemon is gone
	<-oldRun

	// Same key, same CA directory: the agent's token and trust still hold.
	e := newEnv(t, old.caDir)
	e.allow(t, "n1", "e1")
	a = a.to(e)
	asked := command(t.Context(), e.srv, "n1", "c1")
	// The executor might even run the step again: it must not reach the
	// agent, which reports it running.
	rerun := runStep(t.Context(), e.srv, "n1", "c1", step)
	waitQueued(t, e.srv, "n1", "c1")
	if code, cmd := a.poll(t, 0); code != http.StatusNoContent {
		t.Fatalf("first poll of the new daemon: status %d, command %+v; want 204", code, cmd)
	}
	a.note(agentapi.Result{ID: "c1", State: agentapi.StateSucceeded})
	if code, cmd := a.poll(t, 0); code != http.StatusNoContent {
		t.Fatalf("poll: status %d, command %+v; want 204", code, cmd)
	}
	got := <-asked
	if got.err != nil || !got.ran {
		t.Fatalf("Command = ran %v, err %v; want ran", got.ran, got.err)
	}
	if r := <-rerun; r.err != nil {
		t.Fatalf("RunStep: %v", r.err)
	}
}

func TestAgentRestart(t *testing.T) {
	t.Run("finished command forgotten", func(t *testing.T) {
		e := newEnv(t, "")
		a := e.allow(t, "n1", "e1")
		a.note(agentapi.Result{ID: "c1", State: agentapi.StateSucceeded})
		a.poll(t, 0)
		if got := <-command(t.Context(), e.srv, "n1", "c1"); !got.ran || got.err != nil {
			t.Fatalf("Command before the restart = ran %v, err %v; want ran", got.ran, got.err)
		}
		a.bootID, a.results = "boot-2", nil
		a.poll(t, 0)
		if got := <-command(t.Context(), e.srv, "n1", "c1"); got.ran || got.err != nil {
			t.Fatalf("Command after the restart = ran %v, err %v; want not ran", got.ran, got.err)
		}
	})
	t.Run("new media", func(t *testing.T) {
		e := newEnv(t, "")
		a := e.allow(t, "n1", "e1")
		a.note(agentapi.Result{ID: "c1", State: agentapi.StateSucceeded})
		a.poll(t, 0)
		b := e.allow(t, "n1", "e2")
		asked := command(t.Context(), e.srv, "n1", "c1")
		// The agent of the old media is refused; the new one's first
		// poll answers.
		if code, _ := a.poll(t, 0); code != http.StatusUnauthorized {
			t.Fatalf("old agent's poll: status %d, want 401", code)
		}
		b.bootID = "boot-2"
		b.poll(t, 0)
		if got := <-asked; got.ran || got.err != nil {
			t.Fatalf("Command = ran %v, err %v; want not ran", got.ran, got.err)
		}
	})
	t.Run("while Command waits", func(t *testing.T) {
		e := newEnv(t, "")
		a := e.allow(t, "n1", "e1")
		a.note(agentapi.Result{ID: "c1", State: agentapi.StateRunning})
		a.poll(t, 0)
		asked := command(t.Context(), e.srv, "n1", "c1")
		a.bootID, a.results = "boot-2", nil
		a.poll(t, 0)
		if got := <-asked; got.ran || got.err != nil {
			t.Fatalf("Command = ran %v, err %v; want not ran", got.ran, got.err)
		}
	})
	t.Run("while RunStep waits", func(t *testing.T) {
		e := newEnv(t, "")
		a := e.allow(t, "n1", "e1")
		done := runStep(t.Context(), e.srv, "n1", "c1", agentStep("deploy", "erase_devices_metadata", nil))
		a.take(t)
		a.bootID = "boot-2"
		// The new boot does not get the command its predecessor took.
		if code, cmd := a.poll(t, 0); code != http.StatusNoContent {
			t.Fatalf("poll of the new boot: status %d, command %+v; want 204", code, cmd)
		}
		if r := <-done; !errors.Is(r.err, ErrAgentRestarted) {
			t.Fatalf("RunStep: %v, want ErrAgentRestarted", r.err)
		}
		// The executor's retry sends it to the new boot.
		done = runStep(t.Context(), e.srv, "n1", "c1", agentStep("deploy", "erase_devices_metadata", nil))
		if cmd := a.take(t); cmd.ID != "c1" {
			t.Fatalf("command %q, want c1", cmd.ID)
		}
		a.report(t, agentapi.Result{ID: "c1", State: agentapi.StateSucceeded})
		if r := <-done; r.err != nil {
			t.Fatal(r.err)
		}
	})
}

// A late "running" must not undo a reported end.
func TestResultOrder(t *testing.T) {
	e := newEnv(t, "")
	a := e.allow(t, "n1", "e1")
	a.report(t, agentapi.Result{ID: "c1", State: agentapi.StateSucceeded})
	a.poll(t, 0)
	a.report(t, agentapi.Result{ID: "c1", State: agentapi.StateRunning})
	got := <-command(t.Context(), e.srv, "n1", "c1")
	if !got.ran || got.err != nil {
		t.Fatalf("Command = ran %v, err %v; want ran", got.ran, got.err)
	}
}

func TestFailedCommandStalls(t *testing.T) {
	e := newEnv(t, "")
	a := e.allow(t, "n1", "e1")
	a.note(agentapi.Result{ID: "c1", State: agentapi.StateFailed, Error: strings.Repeat("x", 5000)})
	a.poll(t, 0)
	got := <-command(t.Context(), e.srv, "n1", "c1")
	if !got.ran || apply.Classify(got.err) != apply.Stalled {
		t.Fatalf("Command = ran %v, err %v; want ran and stalled", got.ran, got.err)
	}
	if len(got.err.Error()) > 2*maxAgentError {
		t.Fatalf("error of %d bytes; the agent's message is not bounded", len(got.err.Error()))
	}
}

func TestLongPollWakes(t *testing.T) {
	e := newEnv(t, "")
	a := e.allow(t, "n1", "e1")
	polled := make(chan *agentapi.Command, 1)
	go func() {
		_, cmd, err := a.pollErr(30 * time.Second)
		if err != nil {
			t.Error(err)
		}
		polled <- cmd
	}()
	// Queue only once the poll is held open: every poll takes in its
	// results and marks the node heard before it waits.
	for {
		e.srv.mu.Lock()
		n, ok := e.srv.nodes["n1"]
		heard := ok && n.heard
		var changed chan struct{}
		if ok {
			changed = n.changed
		}
		e.srv.mu.Unlock()
		if heard {
			break
		}
		<-changed
	}
	done := runStep(t.Context(), e.srv, "n1", "c1", agentStep("deploy", "erase_devices_metadata", nil))
	if cmd := <-polled; cmd == nil || cmd.ID != "c1" {
		t.Fatalf("held poll got %+v, want c1", cmd)
	}
	a.report(t, agentapi.Result{ID: "c1", State: agentapi.StateSucceeded})
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
}
