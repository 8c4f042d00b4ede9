package localdir

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"
)

func TestRevision(t *testing.T) {
	base := fstest.MapFS{
		"metalsync.yaml":     {Data: []byte("kind: Site\n")},
		"nodes/r1/n1.yaml":   {Data: []byte("kind: Node\n")},
		"status/r1/n1.yaml":  {Data: []byte("kind: NodeStatus\n")},
		".git/config":        {Data: []byte("[core]\n")},
		"README.md":          {Data: []byte("hello\n")},
		"owners/team.yml":    {Data: []byte("kind: Owner\n")},
		".hidden/extra.yaml": {Data: []byte("kind: Node\n")},
	}
	with := func(p, data string) fstest.MapFS {
		m := fstest.MapFS{}
		for k, v := range base {
			m[k] = v
		}
		m[p] = &fstest.MapFile{Data: []byte(data)}
		return m
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		same bool
	}{
		{"status written", with("status/r1/n1.yaml", "kind: NodeStatus\nstatus: {}\n"), true},
		{"report written", with("status/inventory-errors.txt", "bad\n"), true},
		{"hidden directory", with(".hidden/extra.yaml", "kind: Owner\n"), true},
		{"not yaml", with("README.md", "changed\n"), true},
		{"node changed", with("nodes/r1/n1.yaml", "kind: Node\nspec: {}\n"), false},
		{"yml changed", with("owners/team.yml", "kind: Owner\nspec: {}\n"), false},
		{"node added", with("nodes/r1/n2.yaml", "kind: Node\n"), false},
	}
	want, err := Revision(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Revision(tt.fsys)
			if err != nil {
				t.Fatal(err)
			}
			if (got == want) != tt.same {
				t.Errorf("Revision = %s, base %s; want same = %v", got, want, tt.same)
			}
		})
	}
}

type delivery struct {
	rev  string
	fsys fs.FS
}

// write replaces p atomically (a file written elsewhere, renamed into
// place), so that Run never reads a half-written tree and every delivery
// is one the test expects.
func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), filepath.Base(p))
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// next waits for a delivery; the deadline only bounds a hung test.
func next(t *testing.T, got <-chan delivery, what string) delivery {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(60 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return delivery{}
	}
}

// TestRunDeliversSpecChanges: the first revision at once, then one per
// change of the spec files, whether a file event or the trigger notices it
// first; status written into the directory is no new revision.
func TestRunDeliversSpecChanges(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "nodes", "n1.yaml"), "kind: Node\n")
	got := make(chan delivery, 8)
	trigger := make(chan struct{}) // unbuffered: a send returns once Run took it
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Source{Dir: dir}.Run(ctx, trigger, func(_ context.Context, rev string, fsys fs.FS) {
			got <- delivery{rev, fsys}
		})
	}()

	first := next(t, got, "the first revision")
	if want, _ := Revision(os.DirFS(dir)); first.rev != want {
		t.Errorf("first revision = %s, want %s", first.rev, want)
	}
	write(t, filepath.Join(dir, "status", "n1.yaml"), "kind: NodeStatus\n")
	trigger <- struct{}{}
	write(t, filepath.Join(dir, "nodes", "n1.yaml"), "kind: Node\nspec: {}\n")
	trigger <- struct{}{}
	second := next(t, got, "the changed revision")
	want, err := Revision(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if second.rev != want || second.rev == first.rev {
		t.Errorf("second revision = %s, want %s (first %s)", second.rev, want, first.rev)
	}
	if b, err := fs.ReadFile(second.fsys, "nodes/n1.yaml"); err != nil || string(b) != "kind: Node\nspec: {}\n" {
		t.Errorf("delivered tree has nodes/n1.yaml = %q, %v", b, err)
	}

	// Without a trigger, the file watcher notices.
	write(t, filepath.Join(dir, "nodes", "n2.yaml"), "kind: Node\n")
	third := next(t, got, "the revision a file event delivers")
	if want, _ := Revision(os.DirFS(dir)); third.rev != want {
		t.Errorf("third revision = %s, want %s", third.rev, want)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	close(got)
	for d := range got {
		t.Errorf("unexpected delivery %s", d.rev)
	}
}

func TestRunMissingDirectory(t *testing.T) {
	err := Source{Dir: filepath.Join(t.TempDir(), "nope")}.Run(t.Context(), nil, func(context.Context, string, fs.FS) {})
	if err == nil {
		t.Fatal("Run on a missing directory succeeded")
	}
}
