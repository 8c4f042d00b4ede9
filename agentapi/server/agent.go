package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/imagecache"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

// HTTPAgent is the executor's deploy agent (apply.Agent): it runs steps
// as commands of the Server's agents.
type HTTPAgent struct{ s *Server }

var _ apply.NodeMediaAgent = (*HTTPAgent)(nil)

// Agent returns the executor's view of s.
func (s *Server) Agent() *HTTPAgent { return &HTTPAgent{s: s} }

// BootsFromNodeMedia is true: the agent's token is on the node's own
// boot media only, so a node with DHCP needs that media too.
func (a *HTTPAgent) BootsFromNodeMedia() bool { return true }

// maxAgentError bounds the agent's message carried into errors, which end
// up in status files.
const maxAgentError = 1024

// ErrAgentRestarted says the agent restarted while it ran a command, so
// whether the command finished is unknown.
var ErrAgentRestarted = errors.New("agent restarted while running the command")

// RunStep runs step as command id on node's agent and waits for its
// result. A command the agent already finished is not sent again: its
// result is returned. A non-destructive step comes without an id (the
// executor records none); it gets a fresh one, since running it twice
// is harmless.
func (a *HTTPAgent) RunStep(ctx context.Context, node, id string, step plan.Step) (apply.AgentResult, error) {
	if step.Agent == nil {
		return apply.AgentResult{}, apply.Stall(fmt.Errorf("node %s: step %s is not an agent step", node, step.Name()))
	}
	name := step.Agent.Interface + "." + step.Agent.Step
	if id == "" {
		var err error
		if id, err = onceID(); err != nil {
			return apply.AgentResult{}, err
		}
	}
	s := a.s
	s.mu.Lock()
	n := s.nodeLocked(node)
	allowed := n.epoch != ""
	known, ok := n.results[id]
	s.mu.Unlock()
	if !allowed {
		return apply.AgentResult{}, fmt.Errorf("node %s: agent %s: %w", node, name, ErrNotAllowed)
	}
	if ok && final(known.State) {
		return agentResult(node, name, known)
	}
	cmd, err := a.command(ctx, node, id, step.Agent)
	if err != nil {
		return apply.AgentResult{}, fmt.Errorf("node %s: agent %s: %w", node, name, err)
	}
	res, err := s.run(ctx, node, cmd)
	if err != nil {
		s.metrics.command(name, endResult(err))
		return apply.AgentResult{}, fmt.Errorf("node %s: agent %s: command %s: %w", node, name, id, err)
	}
	s.metrics.command(name, res.State)
	return agentResult(node, name, res)
}

// Command reports what node's agent knows of command id. Until the agent
// has polled this server (after a daemon restart) it waits for that
// poll; a command still running is waited for. Both waits end with ctx.
func (a *HTTPAgent) Command(ctx context.Context, node, id string) (apply.AgentResult, bool, error) {
	s := a.s
	for {
		s.mu.Lock()
		n := s.nodeLocked(node)
		allowed, heard := n.epoch != "", n.heard
		r, known := n.results[id]
		changed := n.changed
		s.mu.Unlock()
		switch {
		case !allowed:
			return apply.AgentResult{}, false, fmt.Errorf("node %s: command %s: %w", node, id, ErrNotAllowed)
		case heard && !known:
			return apply.AgentResult{}, false, nil
		case heard && final(r.State):
			res, err := agentResult(node, "command "+id, r)
			return res, true, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return apply.AgentResult{}, false, fmt.Errorf("node %s: command %s: wait for the agent: %w", node, id, ctx.Err())
		}
	}
}

// run queues cmd on node and waits for its final result.
func (s *Server) run(ctx context.Context, name string, cmd agentapi.Command) (agentapi.Result, error) {
	s.mu.Lock()
	n := s.nodeLocked(name)
	q := n.enqueueLocked(cmd)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		n.dequeueLocked(q)
		s.mu.Unlock()
	}()
	s.log.Info("agent command queued", "node", name, "command", cmd.ID, "step", cmd.Interface+"."+cmd.Step)
	for {
		s.mu.Lock()
		r, known := n.results[cmd.ID]
		lost, revoked := q.lost, n.epoch == ""
		changed := n.changed
		s.mu.Unlock()
		switch {
		case known && final(r.State):
			return r, nil
		case lost:
			return agentapi.Result{}, ErrAgentRestarted
		case revoked:
			return agentapi.Result{}, ErrNotAllowed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return agentapi.Result{}, fmt.Errorf("wait for the agent: %w", ctx.Err())
		}
	}
}

// endResult is the metrics label of a wait that ended without a result.
func endResult(err error) string {
	switch {
	case errors.Is(err, ErrAgentRestarted):
		return "lost"
	case errors.Is(err, ErrNotAllowed):
		return "revoked"
	}
	return "abandoned"
}

// agentResult turns a final result into the executor's. A failed command
// stalls the step: its id stays failed in the agent, so retrying cannot
// help, and a half-run destructive step needs a person's look.
func agentResult(node, what string, r agentapi.Result) (apply.AgentResult, error) {
	if r.State == agentapi.StateFailed {
		msg := r.Error
		if len(msg) > maxAgentError {
			msg = msg[:maxAgentError] + "..."
		}
		return apply.AgentResult{}, apply.Stall(fmt.Errorf("node %s: agent %s failed: %s", node, what, msg))
	}
	var out apply.AgentResult
	if r.Inventory != nil {
		var m map[string]any
		if err := roundTrip(r.Inventory, &m); err != nil {
			return apply.AgentResult{}, fmt.Errorf("node %s: agent %s: inventory: %w", node, what, err)
		}
		out.Inventory = m
	}
	return out, nil
}

// command translates the planner's agent step into the agent's command.
func (a *HTTPAgent) command(ctx context.Context, node, id string, step *plan.Agent) (agentapi.Command, error) {
	cmd := agentapi.Command{ID: id, Interface: step.Interface, Step: step.Step}
	var args any
	switch step.Interface + "." + step.Step {
	case "deploy.write_image":
		w, err := a.writeImage(ctx, node, step.Args)
		if err != nil {
			return cmd, err
		}
		args = w
	case "raid.apply_configuration", "raid.create_configuration":
		r, err := raidArgs(step.Args)
		if err != nil {
			return cmd, err
		}
		args = r
	case "raid.delete_configuration":
		args = agentapi.RAIDArgs{Delete: true}
	case "inspect.inspect", "deploy.erase_devices_metadata", "deploy.erase_devices":
		// The agent needs nothing: the inspection token is the daemon's.
	default:
		// A step the daemon has no translation for goes as it is; the
		// agent refuses what it does not know, and says so.
		if len(step.Args) > 0 {
			args = step.Args
		}
	}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return cmd, fmt.Errorf("args: %w", err)
		}
		cmd.Args = b
	}
	return cmd, nil
}

// writeImage has the image fetched, verified and converted by Images and
// lets node download it.
func (a *HTTPAgent) writeImage(ctx context.Context, node string, m map[string]any) (agentapi.WriteImageArgs, error) {
	var in struct {
		URL      string                  `json:"url"`
		Checksum string                  `json:"checksum"`
		Format   string                  `json:"format"`
		Hints    *schema.RootDeviceHints `json:"root_device_hints"`
	}
	if err := roundTrip(m, &in); err != nil {
		return agentapi.WriteImageArgs{}, apply.Stall(fmt.Errorf("args: %w", err))
	}
	if in.URL == "" || in.Checksum == "" {
		return agentapi.WriteImageArgs{}, apply.Stall(errors.New("args: url and checksum are required"))
	}
	s := a.s
	if s.images == nil {
		return agentapi.WriteImageArgs{}, apply.Stall(errors.New("no image cache configured"))
	}
	sha, size, err := s.images.Prepare(ctx, in.URL, in.Checksum, in.Format)
	if errors.Is(err, imagecache.ErrChecksumMismatch) || errors.Is(err, imagecache.ErrRefused) {
		// Fetching the same bytes again gives the same answer: the
		// inventory's checksum or the image needs a person.
		return agentapi.WriteImageArgs{}, apply.Stall(fmt.Errorf("prepare image: %w", err))
	}
	if err != nil {
		return agentapi.WriteImageArgs{}, fmt.Errorf("prepare image: %w", err)
	}
	s.mu.Lock()
	s.nodeLocked(node).images[sha] = true
	s.mu.Unlock()
	out := agentapi.WriteImageArgs{ImagePath: agentapi.PathImage + sha, SHA256: sha, Size: size, ConfigDrive: s.configDrive != nil}
	if h := in.Hints; h != nil {
		out.Hints = &agentapi.RootDeviceHints{Name: h.Name, Model: h.Model, Vendor: h.Vendor, Serial: h.Serial,
			WWN: h.WWN, HCTL: h.HCTL, Size: int64(h.Size), Rotational: h.Rotational}
	}
	return out, nil
}

// raidArgs normalises software RAID arguments (any form schema.RAIDArgs
// reads) to the agent's. Existing arrays are deleted first unless
// delete_existing is false, as in Ironic and the hardware RAID steps.
func raidArgs(m map[string]any) (agentapi.RAIDArgs, error) {
	var in schema.RAIDArgs
	if err := roundTrip(m, &in); err != nil {
		return agentapi.RAIDArgs{}, apply.Stall(fmt.Errorf("args: %w", err))
	}
	if len(in.LogicalDisks) == 0 {
		return agentapi.RAIDArgs{}, apply.Stall(errors.New("args: no volumes"))
	}
	out := agentapi.RAIDArgs{Delete: in.DeleteExisting == nil || *in.DeleteExisting}
	for _, d := range in.LogicalDisks {
		out.Volumes = append(out.Volumes, agentapi.RAIDVolume{Name: d.Name, RAIDLevel: string(d.RAIDLevel),
			SizeGiB: int64(d.Size), Disks: d.PhysicalDisks, Root: d.IsRootVolume})
	}
	return out, nil
}

// roundTrip converts between JSON-shaped values: the plan holds maps (as
// read back from a saved plan) or typed values (as planned in memory).
func roundTrip(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// onceID names a command the executor gave no id.
func onceID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("command id: %w", err)
	}
	return "once-" + hex.EncodeToString(b[:]), nil
}
