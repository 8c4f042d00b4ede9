package qemumachine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeQEMU answers QMP on one end of a pipe: a greeting, then every
// command in order; "fail" gets an error, "reset" an event before its
// answer.
func fakeQEMU(t *testing.T, conn net.Conn) {
	t.Helper()
	go func() {
		defer conn.Close()
		w := bufio.NewWriter(conn)
		send := func(s string) { w.WriteString(s + "\n"); w.Flush() }
		send(`{"QMP": {"version": {}, "capabilities": []}}`)
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			var cmd struct {
				Execute string `json:"execute"`
				ID      uint64 `json:"id"`
			}
			if json.Unmarshal(sc.Bytes(), &cmd) != nil {
				return
			}
			id, _ := json.Marshal(cmd.ID)
			switch cmd.Execute {
			case "fail":
				send(`{"error": {"class": "GenericError", "desc": "no"}, "id": ` + string(id) + `}`)
			case "reset":
				send(`{"event": "RESET", "data": {"guest": false}}`)
				send(`{"return": {}, "id": ` + string(id) + `}`)
			case "hang":
			default:
				send(`{"return": {"status": "running", "running": true}, "id": ` + string(id) + `}`)
			}
		}
	}()
}

func TestQMP(t *testing.T) {
	a, b := net.Pipe()
	fakeQEMU(t, b)
	var transcript bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := newQMP(ctx, a, &transcript) // read only after close, when the reader is done
	if err != nil {
		t.Fatal(err)
	}
	raw, err := q.run(ctx, "query-status", nil)
	if err != nil || !strings.Contains(string(raw), `"running": true`) {
		t.Fatalf("query-status = %s, %v", raw, err)
	}
	var qe *qmpError
	if _, err := q.run(ctx, "fail", nil); !errors.As(err, &qe) || qe.Class != "GenericError" {
		t.Errorf("fail: err = %v, want a GenericError", err)
	}
	n := q.eventCount()
	if _, err := q.run(ctx, "reset", nil); err != nil {
		t.Fatal(err)
	}
	if e, err := q.waitEvent(ctx, "RESET", n); err != nil || e.Seq != n+1 {
		t.Errorf("waitEvent = %+v, %v", e, err)
	}
	hctx, hcancel := context.WithCancel(ctx)
	hcancel()
	if _, err := q.run(hctx, "hang", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("hang with a cancelled ctx: %v", err)
	}
	if err := q.close(); err != nil {
		t.Error(err)
	}
	if _, err := q.run(ctx, "query-status", nil); err == nil {
		t.Error("run after close succeeded")
	}
	if _, err := q.waitEvent(ctx, "SHUTDOWN", 0); err == nil {
		t.Error("waitEvent after close succeeded")
	}
	for _, want := range []string{`-> {"execute":"qmp_capabilities","id":1}`, `<- {"event": "RESET"`} {
		if !strings.Contains(transcript.String(), want) {
			t.Errorf("transcript lacks %q:\n%s", want, transcript.String())
		}
	}
}

func TestQMPRejectsNonQMP(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		b.Write([]byte("hello\n"))
		b.Close()
	}()
	if _, err := newQMP(context.Background(), a, &bytes.Buffer{}); err == nil {
		t.Error("accepted a greeting that is not QMP")
	}
}

// FuzzQMPDispatch feeds QEMU's side of the protocol: no line may panic
// the reader or route an answer to the wrong command.
func FuzzQMPDispatch(f *testing.F) {
	for _, s := range []string{
		`{"return": {}, "id": 1}`,
		`{"error": {"class": "GenericError", "desc": "x"}, "id": 1}`,
		`{"event": "SHUTDOWN", "data": {"guest": true}}`,
		`{"id": "one"}`, `[]`, `null`, `{"event": ""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		q := &qmp{pending: map[uint64]chan qmpReply{}, changed: make(chan struct{})}
		ch := make(chan qmpReply, 1)
		q.pending[7] = ch
		q.dispatch(line)
		select {
		case r := <-ch:
			if r.ID == nil || *r.ID != 7 {
				t.Errorf("answer for id 7 carries id %v", r.ID)
			}
		default:
		}
	})
}

// FuzzConsole feeds guest serial output in two chunks: the lines must be
// the same as in one.
func FuzzConsole(f *testing.F) {
	f.Add([]byte("a\r\nb\nc"), 2)
	f.Add([]byte("\n\n\r\n"), 1)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		whole, split := newConsole(&bytes.Buffer{}), newConsole(&bytes.Buffer{})
		whole.add(b)
		cut = max(0, min(cut, len(b)))
		split.add(b[:cut])
		split.add(b[cut:])
		if w, s := strings.Join(whole.Lines(), "|"), strings.Join(split.Lines(), "|"); w != s {
			t.Errorf("lines differ: %q vs %q", w, s)
		}
	})
}

func TestConsoleWait(t *testing.T) {
	c := newConsole(&bytes.Buffer{})
	r, w := net.Pipe()
	go c.copyFrom(r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		w.Write([]byte("SeaBIOS\r\nMARK one\r\npartial MARK"))
		w.Write([]byte(" two\r\n"))
		w.Close()
	}()
	i, err := c.wait(ctx, "MARK", 0)
	if err != nil || i != 1 {
		t.Fatalf("wait = %d, %v; want 1", i, err)
	}
	if i, err = c.wait(ctx, "MARK", i+1); err != nil || i != 2 {
		t.Fatalf("second wait = %d, %v; want 2", i, err)
	}
	if _, err := c.wait(ctx, "never", 0); err == nil {
		t.Error("wait for a line that never comes succeeded after the console ended")
	}
}
