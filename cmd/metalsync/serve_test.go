package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/test/inventorygen"
)

// TestServeLocal runs `serve --local` on a directory of fake:// nodes
// observed powered off: the daemon powers them on and writes their status
// into the directory's status/, mirroring nodes/, moving a status file
// left in the flat layout.
func TestServeLocal(t *testing.T) {
	const nodes = 5
	dir := t.TempDir()
	files := inventorygen.Files(inventorygen.Options{Nodes: nodes, Driver: "fake", Status: true, Drift: 1})
	n0 := inventorygen.NodeName(0, 40)
	files["status/"+n0+".yaml"] = files["status/rack0000/"+n0+".yaml"]
	delete(files, "status/rack0000/"+n0+".yaml")
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	passes := make(chan struct{}, 1)
	a := serveArgs{local: dir, listen: "127.0.0.1:0", statusInterval: time.Second, pageRefresh: 42 * time.Second, onPass: func(apply.Report, reconcile.Observed) {
		select {
		case passes <- struct{}{}:
		default:
		}
	}}
	creds := map[string]string{"BMC_USERNAME": "admin", "BMC_PASSWORD": "pw-Secret-123"}
	env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, Getenv: func(k string) string { return creds[k] }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started := make(chan served, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- serve(ctx, a, env, slog.New(slog.DiscardHandler), func(s served) { started <- s })
	}()
	hung := time.NewTimer(60 * time.Second) // bounds a hung test; asserts nothing about speed
	defer hung.Stop()
	var s served
	select {
	case s = <-started:
	case err := <-errc:
		t.Fatalf("serve: %v", err)
	case <-hung.C:
		t.Fatal("timed out waiting for the listener")
	}
	if s.writer != nil {
		t.Error("serve --local has a Git status writer")
	}

	// Only passes change the observed state: check after each.
	poweredOn := func() bool {
		obs := s.daemon.Observed()
		for i := range nodes {
			if st := obs[inventorygen.NodeName(i, 40)]; st.Power != "on" || st.Operation != nil {
				return false
			}
		}
		return true
	}
	for !poweredOn() {
		select {
		case <-passes:
		case err := <-errc:
			t.Fatalf("serve stopped: %v", err)
		case <-hung.C:
			t.Fatalf("timed out waiting for the nodes to be powered on; observed %v", s.daemon.Observed())
		}
	}
	// The listener serves the fleet page and the API status --server reads.
	base := "http://" + s.addr.String()
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Count(string(page), `class="tile`) != nodes || !strings.Contains(string(page), `<meta http-equiv="refresh" content="42">`) {
		t.Errorf("fleet page: %s, %d tiles", resp.Status, strings.Count(string(page), `class="tile`))
	}
	var out strings.Builder
	if code := runStatus(ctx, []string{"--server", base}, &Env{Stdio: Stdio{Out: &out, Err: io.Discard}}); code != exitOK || strings.Count(out.String(), " on/on ") != nodes {
		t.Errorf("status --server: exit %d\n%s", code, out.String())
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("serve: %v", err)
	}

	for i := range nodes {
		name := inventorygen.NodeName(i, 40)
		b, err := os.ReadFile(filepath.Join(dir, "status", "rack0000", name+".yaml"))
		if err != nil {
			t.Errorf("status of %s: %v", name, err)
			continue
		}
		if !strings.Contains(string(b), "power: \"on\"") {
			t.Errorf("status of %s does not record power on:\n%s", name, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "status", n0+".yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("flat-layout status of %s still there: %v", n0, err)
	}
}
