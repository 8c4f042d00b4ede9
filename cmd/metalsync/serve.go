package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"metalsync.dev/metalsync/internal/httpstatus"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/render/mediaserver"
	"metalsync.dev/metalsync/repo/gitstatus"
	"metalsync.dev/metalsync/repo/lease"
	"metalsync.dev/metalsync/repo/webhook"
	"metalsync.dev/metalsync/schema"
)

// serveArgs are the flags of `metalsync serve`.
type serveArgs struct {
	repo, branch string
	remoteFlags
	webhookSecretEnv string
	local            string
	listen           string
	cacheDir         string
	poll             time.Duration
	statusInterval   time.Duration
	logFormat        string
	logLevel         string
	simulateAgent    bool
	mediaDir         string
	stateDir         string
	// onPass, when set, sees every pass's report (the demo's progress)
	// and the observed state as that pass left it.
	onPass      func(apply.Report, reconcile.Observed)
	authorName  string
	authorEmail string
	// lockTimeout waits that long for the fleet's lease (a standby daemon).
	lockTimeout time.Duration
	// pageRefresh is how often the fleet page reloads itself.
	pageRefresh time.Duration
}

func parseServe(args []string, env *Env) (serveArgs, int) {
	fs := newFlags("serve", env)
	a := serveArgs{}
	fs.StringVar(&a.repo, "repo", "", "URL of the inventory repository (https://, ssh://, git@host:path, git://, file://)")
	fs.StringVar(&a.branch, "branch", "main", "branch to follow")
	a.remoteFlags.register(fs, "")
	fs.StringVar(&a.webhookSecretEnv, "webhook-secret-env", "", "environment variable holding the webhook secret; enables POST /webhook")
	fs.StringVar(&a.local, "local", "", "follow a local working directory instead of a remote (status goes to DIR/status)")
	fs.StringVar(&a.listen, "listen", "", "HTTP listen address (default: the site's first listen address, else [::]:8080)")
	fs.StringVar(&a.cacheDir, "cache-dir", "", "keep the repository's objects in this bare repository across restarts (default: memory)")
	fs.DurationVar(&a.poll, "poll", 0, "fetch interval (default: the site's sync.pollInterval, else 30s)")
	fs.DurationVar(&a.statusInterval, "status-interval", 5*time.Second, "least time between two status commits")
	fs.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&a.mediaDir, "media-dir", "", "directory for published boot media (default: a temporary directory)")
	fs.StringVar(&a.stateDir, "state-dir", "", "directory for the deploy agent's CA, key, image cache and logs (default: $STATE_DIRECTORY, else ~/.local/state/metalsync)")
	fs.BoolVar(&a.simulateAgent, "simulate-agent", false, "run in-band steps with the simulated deploy agent (for simulated fleets only)")
	fs.StringVar(&a.authorName, "author-name", "", "status commit author (default: the site's git.authorName, else metalsync)")
	fs.StringVar(&a.authorEmail, "author-email", "", "status commit e-mail (default: the site's git.authorEmail)")
	fs.DurationVar(&a.lockTimeout, "lock-timeout", 0, "wait this long for the fleet's lease held by another run (0: refuse at once)")
	fs.DurationVar(&a.pageRefresh, "page-refresh", 15*time.Second, "how often the fleet page at / reloads itself in the browser (at least 1s)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync serve --repo URL [--branch main] [flags]\n       metalsync serve --local DIR [flags]\n\nFollows the inventory, reconciles every valid revision against the BMCs and\ncommits observed status back. Serves /metrics, /healthz, /readyz, /webhook\nand boot media on one listener.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Err, "metalsync serve: unexpected argument %q\n", fs.Arg(0))
		return a, exitUsage
	}
	if (a.repo == "") == (a.local == "") {
		fmt.Fprintln(env.Err, "metalsync serve: give exactly one of --repo URL or --local DIR")
		return a, exitUsage
	}
	if a.logFormat != "text" && a.logFormat != "json" {
		fmt.Fprintf(env.Err, "metalsync serve: unknown --log-format %q (text or json)\n", a.logFormat)
		return a, exitUsage
	}
	if a.pageRefresh < time.Second {
		fmt.Fprintf(env.Err, "metalsync serve: --page-refresh %s: want at least 1s\n", a.pageRefresh)
		return a, exitUsage
	}
	if _, err := parseLevel(a.logLevel); err != nil {
		fmt.Fprintf(env.Err, "metalsync serve: %v\n", err)
		return a, exitUsage
	}
	return a, -1
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown --log-level %q (debug, info, warn, error)", s)
	}
	return l, nil
}

func newLogger(env *Env, format, level string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(env.Err, opts))
	}
	return slog.New(slog.NewTextHandler(env.Err, opts))
}

func runServe(ctx context.Context, args []string, env *Env) int {
	a, code := parseServe(args, env)
	if code >= 0 {
		return code
	}
	log := newLogger(env, a.logFormat, a.logLevel)
	if err := serve(ctx, a, env, log, nil); err != nil {
		log.Error("metalsync serve stopped", "err", err)
		return exitError
	}
	return exitOK
}

// served is what a running daemon exposes to the demo.
type served struct {
	daemon *daemon.Daemon
	addr   net.Addr
	writer *gitstatus.Writer // nil for --local
}

// serve runs the daemon until ctx ends. started, when set, is called once
// the listener is up.
func serve(ctx context.Context, a serveArgs, env *Env, log *slog.Logger, started func(served)) error {
	metrics := daemon.NewMetrics()
	loader := &schema.Loader{}
	mediaDir, cleanup, err := buildMediaDir(a.mediaDir)
	if err != nil {
		return err
	}
	defer cleanup()
	in, err := buildInventoryIO(ctx, a, env, loader, metrics, log)
	if err != nil {
		return err
	}
	cur := &currentRevision{}
	agents, err := buildServeAgent(a, env, in.site, cur, metrics, log)
	if err != nil {
		return err
	}
	if agents != nil {
		defer agents.close()
	}
	media := &sitePublisher{log: log, site: cur.Site, agents: agents}
	ex := buildExecutor(a, env, cur, media, agents, metrics, log)
	trigger := make(chan struct{}, 1)
	d, err := buildDaemon(in, ex, cur, loader, agents, metrics, trigger, log)
	if err != nil {
		return err
	}
	if a.onPass != nil {
		// Hooks run on the pass's goroutine, before the next pass: the
		// state read here is exactly what this pass left.
		d.OnPass(func(rep apply.Report) { a.onPass(rep, d.Observed()) })
	}
	mux, err := buildHTTP(a, env, d, in, agents, media, metrics, trigger, log)
	if err != nil {
		return err
	}
	r := &running{d: d, writer: in.writer, listen: listenAddr(a, in.site), mux: mux, mediaDir: mediaDir, media: media,
		agents: agents, closeBMCs: ex.Registry.Close}
	// Nothing acts on the fleet before the lease is ours; losing it (a
	// person ran unlock) stops the daemon.
	ctx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	r.release, err = holdLease(ctx, in.lease, lease.Request{
		Holder: lease.Holder("serve", ""), Operation: "serve", TTL: 2 * time.Minute, Wait: a.lockTimeout,
	}, in.unlock, func(err error) {
		log.Error("fleet lease lost; stopping", "err", err)
		lost(err)
	})
	if err != nil {
		return err
	}
	return r.run(ctx, log, started)
}

// currentRevision is the last valid revision the daemon loaded, the one
// being reconciled: ageFile credentials are read from its files (the same
// commit as the nodes), boot media use its site file, and metrics label
// BMC calls by its nodes' drivers.
type currentRevision struct {
	mu   sync.Mutex
	inv  *schema.Inventory // guarded by mu
	fsys fs.FS             // guarded by mu
}

func (c *currentRevision) set(inv *schema.Inventory, fsys fs.FS) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inv, c.fsys = inv, fsys
}

func (c *currentRevision) get() (*schema.Inventory, fs.FS) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inv, c.fsys
}

// Node is the revision's node of that name, or nil.
func (c *currentRevision) Node(name string) *schema.Node {
	inv, _ := c.get()
	if inv == nil {
		return nil
	}
	for _, n := range inv.Nodes {
		if n.Name() == name {
			return n
		}
	}
	return nil
}

// ReadFile reads a file of the revision.
func (c *currentRevision) ReadFile(name string) ([]byte, error) {
	_, fsys := c.get()
	if fsys == nil {
		return nil, fmt.Errorf("read %s: no revision loaded", name)
	}
	return fs.ReadFile(fsys, filepath.ToSlash(filepath.Clean(name)))
}

// Site is the revision's site file (nil before the first revision).
func (c *currentRevision) Site() *schema.Site {
	if inv, _ := c.get(); inv != nil {
		return inv.Site
	}
	return nil
}

// Driver is the driver of node's BMC ("" when unknown).
func (c *currentRevision) Driver(node string) string {
	inv, _ := c.get()
	if inv == nil {
		return ""
	}
	if n := inv.Node(node); n != nil {
		if addr, err := schema.ParseBMCAddress(n.Spec.BMC.Address); err == nil {
			return addr.Driver
		}
	}
	return ""
}

// sitePublisher renders and publishes boot media with the settings of the
// site file of the revision being reconciled; the media server exists once
// the listener is up.
type sitePublisher struct {
	log  *slog.Logger
	site func() *schema.Site // the current revision's site file
	// agents, when set, makes every node's media a view of the agent
	// template carrying its agent settings.
	agents *agentStack

	mu      sync.Mutex
	srv     *mediaserver.Server    // guarded by mu
	pub     *mediaserver.Publisher // for srv and pubSite; guarded by mu
	pubSite *schema.Site           // guarded by mu
}

func (p *sitePublisher) setServer(srv *mediaserver.Server) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.srv, p.pub = srv, nil
}

func (p *sitePublisher) publisher() (*mediaserver.Publisher, error) {
	var site *schema.Site
	if p.site != nil {
		site = p.site()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv == nil {
		return nil, errors.New("media server not started yet")
	}
	if p.pub == nil || p.pubSite != site {
		var opts mediaserver.PublisherOptions
		if p.agents != nil {
			opts.Template, opts.Agent = p.agents.tmpl, p.agents.mediaAgent
		}
		pub, err := mediaserver.NewPublisher(p.srv, site, opts)
		if err != nil {
			return nil, err
		}
		p.pub, p.pubSite = pub, site
	}
	return p.pub, nil
}

// Publish implements apply.Media.
func (p *sitePublisher) Publish(ctx context.Context, node *schema.Node, epoch string) (string, string, error) {
	pub, err := p.publisher()
	if err != nil {
		return "", "", err
	}
	return pub.Publish(ctx, node, epoch)
}

// Unpublish implements apply.Media.
func (p *sitePublisher) Unpublish(ctx context.Context, node string) error {
	if p.agents != nil {
		p.agents.srv.Revoke(node)
	}
	pub, err := p.publisher()
	if err != nil {
		return err
	}
	return pub.Unpublish(ctx, node)
}

// ServeHTTP serves published media.
func (p *sitePublisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	srv := p.srv
	p.mu.Unlock()
	if srv == nil {
		http.NotFound(w, r)
		return
	}
	srv.Handler().ServeHTTP(w, r)
}

// newWebhook returns the push-event receiver that triggers a fetch, with
// a request counter by result.
func newWebhook(key, branch string, trigger chan struct{}, m *daemon.Metrics, log *slog.Logger) (http.Handler, error) {
	h, err := webhook.New(webhook.Config{Secret: secret.Value(key), Branch: branch, Logger: log, Trigger: func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &httpstatus.Recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		m.WebhookRequests.WithLabelValues(strconv.Itoa(rec.StatusOr200())).Inc()
	}), nil
}
