package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/fleet"
	"metalsync.dev/metalsync/fleetpage"
	"metalsync.dev/metalsync/fleetpage/fleetpagetest"
	inventoryexample "metalsync.dev/metalsync/inventory-example"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/schema"
)

func exampleDaemon(t *testing.T) (*fleetpagetest.Fleet, string) {
	t.Helper()
	inv, diags := (&schema.Loader{}).Load(inventoryexample.FS)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	obs := reconcile.Observed{}
	for _, n := range inv.Nodes {
		obs[n.Name()] = schema.NodeStatusBody{Power: "off", ProvisionState: "manageable"}
	}
	f := fleetpagetest.New(daemon.Snapshot{Revision: strings.Repeat("ab", 20), Inventory: inv, Observed: obs, Generation: 1})
	h, err := fleetpage.New(fleetpage.Config{Fleet: f})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestStatusServer(t *testing.T) {
	f, url := exampleDaemon(t)
	var out, errb bytes.Buffer
	env := &Env{Stdio: Stdio{Out: &out, Err: &errb}}
	if code := runStatus(t.Context(), []string{"--server", url, "-l", "rack=rack2"}, env); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "NODE ") || !strings.HasPrefix(lines[1], "r2-n01 ") || !strings.Contains(lines[1], " manageable ") {
		t.Errorf("table:\n%s", out.String())
	}

	// -o json is the report of the daemon, with its revision.
	out.Reset()
	if code := runStatus(t.Context(), []string{"-o", "json", "--server", url}, env); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep fleet.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Nodes) != 14 || rep.Revision != strings.Repeat("ab", 20) {
		t.Errorf("json: %v, %d nodes, revision %q", err, len(rep.Nodes), rep.Revision)
	}

	// A refused revision is said on stderr; the table still prints.
	f.Update(func(s *daemon.Snapshot) {
		s.Invalid = strings.Repeat("cd", 20)
		s.InvalidDiagnostics = schema.Diagnostics{{Severity: schema.SevError, File: "nodes/x.yaml", Line: 3, Message: "broken"}}
	})
	out.Reset()
	errb.Reset()
	if code := runStatus(t.Context(), []string{"--server", url}, env); code != exitOK || !strings.Contains(errb.String(), "revision cdcdcdcdcdcd is refused; the daemon still reconciles abababababab") || !strings.Contains(errb.String(), "nodes/x.yaml:3") {
		t.Errorf("exit %d, stderr:\n%s", code, errb.String())
	}
}

func TestStatusServerErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--server", "ftp://x"}, exitUsage, `want http://HOST:PORT`},
		{[]string{"--server", "http://127.0.0.1:1", "dir"}, exitUsage, "a directory or --server, not both"},
		{[]string{"--server", "http://127.0.0.1:1"}, exitError, "daemon http://127.0.0.1:1:"},
		{[]string{"--server", "http://127.0.0.1:1", "--watch", "--interval", "0s"}, exitUsage, "--interval must be positive"},
	}
	for _, tt := range tests {
		var errb bytes.Buffer
		env := &Env{Stdio: Stdio{Out: io.Discard, Err: &errb}}
		if code := runStatus(t.Context(), tt.args, env); code != tt.code || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, errb.String(), tt.code, tt.want)
		}
	}
}

// TestStatusServerWatch: --watch --server prints the table, then again
// once the daemon's state changes, and exits 0 when interrupted.
func TestStatusServerWatch(t *testing.T) {
	f, url := exampleDaemon(t)
	pr, pw := io.Pipe()
	env := &Env{Stdio: Stdio{Out: pw, Err: io.Discard}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	exit := make(chan int, 1)
	go func() {
		exit <- runStatus(ctx, []string{"--server", url, "--watch", "--interval", "20ms", "-l", "rack=rack1"}, env)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	tables := 0
	waitFor := func(want string) {
		t.Helper()
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), "NODE ") {
				tables++
			}
			if strings.HasPrefix(lines.Text(), "r1-n04 ") && strings.Contains(lines.Text(), want) {
				return
			}
		}
		t.Fatalf("no row of r1-n04 with %q: %v", want, lines.Err())
	}
	waitFor(" on/off ")
	f.SetStatus("r1-n04", func(st *schema.NodeStatusBody) { st.Power = "on" })
	waitFor(" on/on ")
	cancel()
	go io.Copy(io.Discard, pr)
	if code := <-exit; code != exitOK {
		t.Errorf("exit %d", code)
	}
	// Unchanged answers (304) print nothing: one table per state.
	if tables != 2 {
		t.Errorf("%d tables printed for 2 states", tables)
	}
}
