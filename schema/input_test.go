package schema

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// TestIrregularFiles: links, FIFOs and devices are refused from their
// directory entry, positioned on the file, and nothing they point to is
// loaded.
func TestIrregularFiles(t *testing.T) {
	tests := []struct {
		name string
		add  fstest.MapFS
		want []string
	}{
		{"node linked to /etc/passwd", fstest.MapFS{"nodes/rack1/evil.yaml": {Data: []byte("/etc/passwd"), Mode: fs.ModeSymlink}},
			[]string{"nodes/rack1/evil.yaml: is a symbolic link"}},
		{"link inside the repository", fstest.MapFS{"nodes/rack1/r1-n99.yaml": {Data: []byte("r1-n01.yaml"), Mode: fs.ModeSymlink}},
			[]string{"nodes/rack1/r1-n99.yaml: is a symbolic link"}},
		{"link to a directory of nodes, whatever its name", fstest.MapFS{"nodes/rack9": {Data: []byte("../../elsewhere"), Mode: fs.ModeSymlink}},
			[]string{"nodes/rack9: is a symbolic link"}},
		{"fifo", fstest.MapFS{"nodes/rack1/fifo.yaml": {Mode: fs.ModeNamedPipe}},
			[]string{"nodes/rack1/fifo.yaml: is a named pipe (FIFO)"}},
		{"device", fstest.MapFS{"owners/zero.yaml": {Mode: fs.ModeDevice | fs.ModeCharDevice}},
			[]string{"owners/zero.yaml: is a device"}},
		{"fifo not named like YAML is no inventory file", fstest.MapFS{"nodes/rack1/README": {Mode: fs.ModeNamedPipe}}, nil},
		{"site file linked", fstest.MapFS{SiteFile: {Data: []byte("/etc/shadow"), Mode: fs.ModeSymlink}},
			[]string{"metalsync.yaml: is a symbolic link"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := example(t)
			for k, v := range tt.add {
				fsys[k] = v
			}
			_, diags := Load(fsys)
			var got []string
			for _, d := range diags {
				got = append(got, strings.SplitN(d.String(), "\n", 2)[0])
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestIrregularFilesOnDisk runs the same checks through os.DirFS, which
// follows links out of the directory and blocks opening a FIFO: a FIFO
// that were opened would hang the test.
func TestIrregularFilesOnDisk(t *testing.T) {
	outside := t.TempDir()
	mustWrite(t, filepath.Join(outside, "nodes", "x", "stolen.yaml"), mustRead("../inventory-example/nodes/rack1/r1-n01.yaml"))
	tests := []struct {
		name  string
		setup func(t *testing.T, repo string)
		want  []string
	}{
		{"node linked to /etc/passwd", func(t *testing.T, repo string) {
			mustSymlink(t, "/etc/passwd", filepath.Join(repo, "nodes", "rack1", "passwd.yaml"))
		}, []string{"nodes/rack1/passwd.yaml: is a symbolic link"}},
		{"nodes directory linked outside", func(t *testing.T, repo string) {
			os.RemoveAll(filepath.Join(repo, "nodes"))
			mustSymlink(t, filepath.Join(outside, "nodes"), filepath.Join(repo, "nodes"))
		}, []string{"nodes: is a symbolic link"}},
		{"rack directory linked outside", func(t *testing.T, repo string) {
			mustSymlink(t, filepath.Join(outside, "nodes", "x"), filepath.Join(repo, "nodes", "x"))
		}, []string{"nodes/x: is a symbolic link"}},
		{"fifo", func(t *testing.T, repo string) {
			if err := syscall.Mkfifo(filepath.Join(repo, "nodes", "rack1", "fifo.yaml"), 0o644); err != nil {
				t.Skip("no FIFOs here:", err)
			}
		}, []string{"nodes/rack1/fifo.yaml: is a named pipe (FIFO)"}},
		{"fifo as the site file", func(t *testing.T, repo string) {
			os.Remove(filepath.Join(repo, SiteFile))
			if err := syscall.Mkfifo(filepath.Join(repo, SiteFile), 0o644); err != nil {
				t.Skip("no FIFOs here:", err)
			}
		}, []string{"metalsync.yaml: is a named pipe (FIFO)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := t.TempDir()
			for p, f := range example(t) {
				mustWrite(t, filepath.Join(repo, p), string(f.Data))
			}
			tt.setup(t, repo)
			inv, diags := LoadDir(repo)
			var got []string
			for _, d := range diags {
				got = append(got, strings.SplitN(d.String(), "\n", 2)[0])
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			for _, n := range inv.Nodes {
				if strings.Contains(n.Source.File, "stolen") || strings.HasPrefix(n.Source.File, "nodes/x/") {
					t.Errorf("loaded %s from outside the repository", n.Source.File)
				}
			}
		})
	}
}

// TestLoadDirNeedsSite: a directory without metalsync.yaml is not an
// inventory of 0 nodes.
func TestLoadDirNeedsSite(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "nodes", "README"), "not an inventory")
	_, diags := LoadDir(dir)
	want := filepath.Join(dir, SiteFile) + ": not an inventory repository: metalsync.yaml is missing"
	if len(diags) != 1 || !strings.HasPrefix(diags[0].String(), want) || !diags.HasErrors() {
		t.Errorf("got %s, want %s", diags, want)
	}
}

func mustWrite(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
