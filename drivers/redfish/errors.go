package redfish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"metalsync.dev/metalsync/drivers"
)

// HTTPError is a non-2xx answer of the BMC.
type HTTPError struct {
	Method string
	Path   string
	Status int
	// Message is the BMC's own explanation (Redfish error message), if any.
	Message string
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, strings.ToLower(http.StatusText(e.Status)))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Status == http.StatusUnauthorized {
		s += ": " + drivers.ErrAuth.Error()
	}
	return s
}

// Unwrap classifies the status: 401 is drivers.ErrAuth, a 5xx other than
// 501 (which says "not implemented") is drivers.ErrBMCFailing.
func (e *HTTPError) Unwrap() error {
	switch {
	case e.Status == http.StatusUnauthorized:
		return drivers.ErrAuth
	case e.Status >= 500 && e.Status != http.StatusNotImplemented:
		return drivers.ErrBMCFailing
	}
	return nil
}

// statusIs reports whether err is an HTTPError with one of the statuses.
func statusIs(err error, statuses ...int) bool {
	var he *HTTPError
	if !errors.As(err, &he) {
		return false
	}
	for _, s := range statuses {
		if he.Status == s {
			return true
		}
	}
	return false
}

// httpError builds the error for a non-2xx response, with the Redfish
// message extracted from the body. The password is scrubbed from anything
// the BMC wrote, in case it echoes a request.
func (b *BMC) httpError(method, path string, resp *response) error {
	msg := redfishMessage(resp.body)
	if pw := b.password.Reveal(); pw != "" {
		msg = strings.ReplaceAll(msg, pw, "[redacted]")
	}
	return &HTTPError{Method: method, Path: path, Status: resp.status, Message: msg}
}

// redfishMessage returns the most specific message of a Redfish error body.
func redfishMessage(body []byte) string {
	var doc struct {
		Error struct {
			Message  string `json:"message"`
			Extended []struct {
				Message string `json:"Message"`
			} `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	for _, m := range doc.Error.Extended {
		if m.Message != "" {
			return m.Message
		}
	}
	return doc.Error.Message
}

// transportError classifies a failed round trip. The caller's own
// cancellation stays itself; everything else (dial, TLS, the per-call
// timeout, a cut connection) is drivers.ErrUnreachable. A TLS verification
// failure names the certificate the BMC presented.
func (b *BMC) transportError(ctx context.Context, method, path string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is already in the message
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: no answer within %s: %w", method, path, b.callTimeout, drivers.ErrUnreachable)
	}
	if subject, ok := certSubject(err); ok {
		return fmt.Errorf("%s %s: TLS certificate %q not trusted: %w: %w", method, path, subject, err, drivers.ErrUnreachable)
	}
	return fmt.Errorf("%s %s: %w: %w", method, path, err, drivers.ErrUnreachable)
}

// certSubject returns the subject of the certificate a TLS verification
// error is about.
func certSubject(err error) (string, bool) {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) && len(cve.UnverifiedCertificates) > 0 {
		return subjectOf(cve.UnverifiedCertificates[0]), true
	}
	var he x509.HostnameError
	if errors.As(err, &he) && he.Certificate != nil {
		return subjectOf(he.Certificate), true
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) && ua.Cert != nil {
		return subjectOf(ua.Cert), true
	}
	return "", false
}

func subjectOf(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return s
	}
	return "(empty subject)"
}

// isUnreachable reports whether err is a transport failure.
func isUnreachable(err error) bool { return errors.Is(err, drivers.ErrUnreachable) }
