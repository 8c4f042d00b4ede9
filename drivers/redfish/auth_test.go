package redfish_test

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/redfish"
	"metalsync.dev/metalsync/sim/mockupserver"
)

func TestSessionLifecycle(t *testing.T) {
	m, ts := serveMockup(t, "public-localstorage", mockupserver.Options{})
	b, err := redfish.Open(t.Context(), mockConfig(t, ts.URL))
	if err != nil {
		t.Fatal(err)
	}
	sys := b.(*redfish.BMC).System()
	want := []mockupserver.Request{
		{Method: "GET", Path: "/redfish/v1/", Status: 200},
		{Method: "POST", Path: "/redfish/v1/SessionService/Sessions", Body: `{"Password":"[password]","UserName":"operator"}`, Status: 201},
		{Method: "GET", Path: "/redfish/v1/Systems", Auth: "token", Status: 200},
	}
	if diff := cmp.Diff(want, m.Requests()); diff != "" {
		t.Errorf("Open requests (-want +got):\n%s", diff)
	}

	// The BMC forgets the session (timeout, reboot): one 401, one new
	// login, and the call succeeds.
	m.ExpireSessions()
	m.ResetRequests()
	if _, err := b.PowerState(t.Context()); err != nil {
		t.Fatalf("PowerState after session expiry: %v", err)
	}
	want = []mockupserver.Request{
		{Method: "GET", Path: sys, Auth: "token", Status: 401},
		{Method: "POST", Path: "/redfish/v1/SessionService/Sessions", Body: `{"Password":"[password]","UserName":"operator"}`, Status: 201},
		{Method: "GET", Path: sys, Auth: "token", Status: 200},
	}
	if diff := cmp.Diff(want, m.Requests()); diff != "" {
		t.Errorf("re-login requests (-want +got):\n%s", diff)
	}

	m.ResetRequests()
	if err := b.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want = []mockupserver.Request{{Method: "DELETE", Path: "/redfish/v1/SessionService/Sessions/2", Auth: "token", Status: 204}}
	if diff := cmp.Diff(want, m.Requests()); diff != "" {
		t.Errorf("Close requests (-want +got):\n%s", diff)
	}
}

func TestBasicAuthFallback(t *testing.T) {
	m, ts := serveMockup(t, "public-rackmount1", mockupserver.Options{NoSessions: true, Username: mockUser, Password: mockPass})
	b := openMock(t, mockConfig(t, ts.URL))
	m.ResetRequests()
	if _, err := b.PowerState(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]mockupserver.Request{{Method: "GET", Path: b.System(), Auth: "basic", Status: 200}}, m.Requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestWrongPassword(t *testing.T) {
	for _, noSessions := range []bool{false, true} {
		_, ts := serveMockup(t, "public-localstorage", mockupserver.Options{NoSessions: noSessions, Username: mockUser, Password: mockPass})
		cfg := mockConfig(t, ts.URL)
		cfg.Password = "wrong-secret-value"
		_, err := redfish.Open(t.Context(), cfg)
		if !errors.Is(err, drivers.ErrAuth) {
			t.Errorf("sessions=%v: Open with a wrong password: %v, want ErrAuth", !noSessions, err)
		}
		if err != nil && strings.Contains(err.Error(), cfg.Password.Reveal()) {
			t.Errorf("error reveals the password: %v", err)
		}
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	u, _ := url.Parse("http://" + addr + "/redfish/v1/Systems/1")
	_, err = redfish.Open(t.Context(), drivers.Config{Endpoint: u, Username: "u", Password: "p"})
	if !errors.Is(err, drivers.ErrUnreachable) {
		t.Errorf("Open of a closed port: %v, want ErrUnreachable", err)
	}
}

// TestCallTimeout: a BMC that accepts the connection and never answers
// fails the call after Config.CallTimeout, as unreachable.
func TestCallTimeout(t *testing.T) {
	block := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	defer close(block)
	u, _ := url.Parse(ts.URL)
	_, err := redfish.Open(t.Context(), drivers.Config{Endpoint: u, CallTimeout: 50 * time.Millisecond})
	if !errors.Is(err, drivers.ErrUnreachable) || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("Open of a hung BMC: %v, want ErrUnreachable after the call timeout", err)
	}
	// The caller's own cancellation stays itself, not "unreachable".
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = redfish.Open(ctx, drivers.Config{Endpoint: u})
	if !errors.Is(err, context.Canceled) || errors.Is(err, drivers.ErrUnreachable) {
		t.Errorf("Open with a cancelled ctx: %v, want context.Canceled", err)
	}
}

func TestIPv6Loopback(t *testing.T) {
	m, err := mockupserver.Open("public-tower", mockupserver.Options{Username: mockUser, Password: mockPass})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ts := httptest.NewUnstartedServer(m)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	defer ts.Close()
	if !strings.HasPrefix(ts.URL, "http://[::1]:") {
		t.Fatalf("server URL %s", ts.URL)
	}
	cfg := mockConfig(t, ts.URL+"/redfish/v1/Systems/437XR1238R2")
	b := openMock(t, cfg)
	if got, err := b.PowerState(t.Context()); err != nil || got != drivers.PowerOn {
		t.Errorf("PowerState over [::1] = %q, %v", got, err)
	}
	if err := b.InsertMedia(t.Context(), drivers.MediaCD, "http://[::1]:8080/a.iso"); err != nil {
		t.Errorf("InsertMedia over [::1]: %v", err)
	}
}

// tlsMockup serves a mockup over TLS and returns the CA that signed its
// certificate, as PEM.
func tlsMockup(t *testing.T) (*httptest.Server, []byte) {
	t.Helper()
	m, err := mockupserver.Open("public-localstorage", mockupserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(m)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes this test fails on purpose
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
}

func TestTLSVerification(t *testing.T) {
	ts, caPEM := tlsMockup(t)
	u, _ := url.Parse(ts.URL)
	pool := redfish.NewPool(redfish.PoolOptions{})
	defer pool.CloseIdleConnections()

	// Verification is on by default: httptest's certificate is not
	// trusted by the system roots, and the error names it.
	_, err := pool.Open(t.Context(), drivers.Config{Endpoint: u})
	if !errors.Is(err, drivers.ErrUnreachable) || !strings.Contains(err.Error(), `TLS certificate "O=Acme Co" not trusted`) {
		t.Errorf("Open without the CA: %v, want ErrUnreachable naming the certificate", err)
	}
	// With the BMC's CA it works, on the same pool.
	b, err := pool.Open(t.Context(), drivers.Config{Endpoint: u, CAPEM: caPEM})
	if err != nil {
		t.Fatalf("Open with the CA: %v", err)
	}
	defer b.Close(context.Background())
	if _, err := b.PowerState(t.Context()); err != nil {
		t.Errorf("PowerState with the CA: %v", err)
	}
	// A BMC without the CA on the same pool, to the same address, must not
	// ride on the connection the trusted BMC verified.
	_, err = pool.Open(t.Context(), drivers.Config{Endpoint: u})
	if !errors.Is(err, drivers.ErrUnreachable) {
		t.Errorf("Open without the CA after one with it: %v, want ErrUnreachable", err)
	}
	// Opting out works, and does not switch verification off for others.
	bi, err := pool.Open(t.Context(), drivers.Config{Endpoint: u, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("Open insecure: %v", err)
	}
	defer bi.Close(context.Background())
	if _, err = pool.Open(t.Context(), drivers.Config{Endpoint: u}); !errors.Is(err, drivers.ErrUnreachable) {
		t.Errorf("Open without the CA after an insecure one: %v, want ErrUnreachable", err)
	}
	// A bad CA bundle is refused up front.
	if _, err := pool.Open(t.Context(), drivers.Config{Endpoint: u, CAPEM: []byte("not pem")}); err == nil {
		t.Error("Open with a bad CA bundle succeeded")
	}
}
