package agentimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolveInRoot: symlinks resolve inside the extracted root, absolute
// targets included (Debian's /lib64/ld-linux-x86-64.so.2 is one).
func TestResolveInRoot(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte("x"), 0o644)
	}
	ln := func(target, p string) {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	ln("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2")
	ln("libfoo.so.1.2", "lib/x86_64-linux-gnu/libfoo.so.1")
	mk("lib/x86_64-linux-gnu/libfoo.so.1.2")
	ln("loop", "lib/loop")
	ln("/nowhere", "lib/dangling")
	tests := []struct {
		path, want, wantErr string
	}{
		{path: "/lib64/ld-linux-x86-64.so.2", want: "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		{path: "/lib/x86_64-linux-gnu/libfoo.so.1", want: "lib/x86_64-linux-gnu/libfoo.so.1.2"},
		{path: "/lib/loop", wantErr: "too many symlinks"},
		{path: "/lib/dangling", wantErr: "no such file"},
		{path: "/lib", wantErr: "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := resolveInRoot(root, tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != filepath.Join(root, tt.want) {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}
