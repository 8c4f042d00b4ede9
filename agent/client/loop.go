package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"metalsync.dev/metalsync/agentapi"
)

// queueLen bounds commands accepted but not started; the daemon hands out
// one at a time, so this only absorbs a confused daemon.
const queueLen = 16

// Run polls the daemon and runs the commands it hands out, one at a time
// in arrival order, until ctx ends or the daemon refuses the token
// (ErrUnauthorized). An unreachable daemon is retried with backoff: it may
// be restarting. A command id is run at most once per boot; when handed
// out again, its known result travels in the next poll instead.
func (c *Client) Run(ctx context.Context, r Runner) error {
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel(nil)
		wg.Wait()
	}()
	queue := make(chan agentapi.Command, queueLen)
	wg.Go(func() { c.work(ctx, cancel, r, queue, &wg) })
	if c.cfg.Logs != nil {
		wg.Go(func() { c.shipLogs(ctx, cancel) })
	}
	ready := false
	for retry := 0; ; {
		start := c.clock.Now()
		cmd, err := c.poll(ctx)
		if err != nil {
			if errors.Is(err, ErrUnauthorized) {
				return err
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			d := c.cfg.Backoff.Jittered(retry)
			retry++
			c.cfg.Log.Warn("poll failed", "err", err, "retry", retry, "wait", d)
			if c.clock.Sleep(ctx, d) != nil {
				return context.Cause(ctx)
			}
			continue
		}
		retry = 0
		if !ready {
			ready = true
			c.cfg.Log.Info("daemon answered", "node", c.cfg.Node, "bootID", c.bootID)
			if c.cfg.OnReady != nil {
				c.cfg.OnReady()
			}
		}
		if cmd != nil && c.accept(*cmd, queue) {
			continue
		}
		if rest := c.cfg.PollSpacing - c.clock.Now().Sub(start); rest > 0 {
			if c.clock.Sleep(ctx, rest) != nil {
				return context.Cause(ctx)
			}
		}
	}
}

// poll asks for the next command; nil without error means none.
func (c *Client) poll(ctx context.Context) (*agentapi.Command, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Wait+30*time.Second)
	defer cancel()
	resp, err := c.post(ctx, agentapi.PathNext, agentapi.Poll{
		BootID:  c.bootID,
		Version: c.cfg.Version,
		Results: c.snapshot(),
		Wait:    agentapi.Duration(c.cfg.Wait),
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	var cmd agentapi.Command
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&cmd); err != nil {
		return nil, fmt.Errorf("POST %s: command: %w", agentapi.PathNext, err)
	}
	if cmd.ID == "" {
		return nil, fmt.Errorf("POST %s: command without an id", agentapi.PathNext)
	}
	return &cmd, nil
}

// snapshot is every known result, in arrival order.
func (c *Client) snapshot() []agentapi.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]agentapi.Result, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, c.results[id])
	}
	return out
}

// accept queues a command not seen before and marks it running; it
// reports whether it did.
func (c *Client) accept(cmd agentapi.Command, queue chan<- agentapi.Command) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if res, ok := c.results[cmd.ID]; ok {
		c.cfg.Log.Info("command handed out again; reporting its result instead", "command", cmd.ID, "state", res.State)
		return false
	}
	select {
	case queue <- cmd:
	default:
		c.cfg.Log.Warn("command queue full; leaving the command to the daemon", "command", cmd.ID)
		return false
	}
	c.results[cmd.ID] = agentapi.Result{ID: cmd.ID, State: agentapi.StateRunning}
	c.order = append(c.order, cmd.ID)
	return true
}

func (c *Client) setResult(res agentapi.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.results[res.ID] = res
}

// work runs queued commands one at a time and reports each result.
func (c *Client) work(ctx context.Context, cancel context.CancelCauseFunc, r Runner, queue <-chan agentapi.Command, wg *sync.WaitGroup) {
	for {
		select {
		case <-ctx.Done():
			return
		case cmd := <-queue:
			log := c.cfg.Log.With("command", cmd.ID, "step", cmd.Interface+"."+cmd.Step)
			log.Info("command started")
			res := runOne(ctx, r, cmd)
			log.Info("command finished", "state", res.State, "err", res.Error)
			c.setResult(res)
			wg.Go(func() { c.report(ctx, cancel, res) })
		}
	}
}

// runOne runs cmd, turning a panic or a malformed result into a failure.
func runOne(ctx context.Context, r Runner, cmd agentapi.Command) (res agentapi.Result) {
	defer func() {
		if p := recover(); p != nil {
			res = agentapi.Result{ID: cmd.ID, State: agentapi.StateFailed, Error: fmt.Sprintf("agent: step panicked: %v", p)}
		}
	}()
	res = r.Run(ctx, cmd)
	res.ID = cmd.ID
	if res.State != agentapi.StateSucceeded && res.State != agentapi.StateFailed {
		res = agentapi.Result{ID: cmd.ID, State: agentapi.StateFailed, Error: fmt.Sprintf("agent: step ended in state %q", res.State)}
	}
	return res
}

// report posts a result until the daemon takes it. A refusal other than
// the token's is left to the polls, which carry every result.
func (c *Client) report(ctx context.Context, cancel context.CancelCauseFunc, res agentapi.Result) {
	for retry := 0; ; retry++ {
		resp, err := c.post(ctx, agentapi.PathResult, res)
		if err == nil {
			resp.Body.Close()
			c.cfg.Log.Info("result accepted", "command", res.ID, "state", res.State)
			return
		}
		switch {
		case errors.Is(err, ErrUnauthorized):
			cancel(err)
			return
		case ctx.Err() != nil:
			return
		case permanent(err):
			c.cfg.Log.Error("daemon refused the result; the next poll carries it", "command", res.ID, "err", err)
			return
		}
		d := c.cfg.Backoff.Jittered(retry)
		c.cfg.Log.Warn("result not delivered", "command", res.ID, "err", err, "wait", d)
		if c.clock.Sleep(ctx, d) != nil {
			return
		}
	}
}
