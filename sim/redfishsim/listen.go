package redfishsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// Listener serves a handler on one TCP address until Close.
type Listener struct {
	// URL is the base URL, such as http://127.0.0.1:8000 or http://[::1]:41234.
	URL        string
	srv        *http.Server
	open, peak atomic.Int64
}

// Listen serves every system, path-based, on addr ("127.0.0.1:0" picks a
// free port).
func (s *Server) Listen(addr string) (*Listener, error) { return listen(addr, s) }

func listen(addr string, h http.Handler) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("redfishsim: listen: %w", err)
	}
	l := &Listener{URL: "http://" + ln.Addr().String()}
	l.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		ConnState:         l.track,
		// Injected connection resets make net/http log; the request log
		// already has them.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go l.srv.Serve(ln)
	return l, nil
}

func (l *Listener) track(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		n := l.open.Add(1)
		for {
			p := l.peak.Load()
			if n <= p || l.peak.CompareAndSwap(p, n) {
				break
			}
		}
	case http.StateClosed, http.StateHijacked:
		l.open.Add(-1)
	}
}

// Conns returns the connections open now and the most open at once.
func (l *Listener) Conns() (open, peak int64) { return l.open.Load(), l.peak.Load() }

// SystemURL is the HTTP URL of system id on this listener.
func (l *Listener) SystemURL(id string) string { return l.URL + sysPath(id) }

// BMCURL is the metalsync BMC URL of system id on this listener, such as
// redfish+http://127.0.0.1:8000/redfish/v1/Systems/sys-0001.
func (l *Listener) BMCURL(id string) string { return "redfish+" + l.SystemURL(id) }

// Close stops the listener and closes its connections.
func (l *Listener) Close() error { return l.srv.Close() }

// BMCOptions says where StartBMCs listens.
type BMCOptions struct {
	// Host is a loopback address: "127.0.0.1" (the default) or "::1".
	Host string
	// SpreadIPs gives every system its own IPv4 loopback address, Host
	// plus the system's index (127.0.0.1, 127.0.0.2, ...), all on Port,
	// as a rack of BMCs would be. Without it every system gets its own
	// port on Host.
	SpreadIPs bool
	// Port is the port of every listener with SpreadIPs (0: any free port).
	Port int
}

// BMCListeners are one listener per system, each serving that system
// alone as its own BMC (see Server.BMC).
type BMCListeners struct {
	byID  map[string]*Listener
	order []*Listener
}

// StartBMCs starts one listener per system. Close them with Close.
func (s *Server) StartBMCs(opts BMCOptions) (*BMCListeners, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	base, err := netip.ParseAddr(opts.Host)
	if err != nil || !base.IsLoopback() {
		return nil, fmt.Errorf("redfishsim: BMC host %q: want a loopback IP address", opts.Host)
	}
	if opts.SpreadIPs && !base.Is4() {
		return nil, fmt.Errorf("redfishsim: BMC host %q: spreading over addresses needs IPv4 loopback", opts.Host)
	}
	if !opts.SpreadIPs && opts.Port != 0 {
		return nil, errors.New("redfishsim: a fixed BMC port needs SpreadIPs (one port per system otherwise)")
	}
	b := &BMCListeners{byID: make(map[string]*Listener, len(s.order))}
	for i, sys := range s.order {
		addr := base
		if opts.SpreadIPs {
			a4 := base.As4()
			n := binary.BigEndian.Uint32(a4[:]) + uint32(i)
			binary.BigEndian.PutUint32(a4[:], n)
			addr = netip.AddrFrom4(a4)
			if !addr.IsLoopback() {
				b.Close()
				return nil, fmt.Errorf("redfishsim: %d systems do not fit in the loopback range from %s", len(s.order), base)
			}
		}
		l, err := listen(net.JoinHostPort(addr.String(), strconv.Itoa(opts.Port)), s.bmcs[sys.id])
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("redfishsim: system %s: %w", sys.id, err)
		}
		b.byID[sys.id] = l
		b.order = append(b.order, l)
	}
	return b, nil
}

// Listener returns the listener of system id, or nil.
func (b *BMCListeners) Listener(id string) *Listener { return b.byID[id] }

// Close stops every listener.
func (b *BMCListeners) Close() error {
	var errs []error
	for _, l := range b.order {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
