package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"metalsync.dev/metalsync/agent/client"
	"metalsync.dev/metalsync/agent/media"
	"metalsync.dev/metalsync/agent/netsetup"
	"metalsync.dev/metalsync/agentapi"
)

type logger = *slog.Logger

// deps is what main wires in: the steps runner comes from agent/steps,
// tests pass their own.
type deps struct {
	version   string
	newRunner func(*client.Client, logger) client.Runner
}

// configFS opens the media files in dir: the layout of the media
// (openstack/latest/...) or the two files directly.
func configFS(dir string) fs.FS {
	if _, err := os.Stat(filepath.Join(dir, media.MetaDataPath)); err == nil {
		return os.DirFS(dir)
	}
	return flatFS{os.DirFS(dir)}
}

// flatFS serves openstack/latest/x from x.
type flatFS struct{ fs.FS }

func (f flatFS) Open(name string) (fs.File, error) { return f.FS.Open(filepath.Base(name)) }

// runLocal is one run outside PID 1.
func runLocal(ctx context.Context, o options, stdout io.Writer, d deps) error {
	logs := client.NewLogBuffer(1 << 20)
	log := slog.New(slog.NewTextHandler(io.MultiWriter(stdout, logs), nil))
	fmt.Fprintf(stdout, "metalsync-agent: %s starting\n", d.version)
	cfg, err := media.Load(configFS(o.configDir))
	if err != nil {
		return err
	}
	log.Info("config read", "config", cfg)
	if o.network {
		if cfg.Network == nil {
			return errors.New("--network: the config has no network_data.json")
		}
		nctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := netsetup.Setup(nctx, cfg.Network, netsetup.Options{ResolvConf: o.resolvConf, Log: log})
		cancel()
		if err != nil {
			return err
		}
	}
	return serve(ctx, cfg, logs, log, stdout, d, &bootState{})
}

// bootState is what one boot knows across client attempts: its id and
// every command it ran, so none runs twice.
type bootState struct {
	id      string
	results []agentapi.Result
}

// serve runs the client loop for cfg until ctx ends or the daemon refuses
// the token.
func serve(ctx context.Context, cfg *media.Config, logs *client.LogBuffer, log *slog.Logger, console io.Writer, d deps, st *bootState) error {
	c, err := client.New(client.Config{
		URL: cfg.URL, Node: cfg.Node, Token: cfg.Token, CA: cfg.CA, Version: d.version,
		Log: log, Logs: logs, BootID: st.id, Results: st.results,
		OnReady: func() { fmt.Fprintf(console, "metalsync-agent: ready node=%s\n", cfg.Node) },
	})
	if err != nil {
		return err
	}
	st.id = c.BootID()
	defer func() {
		st.results = c.Results()
		c.Close()
	}()
	return c.Run(ctx, d.newRunner(c, log.With("component", "steps")))
}
