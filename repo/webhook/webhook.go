// Package webhook receives push events from GitHub, GitLab and Gitea (and
// Forgejo, which speaks Gitea's dialect) and triggers an immediate fetch
// when the followed branch moved.
//
// Every request is authenticated before anything in it is believed: GitHub
// and Gitea sign the body with HMAC-SHA256 (X-Hub-Signature-256,
// X-Gitea-Signature), GitLab sends the shared token itself (X-Gitlab-Token),
// compared in constant time. Neither the secret nor a received signature or
// token is ever logged.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"metalsync.dev/metalsync/credentials/secret"
)

// DefaultMaxBody bounds a request body: GitHub's own limit for a push
// payload is 25 MiB, but one listing a few commits is far smaller.
const DefaultMaxBody = 5 << 20

// Config configures a Handler.
type Config struct {
	// Secret is the webhook secret configured at the forge. Required.
	Secret secret.Value
	// Branch is the followed branch; pushes to other refs are ignored.
	Branch string
	// Trigger is called for each authenticated push to Branch. It must not
	// block (a non-blocking send on a channel with a buffer of one).
	Trigger func()
	// MaxBody bounds the request body (DefaultMaxBody when 0).
	MaxBody int64
	// Logger receives rejected and accepted deliveries; nil discards.
	Logger *slog.Logger
}

// Handler is the webhook endpoint.
type Handler struct {
	secret  []byte
	ref     string
	trigger func()
	maxBody int64
	log     *slog.Logger
}

// New checks cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Secret == "" {
		return nil, errors.New("webhook: a secret is required")
	}
	if cfg.Branch == "" {
		return nil, errors.New("webhook: a branch is required")
	}
	if cfg.Trigger == nil {
		return nil, errors.New("webhook: a trigger function is required")
	}
	h := &Handler{
		secret:  []byte(cfg.Secret.Reveal()),
		ref:     "refs/heads/" + strings.TrimPrefix(cfg.Branch, "refs/heads/"),
		trigger: cfg.Trigger,
		maxBody: cfg.MaxBody,
		log:     cfg.Logger,
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// delivery is what the provider headers say about a request.
type delivery struct {
	provider string
	event    string // the provider's event name
	id       string // the provider's delivery id, for correlating logs
	isPush   bool
	isPing   bool
	// verify checks the request's signature or token against body.
	verify func(body []byte) error
}

var (
	errMissing  = errors.New("missing signature")
	errMismatch = errors.New("signature mismatch")
)

func (h *Handler) classify(r *http.Request) (delivery, bool) {
	hd := r.Header
	switch {
	case hd.Get("X-Gitea-Event") != "" || hd.Get("X-Forgejo-Event") != "":
		// Gitea also sends GitHub's headers; its own come first.
		ev := first(hd.Get("X-Gitea-Event"), hd.Get("X-Forgejo-Event"))
		sig := first(hd.Get("X-Gitea-Signature"), hd.Get("X-Forgejo-Signature"))
		return delivery{
			provider: "gitea", event: ev, id: first(hd.Get("X-Gitea-Delivery"), hd.Get("X-Forgejo-Delivery")),
			isPush: ev == "push",
			verify: func(body []byte) error { return h.verifyHMAC(sig, body) },
		}, true
	case hd.Get("X-Gitlab-Event") != "":
		ev := hd.Get("X-Gitlab-Event")
		tok := hd.Get("X-Gitlab-Token")
		return delivery{
			provider: "gitlab", event: ev, id: hd.Get("X-Gitlab-Event-UUID"),
			isPush: ev == "Push Hook",
			verify: func([]byte) error {
				if tok == "" {
					return errMissing
				}
				// Compare digests so that not even the length leaks.
				a, b := sha256.Sum256([]byte(tok)), sha256.Sum256(h.secret)
				if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
					return errMismatch
				}
				return nil
			},
		}, true
	case hd.Get("X-GitHub-Event") != "":
		ev := hd.Get("X-GitHub-Event")
		sig := hd.Get("X-Hub-Signature-256")
		return delivery{
			provider: "github", event: ev, id: hd.Get("X-GitHub-Delivery"),
			isPush: ev == "push", isPing: ev == "ping",
			verify: func(body []byte) error {
				if sig == "" {
					return errMissing
				}
				hexSig, ok := strings.CutPrefix(sig, "sha256=")
				if !ok {
					return errMismatch
				}
				return h.verifyHMAC(hexSig, body)
			},
		}, true
	}
	return delivery{}, false
}

func (h *Handler) verifyHMAC(hexSig string, body []byte) error {
	if hexSig == "" {
		return errMissing
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return errMismatch
	}
	m := hmac.New(sha256.New, h.secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return errMismatch
	}
	return nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "webhook: POST only", http.StatusMethodNotAllowed)
		return
	}
	d, ok := h.classify(r)
	if !ok {
		h.log.Warn("webhook rejected", "remote", r.RemoteAddr, "reason", "no GitHub, GitLab or Gitea event header")
		http.Error(w, "webhook: unknown sender (no GitHub, GitLab or Gitea event header)", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.log.Warn("webhook rejected", "provider", d.provider, "delivery", d.id, "remote", r.RemoteAddr, "reason", "body too large", "limit", h.maxBody)
			http.Error(w, fmt.Sprintf("webhook: body larger than %d bytes", h.maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "webhook: reading body failed", http.StatusBadRequest)
		return
	}
	if err := d.verify(body); err != nil {
		h.log.Warn("webhook rejected", "provider", d.provider, "event", d.event, "delivery", d.id, "remote", r.RemoteAddr, "reason", err.Error())
		http.Error(w, "webhook: "+err.Error(), http.StatusUnauthorized)
		return
	}
	if d.isPing || !d.isPush {
		h.log.Debug("webhook ignored", "provider", d.provider, "event", d.event, "delivery", d.id)
		fmt.Fprintf(w, "ignored %s event\n", d.event)
		return
	}
	var push struct {
		Ref string `json:"ref"`
	}
	if err := json.Unmarshal(body, &push); err != nil || push.Ref == "" {
		h.log.Warn("webhook rejected", "provider", d.provider, "delivery", d.id, "reason", "push event without a ref")
		http.Error(w, "webhook: push event without a ref", http.StatusBadRequest)
		return
	}
	if push.Ref != h.ref {
		h.log.Debug("webhook ignored", "provider", d.provider, "delivery", d.id, "ref", push.Ref)
		fmt.Fprintf(w, "ignored push to %s\n", push.Ref)
		return
	}
	h.log.Info("webhook push", "provider", d.provider, "delivery", d.id, "ref", push.Ref)
	h.trigger()
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintln(w, "fetch triggered")
}
