// Package redfish is the Redfish BMC driver. It speaks HTTP itself and
// takes its vocabulary (power states, reset types, boot sources, media and
// task types) from gofish's schemas package. gofish's APIClient is not used:
// it keeps a ctx in the client, does not renew expired sessions, its Logout
// closes the idle connections of a shared transport (every BMC's), and its
// collection errors lose the cause (no Unwrap), so ErrAuth and
// ErrUnreachable could not be told apart.
//
// Costs are kept to what a fleet can afford: Open reads the service root,
// logs in and finds the system once; a power read is then one GET of the
// system; every other operation reads only the resources it needs.
package redfish

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/drivers"
)

// DefaultCallTimeout bounds one HTTP call when the config sets none.
const DefaultCallTimeout = 30 * time.Second

// Capabilities are what the driver can do on a BMC that supports everything.
func Capabilities() []drivers.Capability {
	return []drivers.Capability{
		drivers.CapPower, drivers.CapBoot, drivers.CapMedia, drivers.CapInventory,
		drivers.CapBIOS, drivers.CapRAID, drivers.CapFirmware,
	}
}

// BMC is one open Redfish service and the system it manages: a handle on
// a conn, the state kept per BMC (session, discovered links).
//
// A BMC opened with Open has a conn and connections of its own, and Close
// logs out. A BMC opened with Pool.Open shares the conn the pool keeps for
// that address and credentials: Close only releases the handle, the
// session stays for the next Open (the executor opens and closes drivers
// every pass), and Pool.Close logs out at shutdown.
type BMC struct {
	*conn
	ownPool *Pool // set when Open made a pool for this BMC alone
	closed  atomic.Bool
}

// conn is what is kept per BMC between opens.
type conn struct {
	base        *url.URL // scheme://host[:port]
	client      *http.Client
	callTimeout time.Duration
	username    string
	password    secret.Value

	// Set by discover, then read-only.
	sessionsPath string
	root         serviceRoot

	loginMu sync.Mutex // serializes logins

	mu          sync.Mutex
	systemPath  string        // guarded by mu: canonical after a redirect
	token       string        // guarded by mu
	sessionPath string        // guarded by mu
	basic       bool          // guarded by mu
	media       []mediaDevice // guarded by mu: discovered once
	systems     int           // guarded by mu: members of Systems, 0 until counted
}

var (
	_ drivers.BMC             = (*BMC)(nil)
	_ drivers.BootSetter      = (*BMC)(nil)
	_ drivers.BootReader      = (*BMC)(nil)
	_ drivers.MediaManager    = (*BMC)(nil)
	_ drivers.InventoryReader = (*BMC)(nil)
	_ drivers.BIOSManager     = (*BMC)(nil)
	_ drivers.RAIDManager     = (*BMC)(nil)
	_ drivers.FirmwareUpdater = (*BMC)(nil)
)

// serviceRoot holds the links of /redfish/v1/ the driver uses.
type serviceRoot struct {
	Systems        link
	Managers       link
	UpdateService  link
	SessionService link
	Links          struct {
		Sessions link
	}
}

// link is a Redfish reference.
type link struct {
	ID string `json:"@odata.id"`
}

// Open opens one BMC with a connection pool and a session of its own,
// both closed by Close.
func Open(ctx context.Context, cfg drivers.Config) (drivers.BMC, error) {
	p := NewPool(PoolOptions{})
	c, err := p.newConn(ctx, cfg)
	if err != nil {
		p.CloseIdleConnections()
		return nil, err
	}
	return &BMC{conn: c, ownPool: p}, nil
}

// Open opens one BMC on the pool's shared transports, reusing the session
// the pool keeps for the same address, user and TLS settings (a changed
// password logs in anew). It has the drivers.Constructor signature, so a
// registry can hold p.Open, and p.Close as the entry's Close.
func (p *Pool) Open(ctx context.Context, cfg drivers.Config) (drivers.BMC, error) {
	key, err := connKeyOf(cfg)
	if err != nil {
		return nil, fmt.Errorf("redfish: open: %w", err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("redfish: open: pool closed")
	}
	e := p.conns[key]
	if e == nil {
		e = &connEntry{}
		p.conns[key] = e
	}
	p.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c != nil && e.c.password == cfg.Password {
		return &BMC{conn: e.c}, nil
	}
	if old := e.c; old != nil { // the password changed: the old session goes
		e.c = nil
		_ = old.logout(ctx)
	}
	c, err := p.newConn(ctx, cfg)
	if err != nil {
		return nil, err
	}
	e.c = c
	return &BMC{conn: c}, nil
}

// connKey identifies what a kept session is valid for.
type connKey struct {
	endpoint string // scheme://host/path as configured
	username string
	insecure bool
	ca       [sha256.Size]byte
	timeout  time.Duration
}

// connEntry is one kept conn; mu serializes opening it.
type connEntry struct {
	mu sync.Mutex
	c  *conn // guarded by mu; nil until opened
}

func connKeyOf(cfg drivers.Config) (connKey, error) {
	if cfg.Endpoint == nil {
		return connKey{}, errors.New("no endpoint")
	}
	k := connKey{endpoint: cfg.Endpoint.String(), username: cfg.Username, insecure: cfg.InsecureSkipVerify, timeout: cfg.CallTimeout}
	if len(cfg.CAPEM) > 0 {
		k.ca = sha256.Sum256(cfg.CAPEM)
	}
	return k, nil
}

// Close logs out of every session the pool kept and closes its idle
// connections. Opens after Close fail. The daemon calls it (through
// drivers.Registry.Close) at shutdown.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	entries := p.conns
	p.conns = map[connKey]*connEntry{}
	p.mu.Unlock()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 32)
	)
	for _, e := range entries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			e.mu.Lock()
			c := e.c
			e.c = nil
			e.mu.Unlock()
			if c == nil {
				return
			}
			if err := c.logout(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", c.base.Host, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	p.CloseIdleConnections()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("redfish: close: %w", err)
	}
	return nil
}

// Sessions returns how many BMC conns the pool keeps.
func (p *Pool) Sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *Pool) newConn(ctx context.Context, cfg drivers.Config) (*conn, error) {
	if cfg.Endpoint == nil {
		return nil, errors.New("redfish: open: no endpoint")
	}
	ep := cfg.Endpoint
	if ep.Scheme != "https" && ep.Scheme != "http" {
		return nil, fmt.Errorf("redfish: open: endpoint scheme %q is not http or https", ep.Scheme)
	}
	if ep.Host == "" {
		return nil, errors.New("redfish: open: endpoint has no host")
	}
	systemPath := strings.TrimSuffix(ep.Path, "/")
	if systemPath != "" && !strings.HasPrefix(systemPath, "/redfish/v1/Systems/") {
		return nil, fmt.Errorf("redfish: open: path %q is not /redfish/v1/Systems/<id>", ep.Path)
	}
	t, err := p.transport(cfg.InsecureSkipVerify, cfg.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("redfish: open: %w", err)
	}
	timeout := cfg.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	c := &conn{
		base:        &url.URL{Scheme: ep.Scheme, Host: ep.Host},
		client:      &http.Client{Transport: t, CheckRedirect: noRedirect},
		callTimeout: timeout,
		username:    cfg.Username,
		password:    cfg.Password,
		systemPath:  systemPath,
	}
	if err := c.discover(ctx); err != nil {
		return nil, fmt.Errorf("redfish: open: %w", err)
	}
	return c, nil
}

// noRedirect hands redirects to conn.do, which follows them only on the
// BMC's own scheme and host: a redirect must not carry the credentials to
// another host.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// discover reads the service root, logs in and finds the system. The
// service root is unauthenticated by the standard; a BMC that answers 401
// anyway gets a login at the standard sessions path first.
func (b *conn) discover(ctx context.Context) error {
	const rootPath = "/redfish/v1/"
	resp, err := b.do(ctx, request{method: http.MethodGet, path: rootPath, noAuth: true})
	loggedIn := false
	if statusIs(err, http.StatusUnauthorized) && b.username != "" {
		b.sessionsPath = "/redfish/v1/SessionService/Sessions"
		if err := b.login(ctx); err != nil {
			return err
		}
		loggedIn = true
		resp, err = b.do(ctx, request{method: http.MethodGet, path: rootPath})
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.body, &b.root); err != nil {
		return fmt.Errorf("GET %s: not a Redfish service root: %w", rootPath, err)
	}
	if !loggedIn {
		switch {
		case b.root.Links.Sessions.ID != "":
			b.sessionsPath = b.root.Links.Sessions.ID
		case b.root.SessionService.ID != "":
			b.sessionsPath = "/redfish/v1/SessionService/Sessions"
		}
		if err := b.login(ctx); err != nil {
			return err
		}
	}
	if b.system() != "" {
		return nil
	}
	err = b.findSystem(ctx)
	if err != nil {
		_ = b.logout(ctx) // do not leak the session of a failed open
	}
	return err
}

// findSystem picks the only system of the service.
func (b *conn) findSystem(ctx context.Context) error {
	if b.root.Systems.ID == "" {
		return fmt.Errorf("service root lists no Systems: %w", drivers.ErrUnsupported)
	}
	members, err := b.collection(ctx, b.root.Systems.ID)
	if err != nil {
		return fmt.Errorf("list systems: %w", err)
	}
	switch len(members) {
	case 0:
		return fmt.Errorf("%s has no members", b.root.Systems.ID)
	case 1:
		b.mu.Lock()
		b.systemPath, b.systems = strings.TrimSuffix(members[0], "/"), 1
		b.mu.Unlock()
		return nil
	default:
		return fmt.Errorf("the BMC manages %d systems (%s): put one in the address, e.g. redfish+%s://%s%s",
			len(members), strings.Join(members, ", "), b.base.Scheme, b.base.Host, members[0])
	}
}

// Close releases the BMC. One opened alone logs out and closes its
// connections; one opened on a Pool leaves the session to the pool.
func (b *BMC) Close(ctx context.Context) error {
	if b.closed.Swap(true) || b.ownPool == nil {
		return nil
	}
	err := b.logout(ctx)
	b.ownPool.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("redfish: close: %w", err)
	}
	return nil
}

// System returns the path of the managed system.
func (b *BMC) System() string { return b.system() }

// system returns the path of the managed system: as configured or found,
// or where the BMC redirected it.
func (b *conn) system() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.systemPath
}

// moveSystem records the system's canonical path after a GET of it was
// redirected, so later reads cost one request again.
func (b *conn) moveSystem(from, to string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.systemPath == from {
		b.systemPath = strings.TrimSuffix(to, "/")
	}
}

// systemCount returns how many systems the service manages, reading the
// Systems collection the first time.
func (b *conn) systemCount(ctx context.Context) (int, error) {
	b.mu.Lock()
	n := b.systems
	b.mu.Unlock()
	if n > 0 || b.root.Systems.ID == "" {
		return n, nil
	}
	members, err := b.collection(ctx, b.root.Systems.ID)
	if err != nil {
		return 0, fmt.Errorf("list systems: %w", err)
	}
	b.mu.Lock()
	b.systems = len(members)
	b.mu.Unlock()
	return len(members), nil
}

// collection returns the member links of a collection, following
// Members@odata.nextLink.
func (b *conn) collection(ctx context.Context, path string) ([]string, error) {
	var out []string
	for path != "" {
		var doc struct {
			Members  []link
			NextLink string `json:"Members@odata.nextLink"`
		}
		if _, err := b.get(ctx, path, &doc); err != nil {
			return nil, err
		}
		for _, m := range doc.Members {
			if m.ID != "" {
				out = append(out, m.ID)
			}
		}
		if doc.NextLink == path {
			break
		}
		path = doc.NextLink
	}
	return out, nil
}
