package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"metalsync.dev/metalsync/credentials"
	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/render/mediaserver"
	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitstatus"
	"metalsync.dev/metalsync/repo/localwatch"
	"metalsync.dev/metalsync/repo/webhook"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/sim/agentsim"
)

// serveArgs are the flags of `metalsync serve`.
type serveArgs struct {
	repo, branch     string
	sshKey           string
	knownHosts       string
	gitUsername      string
	gitPasswordEnv   string
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
	// onPass, when set, sees every pass's report (the demo's progress).
	onPass      func(apply.Report)
	authorName  string
	authorEmail string
}

func parseServe(args []string, env *Env) (serveArgs, int) {
	fs := newFlags("serve", env)
	a := serveArgs{}
	fs.StringVar(&a.repo, "repo", "", "URL of the inventory repository (https://, ssh://, git@host:path, git://, file://)")
	fs.StringVar(&a.branch, "branch", "main", "branch to follow")
	fs.StringVar(&a.sshKey, "ssh-key", "", "private key file for an SSH remote")
	fs.StringVar(&a.knownHosts, "known-hosts", "", "known_hosts file with the SSH remote's host key (required for SSH)")
	fs.StringVar(&a.gitUsername, "git-username", "", "HTTP username for an https remote")
	fs.StringVar(&a.gitPasswordEnv, "git-password-env", "", "environment variable holding the HTTP password or token")
	fs.StringVar(&a.webhookSecretEnv, "webhook-secret-env", "", "environment variable holding the webhook secret; enables POST /webhook")
	fs.StringVar(&a.local, "local", "", "follow a local working directory instead of a remote (status goes to DIR/status)")
	fs.StringVar(&a.listen, "listen", "", "HTTP listen address (default: the site's first listen address, else [::]:8080)")
	fs.StringVar(&a.cacheDir, "cache-dir", "", "keep the repository's objects in this bare repository across restarts (default: memory)")
	fs.DurationVar(&a.poll, "poll", 0, "fetch interval (default: the site's sync.pollInterval, else 30s)")
	fs.DurationVar(&a.statusInterval, "status-interval", 5*time.Second, "least time between two status commits")
	fs.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&a.mediaDir, "media-dir", "", "directory for published boot media (default: a temporary directory)")
	fs.BoolVar(&a.simulateAgent, "simulate-agent", false, "run in-band steps with the simulated deploy agent (for simulated fleets only)")
	fs.StringVar(&a.authorName, "author-name", "", "status commit author (default: the site's git.authorName, else metalsync)")
	fs.StringVar(&a.authorEmail, "author-email", "", "status commit e-mail (default: the site's git.authorEmail)")
	fs.Usage = func() {
		fmt.Fprintln(env.Err, "usage: metalsync serve --repo URL [--branch main] [flags]\n       metalsync serve --local DIR [flags]\n\nFollows the inventory, reconciles every valid revision against the BMCs and\ncommits observed status back. Serves /metrics, /healthz, /readyz, /webhook\nand boot media on one listener.")
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
	writer *gitstatus.Writer
}

// serve runs the daemon until ctx ends. started, when set, is called once
// the listener is up.
func serve(ctx context.Context, a serveArgs, env *Env, log *slog.Logger, started func(served)) error {
	metrics := daemon.NewMetrics()
	agent := &agentsim.Agent{}
	tree := &currentTree{}
	ex := &apply.Executor{
		Registry: defaultRegistry(),
		Credentials: credentials.Resolver{Getenv: env.Getenv, RepoDir: a.local, ReadFile: func(name string) ([]byte, error) {
			if filepath.IsAbs(name) || a.local != "" {
				return os.ReadFile(name)
			}
			return tree.ReadFile(name) // an ageFile of the revision being reconciled
		}},
		AgentFor: func(driver string) apply.Agent {
			if a.simulateAgent || driver == "fake" {
				return agent
			}
			return nil
		},
	}
	mediaDir := a.mediaDir
	if mediaDir == "" {
		dir, err := os.MkdirTemp("", "metalsync-media-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		mediaDir = dir
	}
	loader := &schema.Loader{}
	media := &sitePublisher{log: log}
	var (
		src    daemon.Source
		writer *gitstatus.Writer
		sink   apply.StatusSink
	)
	var firstSite *schema.Site
	var d *daemon.Daemon // set below; the local sink's closures read it
	var report daemon.FileWriter
	var trackStatus func(*schema.Inventory)
	if a.local != "" {
		src = localSource(a.local, log)
		statusDir := filepath.Join(a.local, schema.DefaultStatusDir)
		// Status mirrors nodes/ as in Git; where a file is now is known
		// from the revision last loaded (it re-reads status/).
		current := func() *schema.Inventory {
			if d == nil {
				return nil
			}
			_, inv := d.Revision()
			return inv
		}
		sink = apply.DirSink{Dir: statusDir,
			SubDir: func(node string) string {
				if inv := current(); inv != nil {
					return inv.StatusSubDir(node)
				}
				return ""
			},
			Was: func(node string) string {
				if inv := current(); inv != nil {
					return inv.StatusPath(node)
				}
				return ""
			}}
		report = func(name string, data []byte, _ string) error {
			p := filepath.Join(statusDir, name)
			if data == nil {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				return nil
			}
			if err := os.MkdirAll(statusDir, 0o755); err != nil {
				return err
			}
			return os.WriteFile(p, data, 0o644)
		}
	} else {
		auth := gitsource.Auth{Username: a.gitUsername, SSHKeyFile: a.sshKey, KnownHostsFile: a.knownHosts}
		if a.gitPasswordEnv != "" {
			auth.Password = secret.Value(env.Getenv(a.gitPasswordEnv))
		}
		gs, err := gitsource.New(gitsource.Config{URL: a.repo, Branch: a.branch, Auth: auth, Dir: a.cacheDir, IgnoreDir: schema.DefaultStatusDir, Logger: log})
		if err != nil {
			return err
		}
		// The site file of the branch head says where status goes and who
		// signs it; read it once before starting.
		fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		head, _, err := gs.Fetch(fctx)
		cancel()
		if err != nil {
			return fmt.Errorf("first fetch: %w", err)
		}
		fsys, err := gs.Tree(head)
		if err != nil {
			return err
		}
		inv, diags := loader.Load(fsys)
		if inv == nil { // only when the embedded schema does not compile
			return fmt.Errorf("first load: %w", diags.Err())
		}
		firstSite = inv.Site
		site := inv.Site.Spec
		author := gitstatus.Identity{Name: "metalsync", Email: "metalsync@localhost"}
		if site.Git != nil {
			author.Name = cmp.Or(site.Git.AuthorName, author.Name)
			author.Email = cmp.Or(site.Git.AuthorEmail, author.Email)
		}
		author.Name = cmp.Or(a.authorName, author.Name)
		author.Email = cmp.Or(a.authorEmail, author.Email)
		c, err := gitstatus.New(gitstatus.Config{Source: gs, Branch: site.Status.Branch, Dir: site.Status.Directory, Author: author, Logger: log})
		if err != nil {
			return err
		}
		writer = gitstatus.NewWriter(c, gitstatus.WriterConfig{Interval: a.statusInterval, OnFlush: func(r gitstatus.Result, err error) {
			if err != nil {
				log.Warn("status commit failed; will retry", "err", err)
				return
			}
			if r.Commit != "" {
				metrics.StatusCommits.Inc()
				log.Info("status committed", "commit", r.Commit[:12], "nodes", len(r.Changed), "retries", r.Retries)
			}
			metrics.PushRetries.Add(float64(r.Retries))
		}})
		gitSink := &daemon.GitSink{W: writer}
		trackStatus = gitSink.Track
		sink = gitSink
		report = writer.UpdateFile
		poll := a.poll
		if poll == 0 {
			poll = 30 * time.Second
			if site.Sync != nil {
				if d, err := time.ParseDuration(site.Sync.PollInterval); err == nil && d > 0 {
					poll = d
				}
			}
		}
		src = gitSource{src: gs, interval: poll}
	}

	trigger := make(chan struct{}, 1)
	var err error
	d, err = daemon.New(daemon.Config{Source: src, Executor: ex, Metrics: metrics, Logger: log, Trigger: trigger, Loader: loader,
		Invalid: &daemon.FileReporter{Write: report, Log: log},
		OnLoad: func(_ string, inv *schema.Inventory, fsys fs.FS) {
			tree.set(fsys)
			if trackStatus != nil {
				trackStatus(inv)
			}
		}})
	if err != nil {
		return err
	}
	ex.Sink = d.Sink(sink)
	ex.Media = media
	if a.onPass != nil {
		d.OnPass(a.onPass)
	}
	media.site = func() *schema.Site {
		if _, inv := d.Revision(); inv != nil {
			return inv.Site
		}
		return nil
	}
	driverOf := func(node string) string {
		_, inv := d.Revision()
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
	ex.Observer = apply.Observers{apply.LogObserver{Logger: log}, daemon.NewExecutorObserver(metrics, driverOf)}

	handlers := daemon.Handlers{Metrics: metrics, Ready: d.Ready, Media: media}
	if a.webhookSecretEnv != "" {
		secret := env.Getenv(a.webhookSecretEnv)
		if secret == "" {
			return fmt.Errorf("--webhook-secret-env %s: the variable is empty", a.webhookSecretEnv)
		}
		wh, err := newWebhook(secret, a.branch, trigger, metrics, log)
		if err != nil {
			return err
		}
		handlers.Webhook = wh
	}
	listen := a.listen
	if listen == "" {
		listen = "[::]:8080"
		if firstSite != nil && len(firstSite.Spec.Listen) > 0 {
			listen = firstSite.Spec.Listen[0]
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// The status writer outlives the daemon's passes so that the last
	// statuses are committed: it stops after the daemon returns.
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	if writer != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = writer.Run(writerCtx, 30*time.Second)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := daemon.Serve(runCtx, listen, handlers.Mux(), log, func(addr net.Addr) {
			log.Info("listening", "addr", addr.String())
			srv, err := mediaserver.New(mediaserver.Config{Dir: mediaDir, BaseURL: mediaserver.BaseURL("http", addr), Log: log})
			if err != nil {
				errs <- err
				stop()
				return
			}
			media.setServer(srv)
			if started != nil {
				started(served{daemon: d, addr: addr, writer: writer})
			}
		})
		if err != nil {
			errs <- err
			stop()
		}
	}()
	derr := d.Run(runCtx)
	stop()
	stopWriter()
	wg.Wait()
	close(errs)
	var all []error
	if derr != nil {
		all = append(all, derr)
	}
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// currentTree remembers the file system of the last valid revision, the
// one being reconciled, so that ageFile credentials are read from the same
// commit as the nodes.
type currentTree struct {
	mu   sync.Mutex
	fsys fs.FS // guarded by mu
}

func (t *currentTree) set(fsys fs.FS) {
	t.mu.Lock()
	t.fsys = fsys
	t.mu.Unlock()
}

func (t *currentTree) ReadFile(name string) ([]byte, error) {
	t.mu.Lock()
	fsys := t.fsys
	t.mu.Unlock()
	if fsys == nil {
		return nil, fmt.Errorf("read %s: no revision loaded", name)
	}
	return fs.ReadFile(fsys, filepath.ToSlash(filepath.Clean(name)))
}

// sitePublisher renders and publishes boot media with the settings of the
// site file of the revision being reconciled; the media server exists once
// the listener is up.
type sitePublisher struct {
	log  *slog.Logger
	site func() *schema.Site // the current revision's site file

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
		pub, err := mediaserver.NewPublisher(p.srv, site, mediaserver.PublisherOptions{})
		if err != nil {
			return nil, err
		}
		p.pub, p.pubSite = pub, site
	}
	return p.pub, nil
}

// Publish implements apply.Media.
func (p *sitePublisher) Publish(ctx context.Context, node *schema.Node) (string, string, error) {
	pub, err := p.publisher()
	if err != nil {
		return "", "", err
	}
	return pub.Publish(ctx, node)
}

// Unpublish implements apply.Media.
func (p *sitePublisher) Unpublish(ctx context.Context, node string) error {
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

// gitSource follows a branch of a Git remote.
type gitSource struct {
	src      *gitsource.Source
	interval time.Duration // poll interval
}

// Run implements daemon.Source.
func (g gitSource) Run(ctx context.Context, trigger <-chan struct{}, onRevision func(context.Context, string, fs.FS)) error {
	return g.src.Run(ctx, g.interval, trigger, onRevision)
}

// localDirSource follows a working directory (`serve --local`): fsnotify
// triggers a re-read; a revision is the digest of the spec files, so the
// status files the daemon writes into the same directory do not count.
type localDirSource struct {
	dir string
	log *slog.Logger
}

func localSource(dir string, log *slog.Logger) daemon.Source {
	return localDirSource{dir: dir, log: log}
}

func (l localDirSource) Run(ctx context.Context, trigger <-chan struct{}, on func(context.Context, string, fs.FS)) error {
	w, err := localwatch.New(localwatch.Config{Dir: l.dir, Logger: l.log})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = w.Run(wctx) }()
	last := ""
	deliver := func() {
		fsys := os.DirFS(l.dir)
		rev, err := specDigest(fsys)
		if err != nil {
			l.log.Warn("read local inventory", "dir", l.dir, "err", err)
			return
		}
		if rev != last {
			last = rev
			on(ctx, rev, fsys)
		}
	}
	deliver()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.C():
			deliver()
		case <-trigger:
			deliver()
		}
	}
}

// specDigest names a local revision by the content of its spec files.
func specDigest(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || p == schema.DefaultStatusDir) {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml") {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return "local-" + hex.EncodeToString(h.Sum(nil))[:12], nil
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
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		m.WebhookRequests.WithLabelValues(strconv.Itoa(rec.code)).Inc()
	}), nil
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}
