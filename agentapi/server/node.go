package server

import (
	"slices"

	"metalsync.dev/metalsync/agentapi"
)

// node is what the server knows of one node's agent. Every field is
// guarded by Server.mu.
type node struct {
	// epoch is the media publication whose token is valid; "" when none.
	epoch string
	// heard: the agent has polled this server since it started (and
	// since the media was published), so results holds everything the
	// agent knows.
	heard bool
	// bootID is the agent boot results belong to.
	bootID string
	// results are the agent's reports of its current boot, by id.
	results map[string]agentapi.Result
	// queue holds the commands RunStep waits for, in order; a command
	// stays until its RunStep returns, and is handed out while the agent
	// reports nothing of it.
	queue []*pending
	// images are the sha256s write_image commands named for this node:
	// the only images it may download.
	images map[string]bool
	// changed is closed and replaced whenever anything above changes.
	changed chan struct{}
}

// pending is a queued command.
type pending struct {
	cmd agentapi.Command
	// handedTo is the agent boot the command last went to; "" before.
	handedTo string
	// lost: the agent restarted after taking the command and knows
	// nothing of it, so whether it ran is unknown.
	lost bool
	refs int // RunStep calls waiting on it
}

// broadcastLocked wakes everyone waiting for a change of n.
func (n *node) broadcastLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// newMediaLocked forgets the agent of earlier media: the node boots a
// new agent from the new media, and until it polls nothing is known.
// Images and commands handed out under the old token go with it.
func (n *node) newMediaLocked() {
	n.heard, n.bootID = false, ""
	n.results = map[string]agentapi.Result{}
	n.images = map[string]bool{}
	for _, q := range n.queue {
		if q.handedTo != "" {
			q.lost = true
		}
	}
}

// observeLocked takes in a poll: a new boot id means the agent restarted
// and forgot what it ran, so its earlier results go and the commands its
// earlier boot took are lost.
func (n *node) observeLocked(p agentapi.Poll) (first, restarted bool) {
	first = !n.heard
	if p.BootID != n.bootID {
		restarted = n.bootID != ""
		n.bootID = p.BootID
		n.results = map[string]agentapi.Result{}
		known := map[string]bool{}
		for _, r := range p.Results {
			known[r.ID] = true
		}
		for _, q := range n.queue {
			if q.handedTo != "" && !known[q.cmd.ID] {
				q.lost = true
			}
		}
	}
	for _, r := range p.Results {
		n.recordLocked(r)
	}
	n.heard = true
	n.broadcastLocked()
	return first, restarted
}

// recordLocked stores a result; a final state is never replaced by a
// running one that arrives late.
func (n *node) recordLocked(r agentapi.Result) {
	if old, ok := n.results[r.ID]; ok && final(old.State) && !final(r.State) {
		return
	}
	n.results[r.ID] = r
}

// nextLocked returns the first queued command the agent has not reported,
// marking it handed to the current boot.
func (n *node) nextLocked() (agentapi.Command, bool) {
	for _, q := range n.queue {
		if _, known := n.results[q.cmd.ID]; known || q.lost {
			continue
		}
		q.handedTo = n.bootID
		return q.cmd, true
	}
	return agentapi.Command{}, false
}

// enqueueLocked queues cmd, or joins the queued command with its id.
func (n *node) enqueueLocked(cmd agentapi.Command) *pending {
	for _, q := range n.queue {
		if q.cmd.ID == cmd.ID && !q.lost {
			q.refs++
			return q
		}
	}
	q := &pending{cmd: cmd, refs: 1}
	n.queue = append(n.queue, q)
	n.broadcastLocked()
	return q
}

// dequeueLocked drops one waiter of q, and q with its last.
func (n *node) dequeueLocked(q *pending) {
	q.refs--
	if q.refs > 0 {
		return
	}
	n.queue = slices.DeleteFunc(n.queue, func(x *pending) bool { return x == q })
}

func final(state string) bool {
	return state == agentapi.StateSucceeded || state == agentapi.StateFailed
}

func validState(state string) bool {
	return state == agentapi.StateRunning || final(state)
}
