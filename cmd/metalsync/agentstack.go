package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/agentapi/server"
	"metalsync.dev/metalsync/imagecache"
	"metalsync.dev/metalsync/render"
	"metalsync.dev/metalsync/render/mediaserver"
	"metalsync.dev/metalsync/schema"
)

// agentKeyEnv holds the site's agent key (hex, at least 32 bytes) when it
// is not kept in the state directory.
const agentKeyEnv = "METALSYNC_AGENT_KEY"

// agentStack is the daemon's side of the deploy agent: the HTTPS listener
// agents on nodes call back on, the image cache write_image serves from,
// and the agent ISO template every node's boot media is a view of.
type agentStack struct {
	srv    *server.Server
	key    []byte
	ca     *server.CA
	tmpl   *mediaserver.Template
	images *imagecache.Cache
	url    string // what nodes call (the site's agent.url)
	listen string
	cert   tls.Certificate
	log    *slog.Logger

	allowOnce sync.Once
}

// agentConfigured reports whether the site runs the real deploy agent.
func agentConfigured(site *schema.Site) bool {
	return site != nil && site.Spec.Agent != nil && site.Spec.Agent.Image != "" && site.Spec.Agent.URL != ""
}

// buildAgentStack opens what the site's agent settings name and keeps its
// state (CA, key, image cache, agent logs) in stateDir. node finds a node
// of the revision being reconciled (for its config drive).
func buildAgentStack(site *schema.Site, stateDir string, getenv func(string) string, node func(string) *schema.Node, reg prometheus.Registerer, log *slog.Logger) (*agentStack, error) {
	set := site.Spec.Agent
	u, err := url.Parse(set.URL)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("site agent.url %q: want https://host:port", set.URL)
	}
	listen := set.Listen
	if listen == "" {
		listen = net.JoinHostPort("", cmp.Or(u.Port(), "443"))
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent state directory: %w", err)
	}
	key, err := agentKey(getenv, stateDir)
	if err != nil {
		return nil, err
	}
	ca, err := server.LoadOrCreateCA(filepath.Join(stateDir, "agent-ca"))
	if err != nil {
		return nil, fmt.Errorf("agent CA: %w", err)
	}
	cert, err := ca.ServerCert([]string{u.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("agent listener certificate: %w", err)
	}
	images, err := imagecache.New(filepath.Join(stateDir, "images"), imagecache.Options{Log: log, MaxBytes: set.ImageCacheBytes(), Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	tmpl, err := mediaserver.LoadTemplate(set.Image)
	if err != nil {
		images.Close()
		return nil, fmt.Errorf("site agent.image: %w (build it with `metalsync agent-image build`)", err)
	}
	siteDHCP := site.Spec.DHCP
	srv, err := server.New(server.Config{Key: key, Log: log, LogDir: filepath.Join(stateDir, "agent-logs"), Images: images, Registerer: reg,
		ConfigDrive: func(ctx context.Context, name string) ([]byte, error) {
			n := node(name)
			if n == nil {
				return nil, fmt.Errorf("node %s is not in the inventory", name)
			}
			var b bytes.Buffer
			if _, err := render.Write(&b, render.ConfigDrive, render.NodeFromSchema(n, siteDHCP), time.Unix(0, 0).UTC()); err != nil {
				return nil, fmt.Errorf("node %s: config drive: %w", name, err)
			}
			return b.Bytes(), nil
		}})
	if err != nil {
		tmpl.Close()
		images.Close()
		return nil, err
	}
	return &agentStack{srv: srv, key: key, ca: ca, tmpl: tmpl, images: images, url: u.Scheme + "://" + u.Host, listen: listen, cert: cert, log: log}, nil
}

// agentKey is the key agent tokens are derived from: METALSYNC_AGENT_KEY
// (hex), else agent.key in the state directory, made on first use. It is
// never in Git: a token derived from it opens a node's agent session.
func agentKey(getenv func(string) string, stateDir string) ([]byte, error) {
	if v := strings.TrimSpace(getenv(agentKeyEnv)); v != "" {
		k, err := hex.DecodeString(v)
		if err != nil || len(k) < server.MinKeyLen {
			return nil, fmt.Errorf("%s: want at least %d bytes as hex (openssl rand -hex 32)", agentKeyEnv, server.MinKeyLen)
		}
		return k, nil
	}
	path := filepath.Join(stateDir, "agent.key")
	k, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k = make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("agent key: %w", err)
		}
		if err := os.WriteFile(path, k, 0o600); err != nil {
			return nil, fmt.Errorf("agent key: %w", err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("agent key %s: readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	if len(k) < server.MinKeyLen {
		return nil, fmt.Errorf("agent key %s: %d bytes, want at least %d", path, len(k), server.MinKeyLen)
	}
	return k, nil
}

// mediaAgent is what a node's boot media tells its agent: where to call,
// the token for this publication, and the CA to trust. Publishing opens
// the node's agent session.
func (a *agentStack) mediaAgent(node, epoch string) (*render.Agent, error) {
	a.srv.Allow(node, epoch)
	return &render.Agent{URL: a.url, Token: agentapi.Token(a.key, node, epoch), CA: string(a.ca.PEM())}, nil
}

// allowFromStatus reopens the sessions of agents booted before a restart:
// every node whose recorded status still has agent media in. Only the
// first revision counts: later ones may carry status older than what this
// daemon has since ejected.
func (a *agentStack) allowFromStatus(inv *schema.Inventory) {
	a.allowOnce.Do(func() {
		for name, st := range inv.Status {
			if st == nil || st.Status.Media == nil || st.Status.Media.Epoch == "" {
				continue
			}
			a.srv.Allow(name, st.Status.Media.Epoch)
			a.log.Info("agent session reopened from status", "node", name)
		}
	})
}

// serve runs the agent listener until ctx ends.
func (a *agentStack) serve(ctx context.Context, onListen func(net.Addr)) error {
	ln, err := net.Listen("tcp", a.listen)
	if err != nil {
		return fmt.Errorf("agent listener: %w", err)
	}
	// No write timeout: long polls and image downloads take long.
	// Handshakes that fail (scanners, half-open relays) are the
	// server's business, not an operator's: debug level.
	hs := &http.Server{Handler: a.srv, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:  slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{a.cert}, MinVersion: tls.VersionTLS12}}
	a.log.Info("agent listener", "addr", ln.Addr().String(), "url", a.url)
	if onListen != nil {
		onListen(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("agent listener: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	return nil
}

func (a *agentStack) close() {
	a.images.Close()
	a.tmpl.Close()
}
