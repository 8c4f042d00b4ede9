package boot

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Module is one loadable module of modules.dep.
type Module struct {
	Name string   // normalised: dashes become underscores
	Path string   // relative to the modules directory
	Deps []string // names of the modules it needs
}

// Alias maps a glob pattern of device or feature names (a modalias,
// "fs-iso9660", "crypto-crc32c") to a module.
type Alias struct {
	Pattern string
	Module  string
}

// Modules is what depmod wrote for one kernel.
type Modules struct {
	Dir     string
	deps    map[string]Module
	builtin map[string]bool
	aliases []Alias
	// byPrefix indexes aliases by their text before the first ':' (the
	// bus) when it has no wildcard; the rest are under "".
	byPrefix map[string][]int
}

// ModName normalises a module name or file name: "virtio-net.ko" and
// "virtio_net" are both virtio_net.
func ModName(s string) string {
	s = filepath.Base(s)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		s = strings.TrimSuffix(s, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(s, ".ko"), "-", "_")
}

// ParseDep reads modules.dep: "path.ko: dep.ko dep2.ko" per line.
func ParseDep(r io.Reader) (map[string]Module, error) {
	mods := map[string]Module{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		path, deps, ok := strings.Cut(line, ":")
		path = strings.TrimSpace(path)
		if !ok || path == "" {
			return nil, fmt.Errorf("modules.dep line %d: no \"path:\"", n)
		}
		m := Module{Name: ModName(path), Path: path}
		for _, d := range strings.Fields(deps) {
			m.Deps = append(m.Deps, ModName(d))
		}
		mods[m.Name] = m
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	return mods, nil
}

// ParseAlias reads modules.alias: "alias PATTERN MODULE" per line.
func ParseAlias(r io.Reader) ([]Alias, error) {
	var out []Alias
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 3 || f[0] != "alias" {
			return nil, fmt.Errorf("modules.alias line %d: want \"alias PATTERN MODULE\"", n)
		}
		out = append(out, Alias{Pattern: f[1], Module: ModName(f[2])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.alias: %w", err)
	}
	return out, nil
}

// ParseBuiltin reads modules.builtin: one path per line.
func ParseBuiltin(r io.Reader) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out[ModName(l)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.builtin: %w", err)
	}
	return out, nil
}

// NewModules indexes parsed depmod output.
func NewModules(dir string, deps map[string]Module, aliases []Alias, builtin map[string]bool) *Modules {
	m := &Modules{Dir: dir, deps: deps, builtin: builtin, aliases: aliases, byPrefix: map[string][]int{}}
	for i, a := range aliases {
		m.byPrefix[aliasPrefix(a.Pattern)] = append(m.byPrefix[aliasPrefix(a.Pattern)], i)
	}
	return m
}

func aliasPrefix(s string) string {
	p, _, ok := strings.Cut(s, ":")
	if !ok || strings.ContainsAny(p, "*?[") {
		return ""
	}
	return p
}

// ReadModules reads modules.dep, modules.alias and (when present)
// modules.builtin from dir, /lib/modules/<release>.
func ReadModules(dir string) (*Modules, error) {
	read := func(name string, parse func(io.Reader) error) error {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("modules: %w", err)
		}
		defer f.Close()
		return parse(f)
	}
	var (
		deps    map[string]Module
		aliases []Alias
		builtin = map[string]bool{}
	)
	if err := read("modules.dep", func(r io.Reader) (err error) { deps, err = ParseDep(r); return err }); err != nil {
		return nil, err
	}
	if err := read("modules.alias", func(r io.Reader) (err error) { aliases, err = ParseAlias(r); return err }); err != nil {
		return nil, err
	}
	err := read("modules.builtin", func(r io.Reader) (err error) { builtin, err = ParseBuiltin(r); return err })
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return NewModules(dir, deps, aliases, builtin), nil
}

// Resolve returns the modules name stands for: itself when it is a
// module (loadable or built in), else every module whose alias pattern
// matches it (modprobe loads them all). Built-in modules are in the
// result; the loader skips them.
func (m *Modules) Resolve(name string) []string {
	if n := ModName(name); m.deps[n].Name != "" || m.builtin[n] {
		return []string{n}
	}
	var out []string
	seen := map[string]bool{}
	for _, key := range []string{aliasPrefix(name), ""} {
		for _, i := range m.byPrefix[key] {
			a := m.aliases[i]
			if !seen[a.Module] && MatchGlob(a.Pattern, name) {
				seen[a.Module] = true
				out = append(out, a.Module)
			}
		}
		if key == "" {
			break
		}
	}
	return out
}

// MatchGlob reports whether s matches the fnmatch(3) pattern p without
// flags, as kmod matches aliases: '*' any run, '?' one byte, '[...]' a
// set with ranges and '!' or '^' negation, '\' escapes. A malformed set
// matches its '[' literally.
func MatchGlob(p, s string) bool {
	// Iterative matching with one backtrack point for the last '*':
	// linear in practice, never exponential.
	var pi, si, starP, starS = 0, 0, -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				starP, starS = pi, si
				pi++
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if ok, next, valid := matchSet(p, pi, s[si]); valid {
					if ok {
						pi, si = next, si+1
						continue
					}
				} else if s[si] == '[' {
					pi++
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) && p[pi+1] == s[si] {
					pi += 2
					si++
					continue
				}
				if pi+1 == len(p) && s[si] == '\\' {
					pi++
					si++
					continue
				}
			default:
				if c == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchSet matches c against the set starting at p[i] == '['. valid is
// false when the set has no closing ']'.
func matchSet(p string, i int, c byte) (ok bool, next int, valid bool) {
	j := i + 1
	neg := false
	if j < len(p) && (p[j] == '!' || p[j] == '^') {
		neg = true
		j++
	}
	first := true
	for j < len(p) {
		if p[j] == ']' && !first {
			return ok != neg, j + 1, true
		}
		first = false
		lo := p[j]
		if lo == '\\' && j+1 < len(p) {
			j++
			lo = p[j]
		}
		hi := lo
		if j+2 < len(p) && p[j+1] == '-' && p[j+2] != ']' {
			hi = p[j+2]
			if hi == '\\' && j+3 < len(p) {
				j++
				hi = p[j+2]
			}
			j += 2
		}
		if lo <= c && c <= hi {
			ok = true
		}
		j++
	}
	return false, 0, false
}
