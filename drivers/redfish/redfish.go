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
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
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

// BMC is one open Redfish service and the system it manages.
type BMC struct {
	base        *url.URL // scheme://host[:port]
	client      *http.Client
	callTimeout time.Duration
	username    string
	password    secret.Value
	ownPool     *Pool // set when Open made a pool for this BMC alone

	// Set by Open, then read-only.
	sessionsPath string
	root         serviceRoot
	systemPath   string

	loginMu sync.Mutex // serializes logins

	mu          sync.Mutex
	token       string        // guarded by mu
	sessionPath string        // guarded by mu
	basic       bool          // guarded by mu
	closed      bool          // guarded by mu
	media       []mediaDevice // guarded by mu: discovered once
}

var (
	_ drivers.BMC             = (*BMC)(nil)
	_ drivers.BootSetter      = (*BMC)(nil)
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

// Open opens one BMC with a connection pool of its own, closed by Close.
func Open(ctx context.Context, cfg drivers.Config) (drivers.BMC, error) {
	p := NewPool(PoolOptions{})
	b, err := p.open(ctx, cfg)
	if err != nil {
		p.CloseIdleConnections()
		return nil, err
	}
	b.ownPool = p
	return b, nil
}

// Open opens one BMC on the pool's shared transports. It has the
// drivers.Constructor signature, so a registry can hold p.Open.
func (p *Pool) Open(ctx context.Context, cfg drivers.Config) (drivers.BMC, error) {
	b, err := p.open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (p *Pool) open(ctx context.Context, cfg drivers.Config) (*BMC, error) {
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
	b := &BMC{
		base:        &url.URL{Scheme: ep.Scheme, Host: ep.Host},
		client:      &http.Client{Transport: t, CheckRedirect: noRedirect},
		callTimeout: timeout,
		username:    cfg.Username,
		password:    cfg.Password,
		systemPath:  systemPath,
	}
	if err := b.discover(ctx); err != nil {
		return nil, fmt.Errorf("redfish: open: %w", err)
	}
	return b, nil
}

// noRedirect stops redirects: a redirect could carry the credentials to
// another host, and BMCs have no reason to send one for API paths.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// discover reads the service root, logs in and finds the system. The
// service root is unauthenticated by the standard; a BMC that answers 401
// anyway gets a login at the standard sessions path first.
func (b *BMC) discover(ctx context.Context) error {
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
	if b.systemPath != "" {
		return nil
	}
	err = b.findSystem(ctx)
	if err != nil {
		_ = b.logout(ctx) // do not leak the session of a failed open
	}
	return err
}

// findSystem picks the only system of the service.
func (b *BMC) findSystem(ctx context.Context) error {
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
		b.systemPath = strings.TrimSuffix(members[0], "/")
		return nil
	default:
		return fmt.Errorf("the BMC manages %d systems (%s): put one in the address, e.g. redfish+%s://%s%s",
			len(members), strings.Join(members, ", "), b.base.Scheme, b.base.Host, members[0])
	}
}

// Close deletes the session and, for a BMC opened alone, its connections.
func (b *BMC) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	err := b.logout(ctx)
	if b.ownPool != nil {
		b.ownPool.CloseIdleConnections()
	}
	if err != nil {
		return fmt.Errorf("redfish: close: %w", err)
	}
	return nil
}

// System returns the path of the managed system.
func (b *BMC) System() string { return b.systemPath }

// collection returns the member links of a collection, following
// Members@odata.nextLink.
func (b *BMC) collection(ctx context.Context, path string) ([]string, error) {
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
