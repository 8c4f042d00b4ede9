package schema

import (
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// goldenFile holds named sections of expected lines:
//
//	## case name
//	line
//	line
//
// METALSYNC_UPDATE=1 rewrites it from what the test got.
type goldenFile struct {
	path     string
	mu       sync.Mutex
	want     map[string][]string
	got      map[string][]string
	updating bool
}

func openGolden(t *testing.T, path string) *goldenFile {
	g := &goldenFile{path: path, want: map[string][]string{}, got: map[string][]string{}, updating: os.Getenv("METALSYNC_UPDATE") == "1"}
	b, err := os.ReadFile(path)
	if err != nil && !g.updating {
		t.Fatalf("%v (run with METALSYNC_UPDATE=1 to create it)", err)
	}
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "## "); ok {
			cur = name
			g.want[cur] = nil
			continue
		}
		if line != "" && cur != "" {
			g.want[cur] = append(g.want[cur], line)
		}
	}
	return g
}

func (g *goldenFile) set(name string, lines []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got[name] = lines
}

func (g *goldenFile) get(t *testing.T, name string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.updating {
		return g.got[name]
	}
	w, ok := g.want[name]
	if !ok {
		t.Fatalf("%s has no section %q (run with METALSYNC_UPDATE=1)", g.path, name)
	}
	return w
}

func (g *goldenFile) write(t *testing.T) {
	if !g.updating {
		return
	}
	var b strings.Builder
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range g.got {
			if !yield(k) {
				return
			}
		}
	}) {
		b.WriteString("## " + name + "\n")
		for _, l := range g.got[name] {
			b.WriteString(l + "\n")
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(g.path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
