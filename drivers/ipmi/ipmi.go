// Package ipmi drives a BMC over IPMI v2.0 LAN (lanplus, RMCP+) with
// github.com/bougou/go-ipmi: chassis power, the boot device and an inventory
// from Get Device ID and FRU. IPMI has no virtual media, BIOS settings,
// RAID or firmware update, so the driver does not implement those
// capabilities and the planner sees it.
//
// One BMC value owns one go-ipmi client and one session and serialises all
// calls on it: go-ipmi clients are not safe for concurrent use.
package ipmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"

	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/drivers"
)

// DefaultPort is the RMCP port.
const DefaultPort = 623

// Defaults for Config fields left zero.
const (
	DefaultCipherSuite = 3
	DefaultCallTimeout = 10 * time.Second
)

// pollInterval is how often SetPower reads the power state back.
const pollInterval = 200 * time.Millisecond

// Capabilities are what the driver implements on every BMC; register them
// with Open.
func Capabilities() []drivers.Capability {
	return []drivers.Capability{drivers.CapPower, drivers.CapBoot, drivers.CapInventory}
}

// BMC is one IPMI BMC with one session.
type BMC struct {
	host        string // host:port, for errors
	port        int
	hostname    string
	user        string
	password    secret.Value
	suite       types.CipherSuiteID
	callTimeout time.Duration

	// sem holds the right to use c; a channel rather than a mutex so that
	// a caller waiting for a slow call still honours its ctx.
	sem chan struct{}
	// c is the connected client, nil before a reconnect. Guarded by sem.
	c *client.Client
	// closed is set by Close. Guarded by sem.
	closed bool
}

var (
	_ drivers.BMC             = (*BMC)(nil)
	_ drivers.BootSetter      = (*BMC)(nil)
	_ drivers.InventoryReader = (*BMC)(nil)
)

// Open parses cfg.Endpoint (ipmi://host[:port], IPv6 literals in brackets)
// and opens a session, so that wrong credentials fail here.
func Open(ctx context.Context, cfg drivers.Config) (drivers.BMC, error) {
	b, err := newBMC(cfg)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, b.wrap(ctx, "open", err)
	}
	// b is not shared yet: no need to hold sem.
	if err := b.connectLocked(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// newBMC validates cfg without touching the network.
func newBMC(cfg drivers.Config) (*BMC, error) {
	host, port, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	suite := cfg.CipherSuite
	if suite == 0 {
		suite = DefaultCipherSuite
	}
	if suite != 3 && suite != 17 {
		return nil, fmt.Errorf("ipmi %s: cipher suite %d: only 3 and 17 are supported", net.JoinHostPort(host, strconv.Itoa(port)), suite)
	}
	if cfg.Username == "" {
		return nil, fmt.Errorf("ipmi %s: no username", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	timeout := cfg.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	return &BMC{
		host:        net.JoinHostPort(host, strconv.Itoa(port)),
		hostname:    host,
		port:        port,
		user:        cfg.Username,
		password:    cfg.Password,
		suite:       types.CipherSuiteID(suite),
		callTimeout: timeout,
		sem:         make(chan struct{}, 1),
	}, nil
}

// parseEndpoint returns the host (without brackets) and port of an
// ipmi://host[:port] URL.
func parseEndpoint(u *url.URL) (string, int, error) {
	if u == nil {
		return "", 0, errors.New("ipmi: no endpoint")
	}
	// Never echo the URL: it could carry a password in its user info.
	switch {
	case u.Scheme != "ipmi":
		return "", 0, fmt.Errorf("ipmi: endpoint scheme %q, want ipmi://host[:port]", u.Scheme)
	case u.User != nil:
		return "", 0, errors.New("ipmi: endpoint must not carry credentials")
	case u.Hostname() == "":
		return "", 0, errors.New("ipmi: endpoint has no host")
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", 0, fmt.Errorf("ipmi %s: endpoint has a path, query or fragment; want ipmi://host[:port]", u.Host)
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err != nil && strings.Contains(host, ":") {
		return "", 0, fmt.Errorf("ipmi: endpoint host %q is not a valid address", host)
	}
	port := DefaultPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, fmt.Errorf("ipmi %s: invalid port %q", host, p)
		}
		port = n
	} else if len(u.Host) > 0 && u.Host[len(u.Host)-1] == ':' {
		return "", 0, fmt.Errorf("ipmi %s: empty port", host)
	}
	return host, port, nil
}

// acquire takes the right to use the client, or returns ctx's error.
func (b *BMC) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *BMC) release() { <-b.sem }

// connectLocked opens a session. Caller holds sem.
func (b *BMC) connectLocked(ctx context.Context) error {
	// go-ipmi joins host and port with "%s:%d", so an IPv6 literal needs
	// its brackets here.
	dial := b.hostname
	if strings.Contains(dial, ":") {
		dial = "[" + dial + "]"
	}
	c, err := client.NewClient(dial, b.port, b.user, b.password.Reveal())
	if err != nil {
		return fmt.Errorf("ipmi %s: open session: %w", b.host, err)
	}
	c.WithCipherSuiteID(b.suite)
	cctx, cancel := context.WithTimeout(ctx, b.callTimeout)
	defer cancel()
	if err := c.Connect(cctx); err != nil {
		err = b.timedOut(ctx, cctx, err)
		// Release the UDP socket; there is no session worth a close
		// message, so do not wait for the BMC.
		dead, stop := context.WithCancel(context.Background())
		stop()
		_ = c.Close(dead)
		return b.wrap(ctx, fmt.Sprintf("open session (cipher suite %d)", b.suite), err)
	}
	b.c = c
	return nil
}

// do runs fn on the connected client, reconnecting first when an earlier
// call lost the session. read marks fn as safe to repeat: a read is retried
// once on a fresh session when the old one turns out to be gone.
func (b *BMC) do(ctx context.Context, op string, read bool, fn func(ctx context.Context, c *client.Client) error) error {
	if err := b.acquire(ctx); err != nil {
		return b.wrap(ctx, op, err)
	}
	defer b.release()
	if b.closed {
		return fmt.Errorf("ipmi %s: %s: %w", b.host, op, net.ErrClosed)
	}
	fresh := false
	if b.c == nil {
		if err := b.connectLocked(ctx); err != nil {
			return err
		}
		fresh = true
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, b.callTimeout)
		err := b.timedOut(ctx, cctx, fn(cctx, b.c))
		cancel()
		if err == nil {
			return nil
		}
		if !sessionSuspect(ctx, err) {
			return b.wrap(ctx, op, err)
		}
		// The BMC did not answer in this session: drop it, so that the
		// next call (or the retry below) starts a new one.
		b.dropLocked()
		if !read || fresh {
			return b.wrap(ctx, op, err)
		}
		if cerr := b.connectLocked(ctx); cerr != nil {
			return cerr
		}
		fresh = true
	}
}

// errNoAnswer marks a call that ran out of its CallTimeout while the
// caller's ctx was still alive: the BMC did not answer.
var errNoAnswer = errors.New("no answer")

// timedOut marks err with errNoAnswer when the per-call context cctx
// expired but the caller's ctx did not.
func (b *BMC) timedOut(ctx, cctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	// go-ipmi's read deadline can fire a moment before cctx's timer does.
	d, ok := cctx.Deadline()
	if cctx.Err() != nil || (ok && !time.Now().Before(d)) {
		return fmt.Errorf("%w within %v: %w", errNoAnswer, b.callTimeout, err)
	}
	return err
}

// sessionSuspect reports whether err may mean the session is gone (a BMC
// reset, an expired session), as opposed to a BMC answer (a completion code)
// or the caller's ctx.
func sessionSuspect(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if _, ok := types.IsResponseError(err); ok {
		return false
	}
	return true
}

// dropLocked forgets the session without waiting for the BMC.
func (b *BMC) dropLocked() {
	if b.c == nil {
		return
	}
	dead, stop := context.WithCancel(context.Background())
	stop()
	_ = b.c.Close(dead)
	b.c = nil
}

// Close closes the session. Later calls fail; a second Close does nothing.
func (b *BMC) Close(ctx context.Context) error {
	// Take the client even when ctx has ended, if it is free: Close must
	// release the socket whatever the caller's deadline.
	select {
	case b.sem <- struct{}{}:
	default:
		if err := b.acquire(ctx); err != nil {
			return b.wrap(ctx, "close", err)
		}
	}
	defer b.release()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.c == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, b.callTimeout)
	defer cancel()
	err := b.c.Close(cctx)
	b.c = nil
	if err != nil {
		return b.wrap(ctx, "close session", err)
	}
	return nil
}

// Classification of errors (see wrap).
var (
	authStatus = map[types.RmcpStatusCode]bool{
		types.RmcpStatusCodeInvalidRole:                true,
		types.RmcpStatusCodeUnauthorizedRoleOfPriLevel: true,
		types.RmcpStatusCodeUnauthorizedName:           true,
		types.RmcpStatusCodeInvalidIntegrityCheckValue: true,
		types.RmcpStatusCodeInvalidNameLength:          true,
	}
	suiteStatus = map[types.RmcpStatusCode]bool{
		types.RmcpStatusCodeInvalidAuthAlg:             true,
		types.RmcpStatusCodeInvalidIntegrityAlg:        true,
		types.RmcpStatusCodeInvalidConfidentAlg:        true,
		types.RmcpStatusCodeNoCipherSuiteMatch:         true,
		types.RmcpStatusCodeNoMatchingAuthPayload:      true,
		types.RmcpStatusCodeNoMatchingIntegrityPayload: true,
	}
	// Completion codes with which a BMC says it lacks a command or a
	// parameter value.
	unsupportedCC = map[types.CompletionCode]bool{
		types.CodeInvalidCommand:          true,
		types.CodeInvalidCommandForLUN:    true,
		types.CodeRequestDataFieldInvalid: true,
		types.CodeParameterOutOfRange:     true,
		types.CodeIllegalCommand:          true,
		types.CodeNotSupported:            true,
		types.CodeParameterNotSupported:   true,
	}
)

// wrap names the operation and classifies err: drivers.ErrAuth for rejected
// credentials or privilege, drivers.ErrUnsupported for what the BMC lacks,
// drivers.ErrUnreachable when it did not answer, and ctx's error when the
// caller's ctx ended.
func (b *BMC) wrap(ctx context.Context, op string, err error) error {
	var kind error
	var st *types.RmcpStatusError
	switch {
	case errors.Is(err, client.ErrRAKPAuthentication),
		strings.Contains(err.Error(), client.ErrRAKPAuthentication.Error()):
		kind = drivers.ErrAuth
	case errors.As(err, &st) && authStatus[st.StatusCode()]:
		kind = drivers.ErrAuth
	case errors.As(err, &st) && suiteStatus[st.StatusCode()]:
		kind = drivers.ErrUnsupported
		err = fmt.Errorf("cipher suite %d refused: %w", b.suite, err)
	case connectStatus(err, authStatus):
		kind = drivers.ErrAuth
	case connectStatus(err, suiteStatus), refusedOpenSession(err):
		kind = drivers.ErrUnsupported
		err = fmt.Errorf("cipher suite %d refused: %w", b.suite, err)
	case isCC(err, types.CodeInsufficientPrivilege):
		kind = drivers.ErrAuth
	case isUnsupportedCC(err):
		kind = drivers.ErrUnsupported
	case ctx.Err() != nil:
		// The caller gave up; whatever the BMC did is secondary.
		if !errors.Is(err, ctx.Err()) {
			return fmt.Errorf("ipmi %s: %s: %w (%v)", b.host, op, ctx.Err(), oneLine{err})
		}
		return fmt.Errorf("ipmi %s: %s: %w", b.host, op, oneLine{err})
	case noAnswer(err):
		kind = drivers.ErrUnreachable
	}
	err = oneLine{err}
	if kind == nil {
		return fmt.Errorf("ipmi %s: %s: %w", b.host, op, err)
	}
	return fmt.Errorf("ipmi %s: %s: %w: %w", b.host, op, kind, err)
}

// oneLine prints an error on one line (go-ipmi joins the errors of its
// connect attempts with newlines) and keeps it for errors.Is and As.
type oneLine struct{ err error }

func (e oneLine) Error() string { return strings.Join(strings.Fields(e.err.Error()), " ") }
func (e oneLine) Unwrap() error { return e.err }

// go-ipmi's Connect flattens the errors of its session setup steps with %v,
// so errors.As cannot see RMCP+ status codes or RAKP failures there; the
// text is all that is left.
func connectStatus(err error, codes map[types.RmcpStatusCode]bool) bool {
	msg := err.Error()
	for code := range codes {
		if strings.Contains(msg, types.NewRmcpStatusError(code).Error()) {
			return true
		}
	}
	return false
}

// refusedOpenSession reports an RMCP+ Open Session that got an answer go-ipmi
// could not parse: ipmi_sim answers an unsupported cipher suite with a
// truncated error reply.
func refusedOpenSession(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "RMCP+ Open Session failed") && strings.Contains(msg, types.ErrUnpackedDataTooShort.Error())
}

func isCC(err error, cc types.CompletionCode) bool {
	re, ok := types.IsResponseError(err)
	return ok && re.CompletionCode() == cc
}

func isUnsupportedCC(err error) bool {
	re, ok := types.IsResponseError(err)
	return ok && unsupportedCC[re.CompletionCode()]
}

// noAnswer reports an error of the network or a timeout with no reply.
func noAnswer(err error) bool {
	var ne net.Error
	msg := err.Error()
	return errors.As(err, &ne) ||
		// go-ipmi's text once all its attempts went unanswered; the
		// sentinel behind it is unexported.
		strings.Contains(msg, "no matching IPMI response") ||
		strings.Contains(msg, "no UDP datagram matched") ||
		strings.Contains(msg, "UDP read timed out") ||
		errors.Is(err, errNoAnswer) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}
