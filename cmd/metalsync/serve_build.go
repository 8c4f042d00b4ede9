package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5/storage"

	"metalsync.dev/metalsync/credentials"
	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/fleetpage"
	"metalsync.dev/metalsync/reconcile/apply"
	"metalsync.dev/metalsync/render/mediaserver"
	"metalsync.dev/metalsync/repo/githistory"
	"metalsync.dev/metalsync/repo/gitreview"
	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitstatus"
	"metalsync.dev/metalsync/repo/lease"
	"metalsync.dev/metalsync/repo/localdir"
	"metalsync.dev/metalsync/repo/statussink"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/sim/agentsim"
)

// The builders of `metalsync serve`: each returns one part, built only from
// parts that already exist.

// buildMediaDir returns the directory for published boot media: --media-dir,
// else a temporary directory that cleanup removes.
func buildMediaDir(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "metalsync-media-")
	if err != nil {
		return "", nil, fmt.Errorf("media directory: %w", err)
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// inventoryIO is where revisions come from and where status goes.
type inventoryIO struct {
	source daemon.Source
	sink   apply.StatusSink
	// track learns from every loaded revision where status files belong.
	track func(*schema.Inventory)
	// files takes the invalid-inventory report.
	files  statussink.FileUpdater
	writer *gitstatus.Writer // the Git status writer; nil for --local
	site   *schema.Site      // the site file at start; nil for an invalid head
	// lease is the fleet's lease (in the remote, or beside a local
	// directory); unlock the command that breaks it.
	lease  *lease.Lease
	unlock string
	// gate checks who changed what between revisions; nil for --local,
	// whose revisions are snapshots without authors.
	gate daemon.Gate
	// history reads the Git history the fleet page shows; nil for a
	// plain directory.
	history fleetpage.History
	// resume, when set, gives the first revision loaded the status
	// recorded elsewhere (a separate status branch), so that a restarted
	// daemon resumes from it, write-ahead intents included.
	resume func(*schema.Inventory)
}

func buildInventoryIO(ctx context.Context, a serveArgs, env *Env, loader *schema.Loader, metrics *daemon.Metrics, log *slog.Logger) (inventoryIO, error) {
	if a.local != "" {
		in := buildLocalIO(a.local, log)
		l, err := leaseOfDir(ctx, a.local, a.auth(env))
		if err != nil {
			return inventoryIO{}, err
		}
		in.lease, in.unlock = l, unlockCommand(a.local)
		if githistory.IsRepo(a.local) {
			in.history = githistory.Reader{Store: githistory.Dir(a.local)}
		}
		// The site file at start says whether the deploy agent runs.
		if inv, _ := loader.Load(os.DirFS(a.local)); inv != nil {
			in.site = inv.Site
		}
		return in, nil
	}
	return buildGitIO(ctx, a, env, loader, metrics, log)
}

// buildLocalIO follows a working directory and writes status into its
// status/ directory, mirroring nodes/ as in Git; where a status file is now
// is known from the revision last loaded (it re-reads status/).
func buildLocalIO(dir string, log *slog.Logger) inventoryIO {
	layout := &statussink.Layout{}
	sink := statussink.Dir{Dir: filepath.Join(dir, schema.DefaultStatusDir), SubDir: layout.SubDir, Was: layout.Was}
	return inventoryIO{source: localdir.Source{Dir: dir, Logger: log}, sink: sink, track: layout.Track, files: sink}
}

// buildGitIO follows a branch of a Git remote and commits status back
// through a coalescing writer, as the site file of the branch head says.
func buildGitIO(ctx context.Context, a serveArgs, env *Env, loader *schema.Loader, metrics *daemon.Metrics, log *slog.Logger) (inventoryIO, error) {
	gs, err := buildGitSource(a, env, log)
	if err != nil {
		return inventoryIO{}, err
	}
	site, err := headSite(ctx, gs, loader)
	if err != nil {
		return inventoryIO{}, err
	}
	spec := schema.SiteSpec{}
	if site != nil {
		spec = site.Spec
	}
	spec = spec.Defaults()
	// The daemon's own status commits are not new revisions: ignore where
	// the site puts them, as the status committer does.
	if err := gs.SetIgnoreDir(statusIgnoreDir(spec, a.branch)); err != nil {
		return inventoryIO{}, err
	}
	writer, err := buildStatusWriter(a, gs, spec, metrics, log)
	if err != nil {
		return inventoryIO{}, err
	}
	var resume func(*schema.Inventory)
	if b := spec.Status.Branch; b != "" && b != a.branch {
		recorded, err := statusOfBranch(ctx, gs, b, spec.Status.Directory)
		if err != nil {
			return inventoryIO{}, err
		}
		log.Info("status read from the status branch", "branch", b, "nodes", len(recorded))
		var once sync.Once
		resume = func(inv *schema.Inventory) { once.Do(func() { inv.Status = recorded }) }
	}
	sink := &statussink.Git{W: writer}
	countFetch := func(r gitsource.FetchResult) { metrics.Fetches.WithLabelValues(string(r)).Inc() }
	return inventoryIO{
		source: gitsource.Poller{Source: gs, Interval: pollInterval(a.poll, spec), OnFetch: countFetch},
		sink:   sink, track: sink.Track, files: writer, writer: writer, site: site,
		lease: lease.ForRemote(gs), unlock: "metalsync unlock --repo " + a.repo,
		gate:    &sourceGate{gs: gs, loader: &schema.Loader{}},
		history: githistory.Reader{Store: gs},
		resume:  resume,
	}, nil
}

// statusOfBranch reads the status files a separate status branch holds
// under dir (its root for ""); none when the branch does not exist yet.
// An invalid status file stops the start: resuming without it could
// repeat a destructive step its intent records.
func statusOfBranch(ctx context.Context, gs *gitsource.Source, branch, dir string) (map[string]*schema.NodeStatus, error) {
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	head, err := gs.FetchBranch(fctx, branch)
	cancel()
	if errors.Is(err, gitsource.ErrNoBranch) {
		return map[string]*schema.NodeStatus{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("status branch %s: %w", branch, err)
	}
	tree, err := gs.Tree(head.String())
	if err != nil {
		return nil, fmt.Errorf("status branch %s: %w", branch, err)
	}
	// The loader reads status from the site's status directory: give it a
	// site file naming dir, so that diagnostics name the branch's paths; a
	// branch holding the files at its root is mounted at status/.
	root, mount := path.Clean(dir), path.Clean(dir)
	files := fstest.MapFS{}
	if root == "." {
		mount = schema.DefaultStatusDir
	} else {
		files[schema.SiteFile] = &fstest.MapFile{Data: fmt.Appendf(nil, "apiVersion: %s\nkind: Site\nmetadata: {name: status-branch}\nspec:\n  status: {directory: %q}\n", schema.APIVersion, root)}
	}
	err = fs.WalkDir(tree, root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(tree, p)
		if err != nil {
			return err
		}
		rel := p
		if root != "." {
			rel = strings.TrimPrefix(p, root+"/")
		}
		files[path.Join(mount, rel)] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("status branch %s: %w", branch, err)
	}
	inv, diags := (&schema.Loader{}).Load(files)
	if diags.HasErrors() {
		return nil, fmt.Errorf("status branch %s holds invalid status files (fix or remove them on that branch):\n%s", branch, diags)
	}
	return inv.Status, nil
}

// statusIgnoreDir is the top-level directory the daemon's status commits
// change on the followed branch: the first element of the status
// directory, or "" when status goes to another branch.
func statusIgnoreDir(spec schema.SiteSpec, followed string) string {
	st := spec.Status
	if st == nil || (st.Branch != "" && st.Branch != followed) {
		return ""
	}
	first, _, _ := strings.Cut(path.Clean(st.Directory), "/")
	if first == "." {
		return ""
	}
	return first
}

func buildGitSource(a serveArgs, env *Env, log *slog.Logger) (*gitsource.Source, error) {
	return gitsource.New(gitsource.Config{URL: a.repo, Branch: a.branch, Auth: a.auth(env), Dir: a.cacheDir, IgnoreDir: schema.DefaultStatusDir, Logger: log})
}

// auth is the credentials for the inventory's remote.
// headSite reads the site file of the branch head, which says where status
// goes and who signs it, once before starting. It is nil when the head has
// no valid site file.
func headSite(ctx context.Context, gs *gitsource.Source, loader *schema.Loader) (*schema.Site, error) {
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	head, _, err := gs.Fetch(fctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("first fetch: %w", err)
	}
	fsys, err := gs.Tree(head)
	if err != nil {
		return nil, err
	}
	inv, _ := loader.Load(fsys)
	if inv == nil {
		return nil, nil
	}
	return inv.Site, nil
}

func buildStatusWriter(a serveArgs, gs *gitsource.Source, site schema.SiteSpec, metrics *daemon.Metrics, log *slog.Logger) (*gitstatus.Writer, error) {
	c, err := gitstatus.New(gitstatus.Config{Source: gs, Branch: site.Status.Branch, Dir: site.Status.Directory, Author: statusAuthor(a, site), Logger: log})
	if err != nil {
		return nil, err
	}
	return gitstatus.NewWriter(c, gitstatus.WriterConfig{Interval: a.statusInterval, OnFlush: flushReporter(metrics, log)}), nil
}

// statusAuthor signs status commits: the flags, else the site's git
// settings, else metalsync.
func statusAuthor(a serveArgs, site schema.SiteSpec) gitstatus.Identity {
	author := gitstatus.Identity{Name: "metalsync", Email: "metalsync@localhost"}
	if site.Git != nil {
		author.Name = cmp.Or(site.Git.AuthorName, author.Name)
		author.Email = cmp.Or(site.Git.AuthorEmail, author.Email)
	}
	author.Name = cmp.Or(a.authorName, author.Name)
	author.Email = cmp.Or(a.authorEmail, author.Email)
	return author
}

// pollInterval is --poll, else the site's sync.pollInterval, else 30s.
func pollInterval(flag time.Duration, site schema.SiteSpec) time.Duration {
	if flag != 0 {
		return flag
	}
	if site.Sync != nil {
		if d, err := time.ParseDuration(site.Sync.PollInterval); err == nil && d > 0 {
			return d
		}
	}
	return 30 * time.Second
}

// flushReporter logs and counts the status writer's commits.
func flushReporter(metrics *daemon.Metrics, log *slog.Logger) func(gitstatus.Result, error) {
	return func(r gitstatus.Result, err error) {
		if err != nil {
			log.Warn("status commit failed; will retry", "err", err)
			return
		}
		if r.Commit != "" {
			metrics.StatusCommits.Inc()
			log.Info("status committed", "commit", r.Commit[:12], "nodes", len(r.Changed), "retries", r.Retries)
		}
		metrics.PushRetries.Add(float64(r.Retries))
	}
}

// buildExecutor returns the executor without its status sink, which goes
// through the daemon (see buildDaemon).
func buildExecutor(a serveArgs, env *Env, cur *currentRevision, media apply.Media, agents *agentStack, metrics *daemon.Metrics, log *slog.Logger) *apply.Executor {
	agent := &agentsim.Agent{}
	return &apply.Executor{
		Registry: defaultRegistry(),
		Credentials: credentials.Resolver{Getenv: env.Getenv, RepoDir: a.local, ReadFile: func(name string) ([]byte, error) {
			if filepath.IsAbs(name) || a.local != "" {
				return os.ReadFile(name)
			}
			return cur.ReadFile(name) // an ageFile of the revision being reconciled
		}, Reserved: slices.DeleteFunc(append([]string{a.webhookSecretEnv}, a.secretEnvs()...), func(s string) bool { return s == "" })},
		AgentFor: func(driver string) apply.Agent {
			switch {
			case a.simulateAgent || driver == "fake":
				return agent
			case agents != nil:
				return agents.srv.Agent()
			}
			return nil
		},
		Media:    media,
		Observer: apply.Observers{apply.LogObserver{Logger: log}, daemon.NewExecutorObserver(metrics, cur.Driver)},
	}
}

// buildDaemon returns the daemon following in's source, and completes ex
// with the status sink: in's, wrapped by the daemon so that its observed
// state follows every write.
func buildDaemon(in inventoryIO, ex *apply.Executor, cur *currentRevision, loader *schema.Loader, agents *agentStack, metrics *daemon.Metrics, trigger <-chan struct{}, log *slog.Logger) (*daemon.Daemon, error) {
	d, err := daemon.New(daemon.Config{Source: in.source, Executor: ex, Metrics: metrics, Logger: log, Trigger: trigger, Loader: loader,
		Invalid: &statussink.InvalidReport{Files: in.files, Log: log},
		Gate:    in.gate,
		OnLoad: func(_ string, inv *schema.Inventory, fsys fs.FS) {
			if in.resume != nil {
				in.resume(inv)
			}
			cur.set(inv, fsys)
			in.track(inv)
			if agents != nil {
				agents.allowFromStatus(inv)
			}
		}})
	if err != nil {
		return nil, err
	}
	ex.Sink = d.Sink(in.sink)
	return d, nil
}

// buildHTTP returns the handler of the daemon's one listener: metrics,
// health, boot media and, with --webhook-secret-env, the webhook.
func buildHTTP(a serveArgs, env *Env, d *daemon.Daemon, in inventoryIO, agents *agentStack, media http.Handler, metrics *daemon.Metrics, trigger chan struct{}, log *slog.Logger) (http.Handler, error) {
	pageCfg := fleetpage.Config{Fleet: d, History: in.history, Logger: log, Refresh: a.pageRefresh}
	if agents != nil {
		pageCfg.AgentLogs = agents.srv
	}
	page, err := fleetpage.New(pageCfg)
	if err != nil {
		return nil, err
	}
	handlers := daemon.Handlers{Metrics: metrics, Ready: d.Ready, Media: media, Fleet: page}
	if a.webhookSecretEnv != "" {
		key := env.Getenv(a.webhookSecretEnv)
		if key == "" {
			return nil, fmt.Errorf("--webhook-secret-env %s: the variable is empty", a.webhookSecretEnv)
		}
		wh, err := newWebhook(key, a.branch, trigger, metrics, log)
		if err != nil {
			return nil, err
		}
		handlers.Webhook = wh
	}
	return handlers.Mux(), nil
}

// listenAddr is --listen, else the site's first listen address, else
// [::]:8080.
func listenAddr(a serveArgs, site *schema.Site) string {
	if a.listen != "" {
		return a.listen
	}
	if site != nil && len(site.Spec.Listen) > 0 {
		return site.Spec.Listen[0]
	}
	return "[::]:8080"
}

// running is a wired daemon with its listener and status writer.
type running struct {
	d        *daemon.Daemon
	writer   *gitstatus.Writer // nil for --local
	listen   string
	mux      http.Handler
	mediaDir string
	media    *sitePublisher
	agents   *agentStack // nil without a deploy agent
	// release gives the fleet's lease back; closeBMCs logs out of every
	// kept BMC session.
	release   func() error
	closeBMCs func(context.Context) error
}

// run serves until ctx ends or a part fails, then stops every part: the
// status writer last, so that the final statuses are committed.
func (r *running) run(ctx context.Context, log *slog.Logger, started func(served)) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	fail := func(err error) {
		errs <- err
		stop()
	}
	if r.writer != nil {
		wg.Go(func() { _ = r.writer.Run(writerCtx, 30*time.Second) })
	}
	wg.Go(func() {
		if err := r.serveHTTP(runCtx, fail, log, started); err != nil {
			fail(err)
		}
	})
	if r.agents != nil {
		wg.Go(func() {
			if err := r.agents.serve(runCtx, nil); err != nil {
				fail(err)
			}
		})
	}
	all := []error{r.d.Run(runCtx)}
	stop()
	stopWriter()
	wg.Wait()
	// The lease is held until the last status commit is pushed.
	if r.release != nil {
		if err := r.release(); err != nil {
			log.Warn("release the fleet lease", "err", err)
		}
	}
	if r.closeBMCs != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := r.closeBMCs(cctx); err != nil {
			log.Warn("close BMC sessions", "err", err)
		}
		cancel()
	}
	close(errs)
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// serveHTTP serves the listener; once it is up, the media server learns
// its address and started is told.
func (r *running) serveHTTP(ctx context.Context, fail func(error), log *slog.Logger, started func(served)) error {
	return daemon.Serve(ctx, r.listen, r.mux, log, func(addr net.Addr) {
		log.Info("listening", "addr", addr.String())
		srv, err := mediaserver.New(mediaserver.Config{Dir: r.mediaDir, BaseURL: mediaserver.BaseURL("http", addr), Log: log})
		if err != nil {
			fail(err)
			return
		}
		r.media.setServer(srv)
		if started != nil {
			started(served{daemon: r.d, addr: addr, writer: r.writer})
		}
	})
}

// buildServeAgent starts the deploy agent's side when the site asks for
// it (agent.image and agent.url); nil otherwise.
func buildServeAgent(a serveArgs, env *Env, site *schema.Site, cur *currentRevision, metrics *daemon.Metrics, log *slog.Logger) (*agentStack, error) {
	if !agentConfigured(site) {
		return nil, nil
	}
	return buildAgentStack(site, stateDir(a.stateDir, env), env.Getenv, cur.Node, metrics.Registry, log)
}

// stateDir is --state-dir, else systemd's $STATE_DIRECTORY, else
// ~/.local/state/metalsync.
func stateDir(flag string, env *Env) string {
	if flag != "" {
		return flag
	}
	if d := env.Getenv("STATE_DIRECTORY"); d != "" {
		return d
	}
	if d := env.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "metalsync")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state", "metalsync")
}

// sourceGate is the rights check over the Git source's object store: the
// commits fetched since the last good revision. Its loader is its own, so
// that the daemon's memory of validated files follows only the head.
type sourceGate struct {
	gs     *gitsource.Source
	loader *schema.Loader
}

func (g *sourceGate) Check(ctx context.Context, goodRev string, good *schema.Inventory, rev string, inv *schema.Inventory) (schema.Diagnostics, error) {
	var diags schema.Diagnostics
	err := g.gs.WithStorer(func(st storage.Storer) error {
		var err error
		diags, err = (&gitreview.Gate{Objects: st, Loader: g.loader}).Check(ctx, goodRev, good, rev, inv)
		return err
	})
	return diags, err
}
