package qemumachine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Event is one QMP event, as QEMU sent it.
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
	Seq  int             `json:"-"` // 1-based order of arrival
}

// qmpError is an error QEMU answered a command with.
type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string { return e.Class + ": " + e.Desc }

// qmpReply is one line from QEMU: a greeting, a command's answer or an
// event.
type qmpReply struct {
	ID     *uint64         `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *qmpError       `json:"error"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	QMP    json.RawMessage `json:"QMP"`
}

// qmp is a small QMP client: id-tagged commands, any number in flight,
// and an event log that waiters can follow. Every line both ways is
// appended to the transcript.
type qmp struct {
	conn  net.Conn
	start time.Time

	logMu sync.Mutex
	log   io.Writer // guarded by logMu

	mu      sync.Mutex
	nextID  uint64                   // guarded by mu
	pending map[uint64]chan qmpReply // guarded by mu
	events  []Event                  // guarded by mu
	changed chan struct{}            // guarded by mu; closed and replaced on every event
	readErr error                    // guarded by mu; set when the reader stops
	done    chan struct{}            // closed when the reader stops
}

// newQMP reads the greeting on conn and negotiates capabilities.
func newQMP(ctx context.Context, conn net.Conn, transcript io.Writer) (*qmp, error) {
	q := &qmp{
		conn:    conn,
		start:   time.Now(),
		log:     transcript,
		pending: map[uint64]chan qmpReply{},
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	rd := bufio.NewReader(conn)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	line, err := rd.ReadBytes('\n')
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	q.logLine("<-", line)
	var g qmpReply
	if err := json.Unmarshal(line, &g); err != nil || g.QMP == nil {
		return nil, fmt.Errorf("qmp greeting %q: not a QMP greeting", line)
	}
	go q.read(rd)
	if _, err := q.run(ctx, "qmp_capabilities", nil); err != nil {
		q.conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmp) logLine(dir string, line []byte) {
	q.logMu.Lock()
	defer q.logMu.Unlock()
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	fmt.Fprintf(q.log, "%9.3f %s %s\n", time.Since(q.start).Seconds(), dir, line)
}

// read dispatches answers to their commands and records events until the
// connection ends.
func (q *qmp) read(rd *bufio.Reader) {
	var err error
	for {
		var line []byte
		line, err = rd.ReadBytes('\n')
		if len(line) > 0 {
			q.logLine("<-", line)
			q.dispatch(line)
		}
		if err != nil {
			break
		}
	}
	q.mu.Lock()
	q.readErr = fmt.Errorf("qmp connection: %w", err)
	for id, ch := range q.pending {
		close(ch)
		delete(q.pending, id)
	}
	q.mu.Unlock()
	close(q.done)
}

func (q *qmp) dispatch(line []byte) {
	var r qmpReply
	if json.Unmarshal(line, &r) != nil {
		return // transcript has it; nothing to route
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case r.Event != "":
		q.events = append(q.events, Event{Name: r.Event, Data: r.Data, Seq: len(q.events) + 1})
		close(q.changed)
		q.changed = make(chan struct{})
	case r.ID != nil:
		if ch, ok := q.pending[*r.ID]; ok {
			ch <- r // buffered
			delete(q.pending, *r.ID)
		}
	}
}

// run sends one command and waits for its answer.
func (q *qmp) run(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	ch := make(chan qmpReply, 1)
	q.mu.Lock()
	if q.readErr != nil {
		err := q.readErr
		q.mu.Unlock()
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	q.nextID++
	id := q.nextID
	q.pending[id] = ch
	q.mu.Unlock()

	msg := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        uint64 `json:"id"`
	}{cmd, args, id}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	b = append(b, '\n')
	q.logLine("->", b)
	if _, err := q.conn.Write(b); err != nil {
		q.forget(id)
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("qmp %s: connection closed before the answer", cmd)
		}
		if r.Error != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, r.Error)
		}
		return r.Return, nil
	case <-ctx.Done():
		q.forget(id)
		return nil, fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
}

func (q *qmp) forget(id uint64) {
	q.mu.Lock()
	delete(q.pending, id)
	q.mu.Unlock()
}

// eventCount is the number of events received so far; pass it to
// waitEvent to wait for an event that arrives after this point.
func (q *qmp) eventCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
}

// waitEvent waits for the first event named name after the first `after`
// events.
func (q *qmp) waitEvent(ctx context.Context, name string, after int) (Event, error) {
	for {
		q.mu.Lock()
		for _, e := range q.events[min(after, len(q.events)):] {
			if e.Name == name {
				q.mu.Unlock()
				return e, nil
			}
		}
		changed, readErr := q.changed, q.readErr
		q.mu.Unlock()
		if readErr != nil {
			return Event{}, fmt.Errorf("qmp event %s: %w", name, readErr)
		}
		select {
		case <-changed:
		case <-q.done:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("qmp event %s: %w", name, ctx.Err())
		}
	}
}

// allEvents returns the events received so far.
func (q *qmp) allEvents() []Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Event(nil), q.events...)
}

func (q *qmp) close() error {
	err := q.conn.Close()
	<-q.done
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
