package mediaserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"metalsync.dev/metalsync/internal/clock/clocktest"
	"metalsync.dev/metalsync/test/tools"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type env struct {
	srv    *Server
	clock  *clocktest.Fake
	log    *tools.SyncBuffer
	client *http.Client
	base   string
}

// start serves a new Server on a loopback listener (network "tcp4" on
// 127.0.0.1 or "tcp6" on [::1]) until the test ends.
func start(t *testing.T, host string, tlsFiles *TLSFiles) *env {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		if strings.Contains(host, ":") && os.Getenv("CI") != "true" {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	scheme := "http"
	if tlsFiles != nil {
		scheme = "https"
	}
	e := &env{clock: clocktest.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)), log: &tools.SyncBuffer{}, client: &http.Client{}}
	e.base = BaseURL(scheme, ln.Addr())
	e.srv, err = New(Config{
		Dir: t.TempDir(), BaseURL: e.base, Now: e.clock.Now,
		Log: slog.New(slog.NewTextHandler(e.log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln, tlsFiles, time.Second) }()
	t.Cleanup(func() {
		// Idle client connections the server never saw a request on count
		// as busy for 5s in Shutdown: close them first.
		e.client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := e.srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

func testImage(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (e *env) get(t *testing.T, method, u string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServe(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			e := start(t, host, nil)
			img := testImage(3<<20 + 12345)
			pub, err := e.srv.Publish("r1-n07", bytes.NewReader(img), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(pub.URL)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimPrefix(e.base, "http://"); u.Host != want || (strings.Contains(host, ":") && !strings.HasPrefix(u.Host, "[")) {
				t.Errorf("URL host %q, want %q with brackets for IPv6", u.Host, want)
			}
			if diff := cmp.Diff(Published{URL: pub.URL, Path: strings.TrimPrefix(pub.URL, e.base), SHA256: sum(img), Size: int64(len(img)), Expires: e.clock.Now().Add(time.Hour)}, pub); diff != "" {
				t.Errorf("Published (-want +got):\n%s", diff)
			}
			etag := `"` + sum(img) + `"`
			lastMod := e.clock.Now().UTC().Format(http.TimeFormat)
			n := len(img)
			tests := []struct {
				name       string
				method     string
				hdr        map[string]string
				wantStatus int
				wantBody   []byte
				wantHdr    map[string]string
			}{
				{"get", "GET", nil, 200, img, map[string]string{"Content-Length": fmt.Sprint(n), "ETag": etag, "Last-Modified": lastMod, "Accept-Ranges": "bytes"}},
				{"head", "HEAD", nil, 200, []byte{}, map[string]string{"Content-Length": fmt.Sprint(n), "ETag": etag, "Last-Modified": lastMod}},
				{"first sector", "GET", map[string]string{"Range": "bytes=0-2047"}, 206, img[:2048], map[string]string{"Content-Length": "2048", "Content-Range": fmt.Sprintf("bytes 0-2047/%d", n)}},
				{"middle", "GET", map[string]string{"Range": "bytes=1000000-1000099"}, 206, img[1000000:1000100], map[string]string{"Content-Range": fmt.Sprintf("bytes 1000000-1000099/%d", n)}},
				{"open end", "GET", map[string]string{"Range": fmt.Sprintf("bytes=%d-", n-10)}, 206, img[n-10:], nil},
				{"suffix", "GET", map[string]string{"Range": "bytes=-5"}, 206, img[n-5:], nil},
				{"head range", "HEAD", map[string]string{"Range": "bytes=0-99"}, 206, []byte{}, map[string]string{"Content-Length": "100"}},
				{"unsatisfiable", "GET", map[string]string{"Range": fmt.Sprintf("bytes=%d-", n+1)}, 416, nil, map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", n)}},
				{"etag match", "GET", map[string]string{"If-None-Match": etag}, 304, []byte{}, nil},
				{"stale if-range", "GET", map[string]string{"Range": "bytes=0-9", "If-Range": `"other"`}, 200, img, nil},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, body := e.get(t, tt.method, pub.URL, tt.hdr)
					if resp.StatusCode != tt.wantStatus {
						t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
					}
					if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
						t.Errorf("body: %d bytes (sha %s), want %d bytes (sha %s)", len(body), sum(body), len(tt.wantBody), sum(tt.wantBody))
					}
					for k, v := range tt.wantHdr {
						if got := resp.Header.Get(k); got != v {
							t.Errorf("%s: %q, want %q", k, got, v)
						}
					}
				})
			}
			if log := e.log.String(); strings.Contains(log, strings.Split(u.Path, "/")[2]) || !strings.Contains(log, "node=r1-n07") {
				t.Errorf("access log must name the node and never the token:\n%s", log)
			}
		})
	}
}

// TestConcurrentRangedDownloads: many clients each assemble the image
// from ranges fetched in parallel, as BMCs do.
func TestConcurrentRangedDownloads(t *testing.T) {
	e := start(t, "127.0.0.1", nil)
	img := testImage(4<<20 + 77)
	pub, err := e.srv.Publish("r1-n01", bytes.NewReader(img), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const clients, chunk = 8, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]byte, len(img))
			var cw sync.WaitGroup
			var mu sync.Mutex
			var firstErr error
			for off := 0; off < len(img); off += chunk {
				cw.Add(1)
				go func(off int) {
					defer cw.Done()
					end := min(off+chunk, len(img)) - 1
					err := fetchRange(e.client, pub.URL, off, end, got[off:end+1])
					if err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
				}(off)
			}
			cw.Wait()
			if firstErr != nil {
				errs <- firstErr
				return
			}
			if s := sum(got); s != pub.SHA256 {
				errs <- fmt.Errorf("assembled image sha256 %s, want %s", s, pub.SHA256)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func fetchRange(c *http.Client, u string, start, end int, dst []byte) error {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("range %d-%d: status %d", start, end, resp.StatusCode)
	}
	if _, err := io.ReadFull(resp.Body, dst); err != nil {
		return fmt.Errorf("range %d-%d: %w", start, end, err)
	}
	if n, _ := io.Copy(io.Discard, resp.Body); n != 0 {
		return fmt.Errorf("range %d-%d: %d extra bytes", start, end, n)
	}
	return nil
}

// TestRefused: every way of not having the right, live token gets the
// same 404.
func TestRefused(t *testing.T) {
	e := start(t, "127.0.0.1", nil)
	img := testImage(4096)
	pub, err := e.srv.Publish("r1-n07", bytes.NewReader(img), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.srv.Publish("r1-n08", bytes.NewReader(img), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.Split(strings.TrimPrefix(pub.URL, e.base), "/")[2]
	notFound, _ := e.get(t, "GET", e.base+"/nothing", nil)
	_, notFoundBody := e.get(t, "GET", e.base+"/nothing", nil)
	if notFound.StatusCode != 404 {
		t.Fatalf("baseline: %d", notFound.StatusCode)
	}
	wrong := []byte(token)
	wrong[0] ^= 1
	otherToken := strings.Split(strings.TrimPrefix(other.URL, e.base), "/")[2]
	for _, tt := range []struct{ name, url string }{
		{"no token", e.base + "/media/r1-n07.iso"},
		{"empty token", e.base + "/media//r1-n07.iso"},
		{"wrong token", e.base + "/media/" + string(wrong) + "/r1-n07.iso"},
		{"token of another node", e.base + "/media/" + otherToken + "/r1-n07.iso"},
		{"right token, other name", e.base + "/media/" + token + "/r1-n08.iso"},
		{"token only", e.base + "/media/" + token},
		{"listing", e.base + "/media/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.get(t, "GET", tt.url, nil)
			if resp.StatusCode != 404 || !bytes.Equal(body, notFoundBody) {
				t.Errorf("status %d body %q, want the plain 404", resp.StatusCode, body)
			}
		})
	}
	resp, _ := e.get(t, "POST", pub.URL, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}

	// Expiry: r1-n08's 10 minute TTL runs out, r1-n07's does not.
	e.clock.Advance(10 * time.Minute)
	if resp, _ := e.get(t, "GET", other.URL, nil); resp.StatusCode != 404 {
		t.Errorf("expired URL: %d, want 404", resp.StatusCode)
	}
	if resp, _ := e.get(t, "HEAD", pub.URL, nil); resp.StatusCode != 200 {
		t.Errorf("live URL: %d, want 200", resp.StatusCode)
	}
	if err := e.srv.Sweep(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(e.srv.dir, "*"))
	if len(files) != 1 {
		t.Errorf("after sweep %d files, want 1: %v", len(files), files)
	}

	// Republishing revokes the old URL; unpublishing the new one.
	again, err := e.srv.Publish("r1-n07", bytes.NewReader(img), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if again.URL == pub.URL {
		t.Fatal("republish reused the token")
	}
	if resp, _ := e.get(t, "GET", pub.URL, nil); resp.StatusCode != 404 {
		t.Errorf("replaced URL: %d, want 404", resp.StatusCode)
	}
	if resp, _ := e.get(t, "GET", again.URL, nil); resp.StatusCode != 200 {
		t.Errorf("new URL: %d, want 200", resp.StatusCode)
	}
	if err := e.srv.Unpublish("r1-n07"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.get(t, "GET", again.URL, nil); resp.StatusCode != 404 {
		t.Errorf("unpublished URL: %d, want 404", resp.StatusCode)
	}
	if err := e.srv.Unpublish("r1-n07"); err != nil {
		t.Errorf("second Unpublish: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(e.srv.dir, "*")); len(files) != 0 {
		t.Errorf("files left after unpublish: %v", files)
	}
	if log := e.log.String(); strings.Contains(log, token) || strings.Contains(log, otherToken) {
		t.Errorf("token in access log:\n%s", log)
	}
}

// TestUnpublishDuringDownload: a download that started finishes; the
// file is gone from the directory at once.
func TestUnpublishDuringDownload(t *testing.T) {
	e := start(t, "127.0.0.1", nil)
	img := testImage(8 << 20)
	pub, err := e.srv.Publish("r1-n07", bytes.NewReader(img), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.Get(pub.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Unpublish("r1-n07"); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := sum(append(first, rest...)); got != pub.SHA256 {
		t.Errorf("download across unpublish: sha %s, want %s", got, pub.SHA256)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	files, pool := selfSigned(t, dir)
	e := start(t, "127.0.0.1", files)
	e.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	img := testImage(10000)
	pub, err := e.srv.Publish("r1-n07", bytes.NewReader(img), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub.URL, "https://127.0.0.1:") {
		t.Errorf("URL %s", pub.URL)
	}
	resp, body := e.get(t, "GET", pub.URL, map[string]string{"Range": "bytes=10-19"})
	if resp.StatusCode != 206 || !bytes.Equal(body, img[10:20]) || resp.TLS == nil {
		t.Errorf("status %d body %v tls %v", resp.StatusCode, body, resp.TLS != nil)
	}
}

func selfSigned(t *testing.T, dir string) (*TLSFiles, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "metalsync test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &TLSFiles{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	os.WriteFile(f.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(f.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return f, pool
}

func TestNewAndPublishErrors(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "media-old.iso")
	os.WriteFile(stale, []byte("x"), 0o600)
	keep := filepath.Join(dir, "notes.txt")
	os.WriteFile(keep, []byte("x"), 0o600)
	srv, err := New(Config{Dir: dir, BaseURL: "http://[2001:db8::1]:8080/boot/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale image kept: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("foreign file removed: %v", err)
	}
	pub, err := srv.Publish("n1", strings.NewReader("iso"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub.URL, "http://[2001:db8::1]:8080/boot/media/") || !strings.HasSuffix(pub.URL, "/n1.iso") {
		t.Errorf("URL %s", pub.URL)
	}
	token := strings.Split(strings.TrimPrefix(pub.URL, "http://[2001:db8::1]:8080/boot/media/"), "/")[0]
	if len(token) < 22 { // 128 bits in base64
		t.Errorf("token %d characters, want at least 128 bits", len(token))
	}
	for _, bad := range []string{"", "ftp://h", "http://", "http://2001:db8::1/", "http://u:p@h/", "http://h/?q=1"} {
		if _, err := New(Config{Dir: dir, BaseURL: bad}); err == nil {
			t.Errorf("New(base %q): no error", bad)
		}
	}
	for _, tt := range []struct {
		node string
		ttl  time.Duration
	}{{"", time.Minute}, {"a/b", time.Minute}, {"n?x", time.Minute}, {"n1", 0}} {
		if _, err := srv.Publish(tt.node, strings.NewReader("x"), tt.ttl); err == nil {
			t.Errorf("Publish(%q, %s): no error", tt.node, tt.ttl)
		}
	}
	if _, err := srv.PublishFile("n2", filepath.Join(dir, "missing"), time.Minute); err == nil {
		t.Error("PublishFile(missing): no error")
	}
	if _, err := New(Config{BaseURL: "http://h"}); err == nil {
		t.Error("New without dir: no error")
	}
}

func TestPublishFile(t *testing.T) {
	e := start(t, "127.0.0.1", nil)
	src := filepath.Join(t.TempDir(), "sparse.iso")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 20)
	f.WriteAt([]byte("CD001"), 16*2048+1)
	f.Close()
	want, _ := os.ReadFile(src)
	pub, err := e.srv.PublishFile("r1-n07", src, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if pub.SHA256 != sum(want) || pub.Size != 1<<20 {
		t.Errorf("Published %+v", pub)
	}
	resp, body := e.get(t, "GET", pub.URL, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Errorf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	if _, err := os.Stat(src); err != nil {
		t.Errorf("caller's file: %v", err)
	}
}
