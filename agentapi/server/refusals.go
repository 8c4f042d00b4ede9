package server

import (
	"container/list"
	"net"
	"sync"
	"time"
)

// Refused requests are logged at most once per refusalEvery for each
// source, and the sources remembered are at most maxRefusalSources: an
// agent (or a scanner) retrying with a bad token must not flood the log.
// The request counter stays exact; only the log is thinned.
const (
	refusalEvery      = time.Minute
	maxRefusalSources = 1024
)

// refusalKey is the source of refused requests: the remote host (its port
// changes with every connection) and the node claimed, when it is one the
// server knows. Unknown names share one key per host, so that varying the
// claimed name does not open a new log line each time.
type refusalKey struct {
	host, node string
}

type refusalEntry struct {
	key        refusalKey
	logged     time.Time // when a line was last written for the key
	suppressed int       // refusals not logged since then
}

// refusalLimiter decides which refusals are logged. It forgets the source
// refused least recently when full.
type refusalLimiter struct {
	every time.Duration
	size  int

	mu      sync.Mutex
	entries map[refusalKey]*list.Element // of *refusalEntry; guarded by mu
	recent  *list.List                   // most recently refused last; guarded by mu
}

func newRefusalLimiter(every time.Duration, size int) *refusalLimiter {
	return &refusalLimiter{every: every, size: size, entries: map[refusalKey]*list.Element{}, recent: list.New()}
}

// refuse records a refusal from remote (host:port) claiming node (known
// says whether the server knows it) at now. It reports whether to log it
// and how many refusals from the source were not logged since the last
// line.
func (l *refusalLimiter) refuse(remote, node string, known bool, now time.Time) (log bool, suppressed int) {
	k := refusalKey{host: remote}
	if h, _, err := net.SplitHostPort(remote); err == nil {
		k.host = h
	}
	if known {
		k.node = node
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.entries[k]; ok {
		l.recent.MoveToBack(el)
		e := el.Value.(*refusalEntry)
		if now.Sub(e.logged) < l.every {
			e.suppressed++
			return false, 0
		}
		suppressed, e.suppressed, e.logged = e.suppressed, 0, now
		return true, suppressed
	}
	for l.recent.Len() >= l.size {
		oldest := l.recent.Front()
		delete(l.entries, oldest.Value.(*refusalEntry).key)
		l.recent.Remove(oldest)
	}
	l.entries[k] = l.recent.PushBack(&refusalEntry{key: k, logged: now})
	return true, 0
}
