package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Routes of the daemon's one listener.
const (
	PathMetrics = "/metrics"
	PathHealth  = "/healthz"
	PathReady   = "/readyz"
	PathWebhook = "/webhook"
	PathMedia   = "/media/"
)

// Handlers are the parts served on the daemon's listener; nil parts are
// not mounted.
type Handlers struct {
	Metrics *Metrics
	Webhook http.Handler
	Media   http.Handler
	// Fleet serves everything else: the fleet page at "/", node pages
	// and the JSON API.
	Fleet http.Handler
	// Ready returns nil once the daemon has reconciled a valid commit.
	Ready func() error
}

// Mux builds the daemon's routes.
func (h Handlers) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	if h.Metrics != nil {
		mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(h.Metrics.Registry, promhttp.HandlerOpts{Registry: h.Metrics.Registry}))
	}
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET "+PathReady, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if h.Ready != nil {
			if err := h.Ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, "not ready:", err)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	if h.Webhook != nil {
		mux.Handle("POST "+PathWebhook, h.Webhook)
	}
	if h.Media != nil {
		mux.Handle(PathMedia, h.Media)
	}
	if h.Fleet != nil {
		mux.Handle("/", h.Fleet)
	}
	return mux
}

// Serve listens on addr (":8080" and "[::]:8080" are dual-stack on Linux)
// and serves handler until ctx ends, then shuts down gracefully. It calls
// ready with the bound address once listening.
func Serve(ctx context.Context, addr string, handler http.Handler, log *slog.Logger, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down %s: %w", addr, err)
	}
	<-errc
	return nil
}
