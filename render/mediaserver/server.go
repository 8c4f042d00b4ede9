// Package mediaserver serves boot media images to BMCs over HTTP(S): GET,
// HEAD and Range requests, streamed from files in a directory the server
// owns. Each published image has an unguessable URL that stops working
// when the image is unpublished or its TTL runs out; without the right
// token there is nothing (404, the same answer for every miss).
package mediaserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Config configures a Server.
type Config struct {
	// Dir holds the published images. The server owns it: files it did not
	// write there (media-*.iso from an earlier run) are removed by New.
	Dir string
	// BaseURL is how BMCs reach this server, like http://192.0.2.1:8080 or
	// https://[2001:db8::1]:8443 (see BaseURL).
	BaseURL string
	// Now is the clock for TTLs; nil means time.Now.
	Now func() time.Time
	// Rand is the token source; nil means crypto/rand.
	Rand io.Reader
	// Log receives one line per request (node, never the token).
	Log *slog.Logger
}

// Published is one published image.
type Published struct {
	// URL carries the image's token: treat it as a secret.
	URL string
	// Path is URL's path below the base URL (/media/<token>/<node>.iso),
	// for reaching the same image through another base URL.
	Path    string
	SHA256  string
	Size    int64
	Expires time.Time
}

// Server publishes and serves images. It is safe for concurrent use.
type Server struct {
	dir  string
	base *url.URL
	now  func() time.Time
	rand io.Reader
	log  *slog.Logger

	mu sync.Mutex
	// byNode and byToken hold the live images; byToken is keyed by the
	// SHA-256 of the token, so lookups leak no timing about the token
	// itself. Guarded by mu.
	byNode  map[string]*image
	byToken map[[32]byte]*image
}

type image struct {
	node string
	key  [32]byte
	// path is the stored file; for an image served in place, view is set
	// and path is empty.
	path    string
	view    io.ReaderAt
	sha256  string
	size    int64
	modTime time.Time
	expires time.Time
}

// tokenBytes is the token length: 192 bits from crypto/rand.
const tokenBytes = 24

// New returns a server over cfg.Dir (created if missing).
func New(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("mediaserver: no directory")
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("mediaserver: base url %q: want http(s)://host[:port][/path]", cfg.BaseURL)
	}
	if h := base.Hostname(); strings.Contains(h, ":") && !strings.HasPrefix(base.Host, "[") {
		return nil, fmt.Errorf("mediaserver: base url %q: IPv6 literal must be in brackets", cfg.BaseURL)
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("mediaserver: %w", err)
	}
	// Tokens do not survive a restart, so neither do their images.
	stale, err := filepath.Glob(filepath.Join(cfg.Dir, "media-*.iso"))
	if err != nil {
		return nil, fmt.Errorf("mediaserver: %w", err)
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("mediaserver: remove stale image: %w", err)
		}
	}
	s := &Server{
		dir: cfg.Dir, base: base, now: cfg.Now, rand: cfg.Rand, log: cfg.Log,
		byNode: map[string]*image{}, byToken: map[[32]byte]*image{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// basePath is the path prefix every image URL starts with.
func (s *Server) basePath() string { return s.base.Path }

// BaseURL returns the base URL for a server reached at addr (host:port,
// as from a listener's Addr), with IPv6 literals in brackets.
func BaseURL(scheme string, addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Publish stores the image read from r for node, replacing (and thereby
// revoking) any image already published for it, and returns its URL. The
// URL stops working after ttl.
func (s *Server) Publish(node string, r io.Reader, ttl time.Duration) (Published, error) {
	if err := checkPublish(node, ttl); err != nil {
		return Published{}, err
	}
	f, err := os.CreateTemp(s.dir, "media-*.iso")
	if err != nil {
		return Published{}, fmt.Errorf("mediaserver: node %s: %w", node, err)
	}
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return Published{}, fmt.Errorf("mediaserver: node %s: store image: %w", node, err)
	}
	return s.publish(node, f.Name(), hex.EncodeToString(h.Sum(nil)), size, ttl)
}

// PublishFile publishes the image at path for node like Publish, without
// copying it when it is on the same filesystem as the server's directory
// (a hard link; sparse files stay sparse). The caller keeps path.
func (s *Server) PublishFile(node, path string, ttl time.Duration) (Published, error) {
	if err := checkPublish(node, ttl); err != nil {
		return Published{}, err
	}
	src, err := os.Open(path)
	if err != nil {
		return Published{}, fmt.Errorf("mediaserver: node %s: %w", node, err)
	}
	defer src.Close()
	dst := filepath.Join(s.dir, "media-"+randomName()+".iso")
	if err := os.Link(path, dst); err != nil {
		return s.Publish(node, src, ttl)
	}
	h := sha256.New()
	size, err := io.Copy(h, src)
	if err != nil {
		os.Remove(dst)
		return Published{}, fmt.Errorf("mediaserver: node %s: read image: %w", node, err)
	}
	return s.publish(node, dst, hex.EncodeToString(h.Sum(nil)), size, ttl)
}

// SizedReaderAt is an image read in place, like a template View.
type SizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// PublishReaderAt publishes r for node like Publish, serving it in place
// instead of storing a copy: r must stay readable until the image is
// unpublished or expires. Its SHA-256 (the ETag) is computed by reading
// it once.
func (s *Server) PublishReaderAt(node string, r SizedReaderAt, ttl time.Duration) (Published, error) {
	if err := checkPublish(node, ttl); err != nil {
		return Published{}, err
	}
	h := sha256.New()
	size, err := io.Copy(h, io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		return Published{}, fmt.Errorf("mediaserver: node %s: read image: %w", node, err)
	}
	return s.publishImage(node, &image{path: "", view: r, sha256: hex.EncodeToString(h.Sum(nil)), size: size}, ttl)
}

func checkPublish(node string, ttl time.Duration) error {
	if err := checkNode(node); err != nil {
		return fmt.Errorf("mediaserver: node %q: %w", node, err)
	}
	if ttl <= 0 {
		return fmt.Errorf("mediaserver: node %s: ttl %s is not positive", node, ttl)
	}
	return nil
}

// randomName is a unique file name part (not a secret).
func randomName() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// publish makes the stored file at path node's image under a new token.
func (s *Server) publish(node, path, sum string, size int64, ttl time.Duration) (Published, error) {
	return s.publishImage(node, &image{path: path, sha256: sum, size: size}, ttl)
}

// publishImage makes img (its content fields set) node's image under a
// new token.
func (s *Server) publishImage(node string, img *image, ttl time.Duration) (Published, error) {
	var tok [tokenBytes]byte
	if _, err := io.ReadFull(s.rand, tok[:]); err != nil {
		removeFiles([]string{img.path})
		return Published{}, fmt.Errorf("mediaserver: node %s: token: %w", node, err)
	}
	token := base64.RawURLEncoding.EncodeToString(tok[:])
	now := s.now()
	img.node, img.key = node, sha256.Sum256([]byte(token))
	img.modTime, img.expires = now, now.Add(ttl)
	s.mu.Lock()
	old := s.replaceLocked(node, img)
	expired := s.sweepLocked(now)
	s.mu.Unlock()
	removeFiles(append(expired, old...))
	rel := "/media/" + token + "/" + node + ".iso"
	u := *s.base
	u.Path = s.base.Path + rel
	return Published{URL: u.String(), Path: rel, SHA256: img.sha256, Size: img.size, Expires: img.expires}, nil
}

// Unpublish revokes node's image at once (the BMC ejected it). Downloads
// already running finish; new requests get 404. Unpublishing a node with
// no image is not an error.
func (s *Server) Unpublish(node string) error {
	s.mu.Lock()
	old := s.replaceLocked(node, nil)
	s.mu.Unlock()
	return removeFiles(old)
}

// Sweep removes the expired images' files; requests for them get 404
// whether or not Sweep has run. Publish sweeps too.
func (s *Server) Sweep() error {
	s.mu.Lock()
	expired := s.sweepLocked(s.now())
	s.mu.Unlock()
	return removeFiles(expired)
}

// Close unpublishes every image and removes its file.
func (s *Server) Close() error {
	s.mu.Lock()
	var paths []string
	for node := range s.byNode {
		paths = append(paths, s.replaceLocked(node, nil)...)
	}
	s.mu.Unlock()
	return removeFiles(paths)
}

// replaceLocked sets node's image to img (nil to remove) and returns the
// file to delete.
func (s *Server) replaceLocked(node string, img *image) []string {
	var old []string
	if prev := s.byNode[node]; prev != nil {
		delete(s.byToken, prev.key)
		delete(s.byNode, node)
		old = append(old, prev.path)
	}
	if img != nil {
		s.byNode[node] = img
		s.byToken[img.key] = img
	}
	return old
}

func (s *Server) sweepLocked(now time.Time) []string {
	var paths []string
	for node, img := range s.byNode {
		if !now.Before(img.expires) {
			paths = append(paths, s.replaceLocked(node, nil)...)
		}
	}
	return paths
}

// removeFiles deletes files; open downloads keep reading (POSIX unlink).
func removeFiles(paths []string) error {
	var errs []error
	for _, p := range paths {
		if p == "" { // served in place: nothing stored
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("mediaserver: %w", err))
		}
	}
	return errors.Join(errs...)
}

// checkNode keeps node names safe inside a URL path.
func checkNode(s string) error {
	if s == "" || len(s) > 253 {
		return errors.New("invalid node name")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("character %q not allowed in a node name", r)
		}
	}
	return nil
}

// lookup returns the live image for token and file name, or nil.
func (s *Server) lookup(token, file string) *image {
	key := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	img := s.byToken[key]
	if img == nil || file != img.node+".iso" || !s.now().Before(img.expires) {
		return nil
	}
	cp := *img
	return &cp
}

// Handler serves GET and HEAD /media/{token}/{node}.iso, with Range,
// If-None-Match and If-Modified-Since, from the image's file.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+s.base.Path+"/media/{token}/{file}", s.serveImage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		lw := &logWriter{ResponseWriter: w}
		start := time.Now()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(lw, "method not allowed", http.StatusMethodNotAllowed)
		} else {
			http.NotFound(lw, r)
		}
		s.logRequest(r, lw, "", start)
	})
	return mux
}

func (s *Server) serveImage(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lw := &logWriter{ResponseWriter: w}
	img := s.lookup(r.PathValue("token"), r.PathValue("file"))
	var content io.ReadSeeker
	if img != nil && img.view != nil {
		content = io.NewSectionReader(img.view, 0, img.size)
	} else if img != nil {
		// Unpublish may have removed the file since lookup: then it is gone.
		f, err := os.Open(img.path)
		if err != nil {
			img = nil
		} else {
			defer f.Close()
			content = f
		}
	}
	if img == nil {
		http.NotFound(lw, r)
		s.logRequest(r, lw, "", start)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-iso9660-image")
	h.Set("ETag", `"`+img.sha256+`"`)
	// The URL is a capability: keep it and the image out of caches.
	h.Set("Cache-Control", "no-store")
	http.ServeContent(lw, r, img.node+".iso", img.modTime, content)
	s.logRequest(r, lw, img.node, start)
}

func (s *Server) logRequest(r *http.Request, lw *logWriter, node string, start time.Time) {
	status := lw.status
	if status == 0 {
		status = http.StatusOK
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.Int("status", status),
		slog.Int64("bytes", lw.n),
		slog.String("remote", r.RemoteAddr),
		slog.Duration("duration", time.Since(start)),
	}
	if node != "" {
		attrs = append([]slog.Attr{slog.String("node", node)}, attrs...)
	}
	if rg := r.Header.Get("Range"); rg != "" {
		attrs = append(attrs, slog.String("range", rg))
	}
	// Never the path or URL: they hold the token.
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "media request", attrs...)
}

// logWriter records status and body bytes. It forwards ReadFrom so that
// ServeContent's copy from the file still uses sendfile.
type logWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *logWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.n += n
	return n, err
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TLSFiles names a certificate and key in PEM files.
type TLSFiles struct {
	CertFile, KeyFile string
}

// Serve serves s.Handler on ln until ctx is done, then shuts down,
// giving running downloads up to grace to finish. With tlsFiles set it
// serves HTTPS. ln may be dual-stack (net.Listen("tcp", ":8080")).
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsFiles *TLSFiles, grace time.Duration) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// BMCs are slow readers; no WriteTimeout, but idle connections go.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if tlsFiles != nil {
		cert, err := tls.LoadX509KeyPair(tlsFiles.CertFile, tlsFiles.KeyFile)
		if err != nil {
			return fmt.Errorf("mediaserver: tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		sctx, stop := context.WithTimeout(context.Background(), grace)
		defer stop()
		err := srv.Shutdown(sctx)
		if err != nil {
			srv.Close()
		}
		done <- err
	}()
	err := srv.Serve(ln)
	cancel()
	shutErr := <-done
	if errors.Is(err, http.ErrServerClosed) {
		return shutErr
	}
	return fmt.Errorf("mediaserver: serve: %w", err)
}
