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
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"metalsync.dev/metalsync/drivers"
)

// permanentStatus are the HTTP statuses that say the request itself is
// wrong for this BMC: the same request will be refused again.
var permanentStatus = map[int]bool{
	http.StatusBadRequest:            true,
	http.StatusUnauthorized:          true,
	http.StatusForbidden:             true,
	http.StatusNotFound:              true,
	http.StatusMethodNotAllowed:      true,
	http.StatusNotAcceptable:         true,
	http.StatusGone:                  true,
	http.StatusRequestEntityTooLarge: true,
	http.StatusUnsupportedMediaType:  true,
	http.StatusUnprocessableEntity:   true,
	http.StatusNotImplemented:        true,
}

// Redfish Base registry messages that override the status: some BMCs
// answer a busy resource with 400 or 409, others a missing feature with
// 500. Matched on the message key, whatever the registry version.
var (
	transientMessages = map[string]bool{
		"ResourceInUse": true, "ServiceTemporarilyUnavailable": true, "ServiceShuttingDown": true,
		"SessionLimitExceeded": true, "ResourceExhaustion": true,
	}
	permanentMessages = map[string]bool{
		"ActionNotSupported": true, "ResourceMissingAtURI": true, "PropertyNotWritable": true,
		"PropertyUnknown": true, "PropertyValueNotInList": true, "ActionParameterNotSupported": true,
		"ActionParameterValueNotInList": true, "InsufficientPrivilege": true, "AccessDenied": true,
		"ResourceCannotBeDeleted": true, "ResourceTypeIncompatible": true,
	}
)

// classify returns the sentinel a BMC answer matches: ErrAuth for 401,
// ErrPermanent for a request the BMC will always refuse, ErrBMCFailing for
// the BMC's own failure (5xx but 501), nil for a refusal worth retrying
// (429, 409, 503 that says so...). Redfish message IDs override the
// status where a BMC picks an odd one.
func classify(status int, ids []string) error {
	for _, id := range ids {
		key := id[strings.LastIndex(id, ".")+1:]
		switch {
		case transientMessages[key] && status != http.StatusUnauthorized:
			if status >= 500 && status != http.StatusNotImplemented {
				return drivers.ErrBMCFailing
			}
			return nil
		case permanentMessages[key] && status != http.StatusUnauthorized && status != http.StatusTooManyRequests:
			return drivers.ErrPermanent
		}
	}
	switch {
	case status == http.StatusUnauthorized:
		return drivers.ErrAuth
	case permanentStatus[status]:
		return drivers.ErrPermanent
	case status >= 500:
		return drivers.ErrBMCFailing
	}
	return nil
}

// statusIs reports whether err is a BMC answer with one of the statuses.
func statusIs(err error, statuses ...int) bool {
	var be *drivers.BMCError
	if !errors.As(err, &be) {
		return false
	}
	return slices.Contains(statuses, be.StatusCode)
}

// httpError builds the error for a non-2xx response, with the Redfish
// messages extracted from the body, the pause a 503 or 429 asks for, and
// the password scrubbed from anything the BMC wrote (in case it echoes a
// request).
func (b *conn) httpError(method, path string, resp *response) error {
	msg, ids := redfishMessage(resp.body)
	msg = redact(msg, b.password.Reveal())
	e := &drivers.BMCError{
		Op:         method + " " + path,
		StatusCode: resp.status,
		Status:     fmt.Sprintf("%d %s", resp.status, strings.ToLower(http.StatusText(resp.status))),
		Message:    msg,
		Class:      classify(resp.status, ids),
	}
	if resp.status == http.StatusServiceUnavailable || resp.status == http.StatusTooManyRequests {
		e.RetryAfter = parseRetryAfter(resp.header.Get("Retry-After"), time.Now())
	}
	return e
}

// maxRetryAfter caps the pause a BMC may ask for: a broken header must not
// park a node for days.
const maxRetryAfter = 10 * time.Minute

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(h); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// redfishMessage returns the messages of a Redfish error body (every
// extended message, else the error's own) and their message IDs.
func redfishMessage(body []byte) (string, []string) {
	var doc struct {
		Error struct {
			Code     string `json:"code"`
			Message  string `json:"message"`
			Extended []struct {
				MessageID string `json:"MessageId"`
				Message   string `json:"Message"`
			} `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return "", nil
	}
	var msgs, ids []string
	for _, m := range doc.Error.Extended {
		if m.Message != "" && !slices.Contains(msgs, m.Message) {
			msgs = append(msgs, m.Message)
		}
		if m.MessageID != "" {
			ids = append(ids, m.MessageID)
		}
	}
	if len(msgs) == 0 && doc.Error.Message != "" {
		msgs = append(msgs, doc.Error.Message)
	}
	if doc.Error.Code != "" {
		ids = append(ids, doc.Error.Code)
	}
	return strings.Join(msgs, "; "), ids
}

// redact replaces the secret where it stands as a value of its own in
// text: quoted ('pw', "pw"), after "=" or ":", the whole text, or as a
// whole word that does not read as prose (it has a digit or a symbol).
// It is never replaced inside a longer word, and a password that is an
// ordinary word ("password") is left alone where the BMC uses that word
// in a sentence of its own ("invalid username or password").
func redact(text, secret string) string {
	if secret == "" || !strings.Contains(text, secret) {
		return text
	}
	if strings.TrimSpace(text) == secret {
		return "[redacted]"
	}
	prose := strings.IndexFunc(secret, func(r rune) bool { return !unicode.IsLetter(r) }) < 0
	var out strings.Builder
	rest := text
	for {
		i := strings.Index(rest, secret)
		if i < 0 {
			out.WriteString(rest)
			return out.String()
		}
		consumed := len(text) - len(rest)
		before, after := lastRune(text[:consumed+i]), firstRune(rest[i+len(secret):])
		whole := !wordRune(before) && !wordRune(after)
		quoted := isQuote(before) && before == after
		lead := strings.TrimRight(text[:consumed+i], " ")
		value := (strings.HasSuffix(lead, ":") || strings.HasSuffix(lead, "=")) && after != '=' && after != ':' // a value, not the next key
		out.WriteString(rest[:i])
		if whole && (quoted || value || !prose) {
			out.WriteString("[redacted]")
		} else {
			out.WriteString(secret)
		}
		rest = rest[i+len(secret):]
	}
}

func wordRune(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-')
}

func isQuote(r rune) bool { return r == '\'' || r == '"' || r == '`' }

func lastRune(s string) rune {
	r, _ := utf8.DecodeLastRuneInString(s)
	return r
}

func firstRune(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

// transportError classifies a failed round trip. The caller's own
// cancellation stays itself; everything else (dial, TLS, the per-call
// timeout, a cut connection) is drivers.ErrUnreachable. A TLS verification
// failure names the certificate the BMC presented.
func (b *conn) transportError(ctx context.Context, method, path string, err error) error {
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
