// Package fleetpage serves the fleet page on the daemon's listener:
// racks as grids of nodes coloured by state, what needs attention, and a
// page per node with its status and its history from Git. The HTML is
// rendered on the server and refreshes itself; there is no script and
// no build step, so it works on a phone and behind any proxy.
package fleetpage

import (
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/fleet"
	"metalsync.dev/metalsync/repo/githistory"
	"metalsync.dev/metalsync/schema"
)

// Fleet is the daemon's view; *daemon.Daemon implements it.
type Fleet interface {
	Snapshot() daemon.Snapshot
	Generation() uint64
}

// History reads the commits that changed files of the inventory; nil
// when the daemon holds no Git history (serve --local on a plain
// directory).
type History interface {
	Walk(ctx context.Context, paths []string, opt githistory.Options) (githistory.Result, error)
}

// AgentLogs reads what the deploy agent logged on a node;
// *server.Server (agentapi) implements it.
type AgentLogs interface {
	LogTail(node string, limit int64) (tail []byte, partial bool, err error)
}

// Config wires a Handler.
type Config struct {
	Fleet   Fleet
	History History
	// AgentLogs, when set, puts the end of the node's agent log on its
	// page.
	AgentLogs AgentLogs
	Logger    *slog.Logger
	// Refresh is how often pages reload themselves; 0 means 15s.
	Refresh time.Duration
	// Now is the clock for ages; nil means time.Now.
	Now func() time.Time
}

// Routes served by the Handler.
const (
	PathFleet = "/"
	PathNodes = "/nodes/"
	PathAPI   = "/api/v1/nodes"
)

// Handler serves the fleet page, node pages and the JSON API.
type Handler struct {
	cfg  Config
	tmpl *template.Template
	mux  *http.ServeMux

	// views caches fleet pages by label filter for one generation of
	// the daemon's state: a 10,000-node grid costs a quarter second to
	// build, and every open page asks for it every refresh.
	mu      sync.Mutex
	viewGen uint64               // guarded by mu
	views   map[string]fleetView // guarded by mu
}

// maxCachedViews bounds the cached filters; past it the cache starts over.
const maxCachedViews = 32

//go:embed templates/*.html
var templates embed.FS

// New returns the handler; mount it at "/".
func New(cfg Config) (*Handler, error) {
	if cfg.Fleet == nil {
		return nil, fmt.Errorf("fleet page: a fleet is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 15 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templates, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("fleet page templates: %w", err)
	}
	h := &Handler{cfg: cfg, tmpl: t, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /{$}", h.fleetPage)
	h.mux.HandleFunc("GET /nodes/{name}", h.nodePage)
	h.mux.HandleFunc("GET "+PathAPI, h.apiNodes)
	h.mux.HandleFunc("GET "+PathAPI+"/{name}/history", h.apiHistory)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Nothing on these pages runs script, loads from elsewhere or belongs
	// in a frame.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

var funcs = template.FuncMap{
	"short": shortRev,
	"age":   fleet.Age,
	"join":  strings.Join,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"step": fleet.StepText,
	"dash": func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	},
	"add": func(a, b int) int { return a + b },
}

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// page is what every page's header shows.
type Page struct {
	Title    string
	Site     string
	Revision string
	Invalid  *fleet.Invalid
	Now      time.Time
	Refresh  int // seconds
	Root     string
}

func (h *Handler) pageOf(snap daemon.Snapshot, title, root string) Page {
	p := Page{Title: title, Revision: snap.Revision, Now: h.cfg.Now(), Refresh: int(h.cfg.Refresh / time.Second), Root: root}
	if snap.Inventory != nil && snap.Inventory.Site != nil {
		p.Site = snap.Inventory.Site.Metadata.Name
	}
	p.Invalid = invalidOf(snap)
	return p
}

func invalidOf(snap daemon.Snapshot) *fleet.Invalid {
	if snap.Invalid == "" {
		return nil
	}
	return &fleet.Invalid{Revision: snap.Invalid, Report: snap.InvalidDiagnostics.String()}
}

// fleetView is the fleet page.
type fleetView struct {
	Page
	Selector  string
	SelError  string
	Total     int
	Shown     int
	Counts    []classCount
	Marks     []classCount
	Attention []tile
	MoreAttn  int
	// RacksHTML is the rendered grid of racks ("" for none).
	RacksHTML template.HTML
}

type classCount struct {
	Class fleet.Class
	N     int
}

type rack struct {
	Name  string
	ID    string
	Tiles []tile
}

// tile is one node on the grid.
type tile struct {
	fleet.Row
	Class fleet.Class
	Marks []string
	Err   string
}

// maxAttention bounds the "needs attention" list; the grid shows all.
const maxAttention = 50

func (h *Handler) fleetPage(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("l"))
	v, ok := h.cachedView(q)
	if !ok {
		var err error
		if v, err = h.buildView(q); err != nil {
			h.cfg.Logger.Error("fleet page: render", "page", "racks", "err", err)
			http.Error(w, "rendering the page failed; see the daemon's log", http.StatusInternalServerError)
			return
		}
	}
	v.Now = h.cfg.Now()
	h.render(w, r, "fleet.html", v)
}

// cachedView is the fleet page for filter q, if built for the daemon's
// current generation.
func (h *Handler) cachedView(q string) (fleetView, bool) {
	gen := h.cfg.Fleet.Generation()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.viewGen != gen {
		return fleetView{}, false
	}
	v, ok := h.views[q]
	return v, ok
}

// buildView builds the fleet page for filter q from a new snapshot and
// caches it under the snapshot's generation.
func (h *Handler) buildView(q string) (fleetView, error) {
	snap := h.cfg.Fleet.Snapshot()
	v := fleetView{Page: h.pageOf(snap, "Fleet", ""), Selector: q}
	sel := fleet.Selector{}
	if q != "" {
		var err error
		if sel, err = fleet.ParseSelector(q); err != nil {
			v.SelError = err.Error()
			sel = fleet.Selector{}
		}
	}
	if snap.Inventory != nil {
		v.Total = len(snap.Inventory.Nodes)
		rows := fleet.Rows(snap.Inventory, fleet.Live(snap.Observed), sel, v.Now)
		v.Shown = len(rows)
		var racks []rack
		v.Counts, v.Marks, v.Attention, v.MoreAttn, racks = layout(rows)
		if len(racks) > 0 {
			var b bytes.Buffer
			if err := h.tmpl.ExecuteTemplate(&b, "racks", racks); err != nil {
				return v, err
			}
			v.RacksHTML = template.HTML(b.String()) // rendered by html/template, escaped there
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.views == nil || h.viewGen != snap.Generation || len(h.views) >= maxCachedViews {
		h.viewGen, h.views = snap.Generation, map[string]fleetView{}
	}
	h.views[q] = v
	return v, nil
}

// layout groups rows into racks (named racks in name order, then the
// nodes in none) and picks out the nodes that need a person.
func layout(rows []fleet.Row) (counts, marks []classCount, attention []tile, more int, racks []rack) {
	byClass := map[fleet.Class]int{}
	var nFault, nQuar, nErr int
	byRack := map[string]*rack{}
	for _, r := range rows {
		t := tile{Row: r, Class: r.Class(), Marks: r.Marks(), Err: r.Error()}
		byClass[t.Class]++
		if r.Fault != nil {
			nFault++
		}
		if r.Quarantine != "" {
			nQuar++
		}
		if t.Err != "" {
			nErr++
		}
		if t.Class == fleet.ClassFailed || r.Quarantine != "" || t.Err != "" {
			if len(attention) < maxAttention {
				attention = append(attention, t)
			} else {
				more++
			}
		}
		rk := byRack[r.Rack]
		if rk == nil {
			rk = &rack{Name: r.Rack, ID: "rack-" + anchor(r.Rack)}
			if r.Rack == "" {
				rk.Name, rk.ID = "No rack", "no-rack"
			}
			byRack[r.Rack] = rk
		}
		rk.Tiles = append(rk.Tiles, t)
	}
	for _, c := range fleet.Classes() {
		counts = append(counts, classCount{c, byClass[c]})
	}
	marks = []classCount{{"fault", nFault}, {"quarantined", nQuar}, {"error", nErr}}
	// Failed first: the list is read top-down by someone on call.
	slices.SortStableFunc(attention, func(a, b tile) int {
		return boolInt(b.Class == fleet.ClassFailed) - boolInt(a.Class == fleet.ClassFailed)
	})
	names := make([]string, 0, len(byRack))
	for n := range byRack {
		if n != "" {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, naturalCompare)
	if byRack[""] != nil {
		names = append(names, "")
	}
	for _, n := range names {
		racks = append(racks, *byRack[n])
	}
	return counts, marks, attention, more, racks
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// anchor makes an id fragment of a rack name.
func anchor(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// naturalCompare orders "rack2" before "rack10".
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(strings.TrimLeft(a[:da], "0")+"0", 10, 64)
			nb, _ := strconv.ParseUint(strings.TrimLeft(b[:db], "0")+"0", 10, 64)
			if na != nb {
				if na < nb {
					return -1
				}
				return 1
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digits(s string) int {
	n := 0
	for n < len(s) && n < 18 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// nodeView is a node's page.
type nodeView struct {
	Page
	Row       fleet.Row
	Class     fleet.Class
	Marks     []string
	Node      *schema.Node
	Status    *schema.NodeStatusBody
	Steps     []stepView
	Inventory string // inspection inventory, indented JSON
	History   *githistory.Result
	HistErr   string
	NoHistory bool
	Paths     []string
	// AgentLog is the end of the deploy agent's log; AgentLogPartial says
	// earlier lines were left out.
	AgentLog        string
	AgentLogPartial bool
	AgentLogErr     string
}

// agentLogTail is how much of an agent log a node page shows.
const agentLogTail = 64 << 10

type stepView struct {
	Name  string
	State string // done, current, pending
}

// history bounds per node page.
const (
	historyChanges = 30
	historyCommits = 2000
)

func (h *Handler) nodePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	snap := h.cfg.Fleet.Snapshot()
	n := nodeOf(snap, name)
	if n == nil {
		w.WriteHeader(http.StatusNotFound)
		h.render(w, r, "missing.html", struct {
			Page
			Name string
		}{h.pageOf(snap, "No node "+name, "../"), name})
		return
	}
	v := nodeView{Page: h.pageOf(snap, name, "../"), Node: n}
	rows := fleet.Rows(&schema.Inventory{Nodes: []*schema.Node{n}}, fleet.Live(snap.Observed), nil, v.Now)
	v.Row = rows[0]
	v.Class, v.Marks = v.Row.Class(), v.Row.Marks()
	if st, ok := snap.Observed[name]; ok {
		v.Status = &st
		v.Steps = steps(st.Operation)
		if st.Inspect != nil && len(st.Inspect.Inventory) > 0 {
			if b, err := json.MarshalIndent(st.Inspect.Inventory, "", "  "); err == nil {
				v.Inventory = string(b)
			}
		}
	}
	if h.cfg.AgentLogs != nil {
		b, partial, err := h.cfg.AgentLogs.LogTail(name, agentLogTail)
		if err != nil {
			v.AgentLogErr = err.Error()
		}
		v.AgentLog, v.AgentLogPartial = string(b), partial
	}
	v.Paths = nodePaths(snap.Inventory, n)
	if h.cfg.History == nil {
		v.NoHistory = true
	} else {
		res, err := h.cfg.History.Walk(r.Context(), v.Paths, historyOptions)
		if err != nil {
			h.cfg.Logger.Warn("fleet page: node history", "node", name, "err", err)
			v.HistErr = err.Error()
		}
		v.History = &res
	}
	h.render(w, r, "node.html", v)
}

var historyOptions = githistory.Options{
	MaxChanges: historyChanges, MaxCommits: historyCommits,
	// They change with every status write and say nothing.
	Ignore: []string{"status.updated", "status.commit"},
	// A credential committed by mistake stays in Git, refused or not; the
	// page does not show it to whoever can see the page.
	Redact: schema.LiteralSecret,
}

// nodeOf is the node of the snapshot's revision, or nil.
func nodeOf(snap daemon.Snapshot, name string) *schema.Node {
	if snap.Inventory == nil {
		return nil
	}
	return snap.Inventory.Node(name)
}

// nodePaths are the repository paths of n's spec and status files.
func nodePaths(inv *schema.Inventory, n *schema.Node) []string {
	paths := []string{n.Source.File}
	if st := inv.Site.Spec.Status; st != nil && st.Directory != "" {
		paths = append(paths, path.Join(st.Directory, inv.StatusSubDir(n.Name()), n.Name()+".yaml"))
	}
	return paths
}

func steps(op *schema.Operation) []stepView {
	if op == nil {
		return nil
	}
	out := make([]stepView, len(op.Steps))
	for i, s := range op.Steps {
		state := "pending"
		switch {
		case i < op.Step:
			state = "done"
		case i == op.Step:
			state = "current"
		}
		out[i] = stepView{Name: s, State: state}
	}
	return out
}

// apiNodes is `metalsync status -o json` of the daemon's view; its ETag
// follows the daemon's generation, so watchers cost little while nothing
// changes.
func (h *Handler) apiNodes(w http.ResponseWriter, r *http.Request) {
	sel := fleet.Selector{}
	if q := r.URL.Query().Get("l"); q != "" {
		var err error
		if sel, err = fleet.ParseSelector(q); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	etag := fmt.Sprintf(`"g%d-%s"`, h.cfg.Fleet.Generation(), anchor(sel.String()))
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	snap := h.cfg.Fleet.Snapshot()
	rep := fleet.Report{FormatVersion: fleet.FormatVersion, Revision: snap.Revision, Invalid: invalidOf(snap), Nodes: []fleet.Row{}}
	if snap.Inventory != nil {
		rep.Nodes = fleet.Rows(snap.Inventory, fleet.Live(snap.Observed), sel, h.cfg.Now())
	}
	// The snapshot may be newer than the generation read above; its own
	// generation names what was sent.
	w.Header().Set("ETag", fmt.Sprintf(`"g%d-%s"`, snap.Generation, anchor(sel.String())))
	h.writeJSON(w, r, rep)
}

// apiHistory is a node's history as JSON.
func (h *Handler) apiHistory(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	snap := h.cfg.Fleet.Snapshot()
	n := nodeOf(snap, name)
	if n == nil {
		http.Error(w, fmt.Sprintf("no node %q in revision %s", name, shortRev(snap.Revision)), http.StatusNotFound)
		return
	}
	if h.cfg.History == nil {
		http.Error(w, "no Git history: this daemon follows a plain directory", http.StatusNotFound)
		return
	}
	res, err := h.cfg.History.Walk(r.Context(), nodePaths(snap.Inventory, n), historyOptions)
	if err != nil {
		http.Error(w, "history of "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	h.writeJSON(w, r, res)
}

func (h *Handler) writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		h.cfg.Logger.Error("fleet page: encode", "path", r.URL.Path, "err", err)
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	h.send(w, r, buf.Bytes())
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, name string, v any) {
	var buf bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&buf, name, v); err != nil {
		h.cfg.Logger.Error("fleet page: render", "page", name, "err", err)
		http.Error(w, "rendering the page failed; see the daemon's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	h.send(w, r, buf.Bytes())
}

// send writes body, gzipped when the client takes it: a 10,000-node Page
// is megabytes of repetitive HTML.
func (h *Handler) send(w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Add("Vary", "Accept-Encoding")
	if len(body) < 1024 || !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	zw.Write(body)
	zw.Close()
}

func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := 1.0
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				q = f
			}
		}
		return q > 0
	}
	return false
}
