package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusWatch: --watch prints the table, then again once a status
// file changes, and exits 0 when its context ends.
func TestStatusWatch(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"metalsync.yaml":  "apiVersion: metalsync.dev/v1alpha1\nkind: Site\nmetadata: {name: test}\nspec:\n  credentials: {sets: {bmc: {env: {username: U, password: P}}}}\n",
		"owners/ops.yaml": "apiVersion: metalsync.dev/v1alpha1\nkind: Owner\nmetadata:\n  name: ops\nspec:\n  members: [{email: ops@example.net}]\n",
		"nodes/n1.yaml":   "apiVersion: metalsync.dev/v1alpha1\nkind: Node\nmetadata:\n  name: n1\nspec:\n  bmc:\n    address: fake://n1\n    credentialsRef: {set: bmc}\n  owner: ops\n  power: \"on\"\n  provision:\n    state: manageable\n",
		"status/n1.yaml":  statusFile("off"),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}
	pr, pw := io.Pipe()
	env := &Env{Stdio: Stdio{Out: pw, Err: io.Discard}, Getenv: func(k string) string {
		if k == "METALSYNC_CACHE" {
			return "off"
		}
		return ""
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() {
		exit <- runStatus(ctx, []string{"--watch", dir}, env)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	waitFor := func(want string) {
		t.Helper()
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), "n1 ") && strings.Contains(lines.Text(), want) {
				return
			}
		}
		t.Fatalf("no row of n1 with %q: %v", want, lines.Err())
	}
	waitFor(" on/off ")
	writeFile(t, filepath.Join(dir, "status/n1.yaml"), statusFile("on"))
	waitFor(" on/on ")
	cancel()
	go io.Copy(io.Discard, pr) // drain whatever is printed until it returns
	if code := <-exit; code != exitOK {
		t.Errorf("exit %d, want %d", code, exitOK)
	}
}

func statusFile(power string) string {
	return "apiVersion: metalsync.dev/v1alpha1\nkind: NodeStatus\nmetadata:\n  name: n1\nstatus:\n  power: \"" + power + "\"\n  provisionState: manageable\n"
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
