package schema

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
	cueyaml "cuelang.org/go/encoding/yaml"
)

// Repository layout.
const (
	SiteFile     = "metalsync.yaml"
	NodesDir     = "nodes"
	OwnersDir    = "owners"
	TemplatesDir = "templates"
)

// filesPerContext bounds how many files one cue.Context validates before it
// is replaced: a context keeps about 40 KiB of every file it evaluated, and
// the garbage collector rescans all of it. Compiling the schema again costs
// about one file's validation. Measured on cold `metalsync validate` of 10k
// generated nodes, 2 cores: 1000 files gave 249-281 MiB peak RSS, 250 gave
// 133-144 MiB and 100 gave 114-118 MiB; CPU time did not change beyond the
// noise of a shared machine.
const filesPerContext = 100

// LoadDir loads the inventory repository rooted at dir.
func LoadDir(dir string) (*Inventory, Diagnostics) {
	if d := checkDir(dir); d != nil {
		return nil, d
	}
	return Load(os.DirFS(dir))
}

// checkDir checks that dir is an inventory repository: a directory with a
// site file (of any type; Load refuses one that is not a regular file).
// Without one, a mistyped directory would be a valid inventory of 0 nodes.
func checkDir(dir string) Diagnostics {
	st, err := os.Stat(dir)
	if err != nil {
		return Diagnostics{{File: dir, Severity: SevError, Code: CodeYAML, Message: "cannot read inventory directory: " + errors.Unwrap(err).Error()}}
	}
	if !st.IsDir() {
		return Diagnostics{{File: dir, Severity: SevError, Code: CodeYAML, Message: "not a directory"}}
	}
	if _, err := os.Lstat(filepath.Join(dir, SiteFile)); errors.Is(err, fs.ErrNotExist) {
		return Diagnostics{{File: filepath.Join(dir, SiteFile), Severity: SevError, Code: CodeSite,
			Message: "not an inventory repository: " + SiteFile + " is missing",
			Hint:    "run in the repository's root, or create " + SiteFile + " (kind: Site; see inventory-example/" + SiteFile + ")"}}
	}
	return nil
}

// job is one file to load.
type job struct {
	path string
	kind string // expected kind, from the directory
}

type result struct {
	path  string
	value any    // *Node, *Owner, ... when valid
	kind  string // kind and name as far as they could be read,
	name  string // so that an invalid owner does not cascade into its nodes
	diags Diagnostics
}

// Load reads, validates and decodes every inventory file of fsys, then
// checks the cross-file rules. The inventory is returned even when there are
// errors (with the files that were valid), so that callers can show as much
// as possible; callers that act must check Diagnostics.Err first.
func Load(fsys fs.FS) (*Inventory, Diagnostics) {
	return load(fsys, nil, 0)
}

// load is Load with an optional memory of the previous load and a number
// of validating workers (0: one per core, fewer for small inventories).
// The inventory and the diagnostics do not depend on the number of
// workers: results are collected in file order and diagnostics sorted.
func load(fsys fs.FS, l *Loader, workers int) (*Inventory, Diagnostics) {
	var diags Diagnostics
	inv := &Inventory{Status: map[string]*NodeStatus{}}

	// The site file comes first: it says where status lives.
	site := &Site{APIVersion: APIVersion, Kind: KindSite, Metadata: Meta{Name: "default"}}
	siteInvalid := false
	if data, d, ok := readSite(fsys); d != nil {
		diags = append(diags, *d)
		siteInvalid = true
	} else if ok {
		c, err := compile()
		if err != nil {
			return nil, Diagnostics{{File: SiteFile, Severity: SevError, Code: CodeSchema, Message: err.Error()}}
		}
		r := loadFile(c, job{SiteFile, KindSite}, data)
		diags = append(diags, r.diags...)
		if s, ok := r.value.(*Site); ok {
			site = s
		} else {
			siteInvalid = true
		}
	}
	site.Spec = site.Spec.Defaults() // the one place the site is defaulted
	inv.Site = site
	statusDir := site.Spec.Status.Directory

	dirs := map[string]string{NodesDir: KindNode, OwnersDir: KindOwner, TemplatesDir: KindDeployTemplate}
	if statusDir != "" {
		dirs[path.Clean(statusDir)] = KindNodeStatus
	}
	var jobs []job
	for _, dir := range slices.Sorted(maps.Keys(dirs)) {
		kind := dirs[dir]
		// The directory itself, and every directory on the way to it, is
		// checked without following links: fs.WalkDir would follow them.
		at, t, err := lstat(fsys, dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			diags = append(diags, Diagnostic{File: dir, Severity: SevError, Code: CodeYAML, Message: "cannot read: " + err.Error()})
			continue
		case entryProblem(t) != "":
			diags = append(diags, entryDiag(at, t))
			continue
		case !t.IsDir():
			continue
		}
		err = fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				diags = append(diags, Diagnostic{File: p, Severity: SevError, Code: CodeYAML, Message: "cannot read: " + err.Error()})
				return nil
			}
			name := d.Name()
			if strings.HasPrefix(name, ".") && p != dir {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			// The entry's type comes from its directory (lstat, not
			// stat): a link or a FIFO is refused before it is opened. A
			// link is refused whatever its name: it may lead to a
			// directory of nodes outside the repository.
			t := d.Type()
			if t&fs.ModeSymlink != 0 || entryProblem(t) != "" && isYAML(name) {
				diags = append(diags, entryDiag(p, t))
				return nil
			}
			if !d.IsDir() && !isYAML(name) && isYAML(strings.ToLower(name)) {
				// Git and the daemon's host are case-sensitive: say so
				// rather than leave r1-n09.YAML out without a word.
				ext := path.Ext(name)
				diags = append(diags, Diagnostic{File: p, Severity: SevWarning, Code: CodeYAML,
					Message: fmt.Sprintf("not loaded: the extension %s is not .yaml or .yml", ext),
					Hint:    fmt.Sprintf("rename it to %s.yaml", strings.TrimSuffix(name, ext))})
				return nil
			}
			if d.IsDir() || !isYAML(name) || !t.IsRegular() {
				return nil
			}
			jobs = append(jobs, job{path: p, kind: kind})
			return nil
		})
		if err != nil && !errors.Is(err, fs.SkipDir) {
			diags = append(diags, Diagnostic{File: dir, Severity: SevError, Code: CodeYAML, Message: "cannot read: " + err.Error()})
		}
	}

	results := loadAll(fsys, jobs, l, workers)
	invalid := map[string][]string{} // kind -> names of files with errors
	if siteInvalid {
		invalid[KindSite] = []string{site.Metadata.Name}
	}
	for _, r := range results {
		diags = append(diags, r.diags...)
		if r.value == nil && r.name != "" {
			invalid[r.kind] = append(invalid[r.kind], r.name)
		}
		switch v := r.value.(type) {
		case *Node:
			inv.Nodes = append(inv.Nodes, v)
		case *Owner:
			inv.Owners = append(inv.Owners, v)
		case *DeployTemplate:
			inv.Templates = append(inv.Templates, v)
		case *NodeStatus:
			inv.Status[v.Metadata.Name] = v
		}
	}
	byName := func(a, b string) int { return strings.Compare(a, b) }
	slices.SortStableFunc(inv.Nodes, func(a, b *Node) int { return byName(a.Metadata.Name, b.Metadata.Name) })
	slices.SortStableFunc(inv.Owners, func(a, b *Owner) int { return byName(a.Metadata.Name, b.Metadata.Name) })
	slices.SortStableFunc(inv.Templates, func(a, b *DeployTemplate) int { return byName(a.Metadata.Name, b.Metadata.Name) })

	diags = append(diags, checkRules(fsys, inv, invalid)...)
	diags.sort()
	diags = diags.dedupe()
	return inv, diags
}

func isYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// Loader loads inventories and remembers each file's result by its path
// and content, so that loading a revision in which few files changed
// validates only those: the daemon reloads on every commit. Decoded values
// are shared between loads and must not be modified. A Loader is safe for
// concurrent use; the zero value is ready.
type Loader struct {
	mu    sync.Mutex
	prev  map[fileKey]result // results of the last Load; guarded by mu
	dirty bool               // the last Load changed prev; guarded by mu
}

type fileKey struct {
	path string
	sum  [sha256.Size]byte
}

// Load is schema.Load with the loader's memory of the previous load.
func (l *Loader) Load(fsys fs.FS) (*Inventory, Diagnostics) {
	return load(fsys, l, 0)
}

// LoadDir is schema.LoadDir with the loader's memory.
func (l *Loader) LoadDir(dir string) (*Inventory, Diagnostics) {
	if d := checkDir(dir); d != nil {
		return nil, d
	}
	return l.Load(os.DirFS(dir))
}

// Dirty reports whether the last load validated any file again or dropped
// one, that is whether a saved cache would differ.
func (l *Loader) Dirty() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dirty
}

// loadAll validates files on every core (workers > 0 sets the number),
// each worker with its own cue.Context and schema compilation: CUE
// contexts are not safe for concurrent use, and one context's heap grows
// with every file it evaluates. Results keep the order of jobs.
func loadAll(fsys fs.FS, jobs []job, l *Loader, workers int) []result {
	results := make([]result, len(jobs))
	var prev, next map[fileKey]result
	var nextMu sync.Mutex
	misses := 0 // guarded by nextMu
	if l != nil {
		l.mu.Lock()
		prev = l.prev
		l.mu.Unlock()
		next = make(map[fileKey]result, len(jobs))
	}
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), max(1, len(jobs)/64))
	}
	var wg sync.WaitGroup
	ch := make(chan int)
	for range workers {
		wg.Go(func() {
			var c *compiled
			n := 0
			for i := range ch {
				j := jobs[i]
				data, r, ok := readJob(fsys, j)
				if !ok {
					results[i] = r
					continue
				}
				var key fileKey
				if l != nil {
					key = fileKey{path: j.path, sum: sha256.Sum256(data)}
					if r, hit := prev[key]; hit {
						results[i] = r
						nextMu.Lock()
						next[key] = r
						nextMu.Unlock()
						continue
					}
				}
				if c == nil || n >= filesPerContext {
					var err error
					if c, err = compile(); err != nil {
						results[i] = result{path: j.path, diags: Diagnostics{{File: j.path, Severity: SevError, Code: CodeSchema, Message: err.Error()}}}
						continue
					}
					n = 0
				}
				n++
				results[i] = loadFile(c, j, data)
				if l != nil {
					nextMu.Lock()
					next[key] = results[i]
					misses++
					nextMu.Unlock()
				}
			}
		})
	}
	for i := range jobs {
		ch <- i
	}
	close(ch)
	wg.Wait()
	if l != nil {
		l.mu.Lock()
		l.dirty = misses > 0 || len(next) != len(prev)
		l.prev = next
		l.mu.Unlock()
	}
	return results
}

// readJob reads a regular file found by the walk, refusing absurd sizes
// before reading. The entry's type was checked from its directory; the
// opened file is checked again, in case it was replaced meanwhile.
func readJob(fsys fs.FS, j job) ([]byte, result, bool) {
	fail := func(d Diagnostic) ([]byte, result, bool) {
		return nil, result{path: j.path, diags: Diagnostics{d}}, false
	}
	cannot := func(err error) ([]byte, result, bool) {
		return fail(Diagnostic{File: j.path, Severity: SevError, Code: CodeYAML, Message: "cannot read: " + err.Error()})
	}
	f, err := fsys.Open(j.path)
	if err != nil {
		return cannot(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return cannot(err)
	}
	if t := st.Mode().Type(); t != 0 {
		if entryProblem(t) == "" {
			return fail(Diagnostic{File: j.path, Severity: SevError, Code: CodeYAML, Message: "is a directory", Hint: "inventory files are regular files"})
		}
		return fail(entryDiag(j.path, t))
	}
	if st.Size() > maxFileSize {
		return fail(sizeDiag(j.path, st.Size()))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return cannot(err)
	}
	if len(data) > maxFileSize {
		return fail(sizeDiag(j.path, int64(len(data))))
	}
	return data, result{}, true
}

// Paths every file is read at, parsed once.
var (
	kindPath = cue.MakePath(cue.Str("kind"))
	namePath = cue.MakePath(cue.Str("metadata"), cue.Str("name"))
)

// loadFile validates one file against the definition of its kind and
// decodes it.
func loadFile(c *compiled, j job, data []byte) result {
	r := result{path: j.path}
	diag := func(pos token.Pos, field, code, msg, hint string) {
		d := Diagnostic{File: j.path, Field: field, Severity: SevError, Code: code, Message: msg, Hint: hint}
		if pos.IsValid() {
			d.Line, d.Col = pos.Line(), pos.Column()
		}
		r.diags = append(r.diags, d)
	}
	if len(data) > maxFileSize {
		diag(token.NoPos, "", CodeYAML, fmt.Sprintf("file is %d bytes; inventory files are limited to %d", len(data), maxFileSize), "")
		return r
	}
	if ds := prescan(j.path, data); len(ds) > 0 {
		r.diags = ds
		return r
	}
	af, err := cueyaml.Extract(j.path, data)
	if err != nil {
		line, msg := yamlError(j.path, err)
		r.diags = append(r.diags, Diagnostic{File: j.path, Line: line, Col: min(line, 1), Severity: SevError, Code: CodeYAML,
			Message: "invalid YAML: " + msg, Hint: "check indentation and quoting; one resource per file"})
		return r
	}
	if len(af.Decls) == 0 {
		diag(token.NoPos, "", CodeYAML, "file is empty", "delete it, or write a "+j.kind)
		return r
	}
	v := c.ctx.BuildFile(af)
	if err := v.Err(); err != nil {
		pos, msg := firstError(err)
		diag(pos, "", CodeYAML, msg, "")
		return r
	}
	if v.IncompleteKind() != cue.StructKind {
		diag(v.Pos(), "", CodeYAML, "a resource file must be a YAML mapping (one resource per file)", "")
		return r
	}
	secrets := findLiteralSecrets(af)
	for _, s := range secrets {
		diag(s.pos, s.field, CodeLiteralSecret, s.msg, s.hint)
	}

	kindV := v.LookupPath(kindPath)
	kind, kerr := kindV.String()
	switch {
	case !kindV.Exists():
		diag(v.Pos(), "kind", CodeKind, "missing kind", fmt.Sprintf("files under %s/ are kind: %s", dirOf(j.path), j.kind))
		return r
	case kerr != nil:
		diag(kindV.Pos(), "kind", CodeKind, "kind must be a string", fmt.Sprintf("write kind: %s", j.kind))
		return r
	case kind != j.kind:
		hint := fmt.Sprintf("files under %s/ must be kind: %s", dirOf(j.path), j.kind)
		if j.path == SiteFile {
			hint = "metalsync.yaml must be kind: Site"
		}
		diag(kindV.Pos(), "kind", CodeKind, fmt.Sprintf("kind %q is not allowed here", kind), hint)
		return r
	}

	r.kind = kind
	r.name, _ = v.LookupPath(namePath).String()
	def := c.defs[kind]
	u := def.Unify(v)
	if err := u.Validate(cue.Concrete(true)); err != nil {
		// CUE's errors are not exhaustive (an unknown field hides a missing
		// one); walk the file for those, then add CUE's other errors.
		reported := map[string]bool{}
		for _, s := range secrets {
			reported[s.field] = true
		}
		shape := checkShape(j.path, def, v, reported)
		for _, d := range shape {
			reported[d.Field] = true
		}
		r.diags = append(r.diags, shape...)
		r.diags = append(r.diags, mapCUEErrors(err, j.path, v, def, reported)...)
		if len(r.diags) == 0 { // never drop an error, even one we cannot position
			diag(token.NoPos, "", CodeSchema, err.Error(), "")
		}
		return r
	}
	if len(r.diags) > 0 {
		return r
	}
	src := Source{File: j.path, Line: 1}
	// Decoding through JSON of the validated value is twice as fast as
	// cue.Value.Decode and keeps one parser: the values are CUE's.
	js, err := u.MarshalJSON()
	if err != nil {
		pos, msg := firstError(err)
		diag(pos, "", CodeSchema, msg, "")
		return r
	}
	out := newOfKind(kind, src)
	if err := json.Unmarshal(js, out); err != nil {
		diag(token.NoPos, "", CodeSchema, "decode: "+err.Error(), "")
		return r
	}
	r.value = out
	return r
}

func dirOf(p string) string {
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

// yamlError splits the YAML parser's "file:LINE: message" error.
func yamlError(file string, err error) (int, string) {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, file+":"); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				return n, rest[i+2:]
			}
		}
	}
	return 0, msg
}

func firstError(err error) (token.Pos, string) {
	errs := cueerrors.Errors(err)
	if len(errs) == 0 {
		return token.NoPos, err.Error()
	}
	e := errs[0]
	format, args := e.Msg()
	return e.Position(), fmt.Sprintf(format, args...)
}
