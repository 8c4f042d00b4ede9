package imagecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"metalsync.dev/metalsync/imagecache/qcow2"
)

// server serves fixed bodies by path and counts requests per path.
type server struct {
	*httptest.Server
	mu     sync.Mutex
	bodies map[string][]byte
	hits   map[string]int
	// hook, when set, runs before a body is sent.
	hook func(w http.ResponseWriter, r *http.Request) bool
}

func newServer(t *testing.T) *server {
	s := &server{bodies: map[string][]byte{}, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		b, ok := s.bodies[r.URL.Path]
		hook := s.hook
		s.mu.Unlock()
		if hook != nil && !hook(w, r) {
			return
		}
		switch {
		case r.URL.Path == "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case r.URL.Path == "/truncated":
			w.Header().Set("Content-Length", strconv.Itoa(len(b)+1000))
			w.Write(b)
		case !ok:
			http.NotFound(w, r)
		default:
			w.Write(b)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) put(path string, b []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies[path] = b
	return s.URL + path
}

func (s *server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// testDisk is random data, text and zero runs: 3 MiB + 512 bytes.
func testDisk() []byte {
	rng := rand.New(rand.NewPCG(7, 8))
	b := make([]byte, 3<<20+512)
	for i := range 1 << 20 {
		b[i] = byte(rng.Uint32())
	}
	copy(b[2<<20:], bytes.Repeat([]byte("metalsync "), 50000))
	return b
}

func sum256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func sum512(b []byte) string { s := sha512.Sum512(b); return hex.EncodeToString(s[:]) }

func newCache(t *testing.T, dir string) *Cache {
	t.Helper()
	c, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func checkServed(t *testing.T, c *Cache, sha string, size int64, want []byte) {
	t.Helper()
	if sha != sum256(want) || size != int64(len(want)) {
		t.Fatalf("Prepare = %s, %d; want %s, %d", sha, size, sum256(want), len(want))
	}
	f, err := c.Open(sha)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("served raw differs from the image")
	}
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

// qcow2Of converts raw with qemu-img convert and the given options.
func qcow2Of(t *testing.T, raw []byte, opts ...string) []byte {
	t.Helper()
	needTool(t, "qemu-img")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.raw"), filepath.Join(dir, "out.qcow2")
	if err := os.WriteFile(in, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{"convert", "-f", "raw", "-O", "qcow2"}, opts...), in, out)
	if b, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPrepareRaw(t *testing.T) {
	disk := testDisk()
	srv := newServer(t)
	u := srv.put("/disk.raw", disk)
	file := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(file, disk, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, url, checksum string }{
		{"http sha256", u, "sha256:" + sum256(disk)},
		{"http sha512", u, "sha512:" + sum512(disk)},
		{"upper-case hex", u, "sha256:" + strings.ToUpper(sum256(disk))},
		{"file", "file://" + file, "sha256:" + sum256(disk)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, t.TempDir())
			sha, size, err := c.Prepare(t.Context(), tt.url, tt.checksum, "raw")
			if err != nil {
				t.Fatal(err)
			}
			checkServed(t, c, sha, size, disk)
		})
	}
}

func TestPrepareQcow2(t *testing.T) {
	disk := testDisk()
	tests := []struct {
		name string
		opts []string
	}{
		{"plain", nil},
		{"compressed", []string{"-c"}},
		{"v2", []string{"-o", "compat=0.10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := qcow2Of(t, disk, tt.opts...)
			srv := newServer(t)
			u := srv.put("/disk.qcow2", q)
			dir := t.TempDir()
			c := newCache(t, dir)
			sha, size, err := c.Prepare(t.Context(), u, "sha256:"+sum256(q), "qcow2")
			if err != nil {
				t.Fatal(err)
			}
			checkServed(t, c, sha, size, disk)
			var st syscall.Stat_t
			if err := syscall.Stat(c.rawPath(sha), &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks*512 >= size {
				t.Errorf("raw file not sparse: %d bytes allocated for %d", st.Blocks*512, size)
			}
		})
	}
}

func TestPrepareErrors(t *testing.T) {
	disk := testDisk()
	srv := newServer(t)
	u := srv.put("/disk.raw", disk)
	srv.put("/truncated", disk)
	backing := srv.put("/backing.qcow2", backingHeader())
	secret := strings.Replace(u, "http://", "http://user:hunter2@", 1) + "?token=hunter2"
	tests := []struct {
		name, url, checksum, format string
		want                        error
		says                        []string
	}{
		{name: "wrong checksum", url: u, checksum: "sha256:" + strings.Repeat("0", 64), format: "raw", want: ErrChecksumMismatch,
			says: []string{u, "expected sha256:" + strings.Repeat("0", 64), "got sha256:" + sum256(disk)}},
		{name: "truncated", url: srv.URL + "/truncated", checksum: "sha256:" + sum256(disk), format: "raw", says: []string{"/truncated", "unexpected EOF"}},
		{name: "404", url: srv.URL + "/nope", checksum: "sha256:" + sum256(disk), format: "raw", says: []string{"/nope", "404", "check the image URL"}},
		{name: "500", url: srv.URL + "/500", checksum: "sha256:" + sum256(disk), format: "raw", says: []string{"500", "retry later"}},
		{name: "qcow2 backing file", url: backing, checksum: "sha256:" + sum256(backingHeader()), format: "qcow2", want: ErrRefused, says: []string{"backing file"}},
		{name: "raw above limit", url: u, checksum: "sha256:" + sum256(disk), format: "raw", want: ErrRefused, says: []string{"limit"}},
		{name: "bad checksum", url: u, checksum: "md5:abc", format: "raw", want: ErrRefused},
		{name: "bad format", url: u, checksum: "sha256:" + sum256(disk), format: "vmdk", want: ErrRefused},
		{name: "bad scheme", url: "ftp://x/y", checksum: "sha256:" + sum256(disk), format: "raw", want: ErrRefused},
		{name: "secrets redacted", url: secret, checksum: "sha256:" + strings.Repeat("1", 64), format: "raw", want: ErrChecksumMismatch, says: []string{"redacted"}},
		{name: "secrets redacted on connect", url: "http://user:hunter2@127.0.0.1:1/x?token=hunter2", checksum: "sha256:" + sum256(disk), format: "raw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{}
			if tt.name == "raw above limit" {
				opts.MaxVirtualSize = 1 << 20
			}
			c, err := New(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _, err = c.Prepare(t.Context(), tt.url, tt.checksum, tt.format)
			if err == nil {
				t.Fatal("Prepare succeeded")
			}
			t.Log(err)
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v is not %v", err, tt.want)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a secret: %v", err)
			}
			for _, sub := range []string{"raw", "index", "tmp"} {
				if left, _ := os.ReadDir(filepath.Join(dir, sub)); len(left) > 0 {
					t.Errorf("%s/ keeps %d files after a failure", sub, len(left))
				}
			}
		})
	}
}

// backingHeader is a v3 qcow2 header naming a backing file.
func backingHeader() []byte {
	b := make([]byte, 512)
	be := binary.BigEndian
	be.PutUint32(b[0:], 0x514649fb)
	be.PutUint32(b[4:], 3)
	be.PutUint64(b[8:], 200) // backing file name offset
	be.PutUint32(b[16:], 4)
	be.PutUint32(b[20:], 16)
	be.PutUint64(b[24:], 1<<20)
	be.PutUint32(b[100:], 104)
	copy(b[200:], "base")
	return b
}

func TestCacheHitAndRestart(t *testing.T) {
	disk := testDisk()
	srv := newServer(t)
	u := srv.put("/disk.raw", disk)
	dir := t.TempDir()
	sum := "sha256:" + sum256(disk)

	c := newCache(t, dir)
	for range 2 {
		sha, size, err := c.Prepare(t.Context(), u, sum, "raw")
		if err != nil {
			t.Fatal(err)
		}
		checkServed(t, c, sha, size, disk)
	}
	if n := srv.count("/disk.raw"); n != 1 {
		t.Fatalf("2 Prepares made %d requests, want 1", n)
	}
	c.Close()

	restarted := newCache(t, dir)
	sha, size, err := restarted.Prepare(t.Context(), u, sum, "raw")
	if err != nil {
		t.Fatal(err)
	}
	checkServed(t, restarted, sha, size, disk)
	if n := srv.count("/disk.raw"); n != 1 {
		t.Fatalf("Prepare after a restart made a request (%d in all)", n)
	}

	// A truncated raw file is noticed and fetched again.
	if err := os.Truncate(restarted.rawPath(sha), 100); err != nil {
		t.Fatal(err)
	}
	sha, size, err = restarted.Prepare(t.Context(), u, sum, "raw")
	if err != nil {
		t.Fatal(err)
	}
	checkServed(t, restarted, sha, size, disk)
	if n := srv.count("/disk.raw"); n != 2 {
		t.Fatalf("Prepare after truncation made %d requests in all, want 2", n)
	}
}

func TestSingleFlight(t *testing.T) {
	disk := testDisk()
	srv := newServer(t)
	u := srv.put("/disk.raw", disk)
	other := srv.put("/other.raw", disk[:1<<20])
	release := make(chan struct{})
	srv.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/disk.raw" {
			<-release
		}
		return true
	}
	c := newCache(t, t.TempDir())
	const n = 8
	src, err := parseSource(u, "sha256:"+sum256(disk), "raw")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range n {
		wg.Go(func() {
			sha, size, err := c.Prepare(t.Context(), u, src.checksum, "raw")
			if err != nil {
				t.Error(err)
				return
			}
			if sha == sum256(disk) && size == int64(len(disk)) {
				ok.Add(1)
			}
		})
	}
	// A different image is prepared while the first download hangs.
	if _, _, err := c.Prepare(t.Context(), other, "sha256:"+sum256(disk[:1<<20]), "raw"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		cl := c.calls[src.key]
		return cl != nil && cl.waiters == n
	})
	close(release)
	wg.Wait()
	if ok.Load() != n {
		t.Fatalf("%d of %d Prepares got the image", ok.Load(), n)
	}
	if got := srv.count("/disk.raw"); got != 1 {
		t.Fatalf("%d concurrent Prepares made %d requests, want 1", n, got)
	}
}

func TestLastWaiterCancels(t *testing.T) {
	srv := newServer(t)
	u := srv.put("/disk.raw", []byte("x"))
	started, aborted := make(chan struct{}), make(chan struct{})
	srv.hook = func(w http.ResponseWriter, r *http.Request) bool {
		close(started)
		<-r.Context().Done()
		close(aborted)
		return false
	}
	c := newCache(t, t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.Prepare(ctx, u, "sha256:"+sum256([]byte("x")), "raw")
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Prepare: %v, want context.Canceled", err)
	}
	<-aborted // the download stopped: the server saw its request go
	c.Close()
}

func TestOpenRefusesPaths(t *testing.T) {
	c := newCache(t, t.TempDir())
	for _, s := range []string{"", "../index", strings.Repeat("A", 64), strings.Repeat("a", 63) + "/"} {
		if f, err := c.Open(s); err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded", s)
		}
	}
	if _, err := c.Open(strings.Repeat("a", 64)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of an unprepared image: %v", err)
	}
}

// waitFor polls cond until it holds; the test's deadline bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatal("condition never held")
		default:
			time.Sleep(time.Millisecond)
		}
	}
}

func TestConvertStopsOnCancel(t *testing.T) {
	q := qcow2Of(t, testDisk())
	p := filepath.Join(t.TempDir(), "in.qcow2")
	if err := os.WriteFile(p, q, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := qcow2.Open(f, int64(len(q)), qcow2.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "out.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := convert(ctx, img, out); !errors.Is(err, context.Canceled) {
		t.Fatalf("convert: %v, want context.Canceled", err)
	}
}
