package redfish

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// PoolOptions bound the connections of a Pool.
type PoolOptions struct {
	// MaxConnsPerHost caps the open connections to one BMC address
	// (host:port); 0 means 4. A BMC serves few clients well: a small cap
	// protects it, and throughput comes from many BMCs at once.
	MaxConnsPerHost int
	// MaxIdleConns caps the idle connections kept across all BMCs of one
	// TLS configuration; 0 means 4096.
	MaxIdleConns int
	// IdleConnTimeout closes connections idle this long; 0 means 90 s.
	IdleConnTimeout time.Duration
	// DialTimeout bounds the TCP connect; 0 means 10 s.
	DialTimeout time.Duration
	// Dial, when set, replaces the TCP dialer (tests count connections with
	// it).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Pool is one shared, bounded HTTP transport layer for many BMCs, and the
// keeper of one session per BMC across opens (see Pool.Open, Pool.Close).
//
// Connections are pooled per distinct TLS configuration: BMCs that trust the
// same CA (or all opt out of verification) share one http.Transport and its
// keep-alive connections; a BMC with its own CA gets a transport of its own.
// A connection that was verified against one BMC's CA is therefore never
// handed to a BMC that trusts another, which a single transport with a
// per-host DialTLSContext could not promise when two nodes share an address
// (http.Transport keys idle connections by address only). Sites have few
// distinct CAs, so this stays a handful of transports for a whole fleet.
type Pool struct {
	opts PoolOptions

	mu         sync.Mutex
	transports map[tlsKey]*http.Transport // guarded by mu
	conns      map[connKey]*connEntry     // guarded by mu: kept sessions
	closed     bool                       // guarded by mu
}

// tlsKey identifies a TLS configuration: verification on or off, and the
// digest of the trusted CA bundle (zero for the system roots).
type tlsKey struct {
	insecure bool
	ca       [sha256.Size]byte
}

// NewPool returns an empty pool; transports are made on first use.
func NewPool(opts PoolOptions) *Pool {
	if opts.MaxConnsPerHost <= 0 {
		opts.MaxConnsPerHost = 4
	}
	if opts.MaxIdleConns <= 0 {
		opts.MaxIdleConns = 4096
	}
	if opts.IdleConnTimeout <= 0 {
		opts.IdleConnTimeout = 90 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	return &Pool{opts: opts, transports: map[tlsKey]*http.Transport{}, conns: map[connKey]*connEntry{}}
}

// CloseIdleConnections closes the idle connections of every transport.
func (p *Pool) CloseIdleConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
}

// transport returns the transport for one TLS configuration.
func (p *Pool) transport(insecure bool, caPEM []byte) (*http.Transport, error) {
	key := tlsKey{insecure: insecure}
	var roots *x509.CertPool
	if len(caPEM) > 0 && !insecure {
		key.ca = sha256.Sum256(caPEM)
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("CA bundle holds no PEM certificate")
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.transports[key]; ok {
		return t, nil
	}
	dialer := &net.Dialer{Timeout: p.opts.DialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		// BMCs sit on management networks: never route them through a
		// proxy taken from the environment.
		Proxy:       nil,
		DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    roots,
			// The operator opted out for this BMC (site setting).
			InsecureSkipVerify: insecure, //nolint:gosec
		},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        p.opts.MaxIdleConns,
		MaxIdleConnsPerHost: p.opts.MaxConnsPerHost,
		MaxConnsPerHost:     p.opts.MaxConnsPerHost,
		IdleConnTimeout:     p.opts.IdleConnTimeout,
		// BMC response bodies are small JSON; compression costs BMC CPU.
		DisableCompression: true,
	}
	if p.opts.Dial != nil {
		t.DialContext = p.opts.Dial
	}
	p.transports[key] = t
	return t, nil
}
