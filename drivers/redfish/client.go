package redfish

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"metalsync.dev/metalsync/drivers"
)

// maxBody bounds what is read of one response: Redfish documents are small,
// and a broken BMC must not fill memory.
const maxBody = 8 << 20

// response is one HTTP exchange, body read and closed.
type response struct {
	path   string // where the answer came from, after redirects
	status int
	header http.Header
	body   []byte
}

// etag returns the response's ETag header, or the document's @odata.etag.
func (r *response) etag() string {
	if e := r.header.Get("ETag"); e != "" {
		return e
	}
	var doc struct {
		ETag string `json:"@odata.etag"`
	}
	if json.Unmarshal(r.body, &doc) == nil {
		return doc.ETag
	}
	return ""
}

// request is one call to the BMC.
type request struct {
	method  string
	path    string // absolute path, or a URL on the BMC's own host
	body    any    // marshalled as JSON when not nil
	ifMatch string
	// noAuth sends no credentials (service root, login).
	noAuth bool
}

// get GETs path and decodes the JSON document into each of into. A GET of
// the system that the BMC redirected moves the system to its new path.
func (b *conn) get(ctx context.Context, path string, into ...any) (*response, error) {
	resp, err := b.do(ctx, request{method: http.MethodGet, path: path})
	if err != nil {
		return nil, err
	}
	if resp.path != path {
		b.moveSystem(path, resp.path)
	}
	for _, v := range into {
		if err := json.Unmarshal(resp.body, v); err != nil {
			return nil, fmt.Errorf("GET %s: decode: %w", path, err)
		}
	}
	return resp, nil
}

// maxRedirects bounds the redirects followed for one request.
const maxRedirects = 3

// do sends one request with the current credentials. A 401 on a session
// token logs in again once and repeats the request (sessions expire; gofish
// does not renew them). Redirects to the BMC's own scheme and host are
// followed, at most maxRedirects: GET after any redirect, other methods,
// with their body, after 307 and 308 only. Any other status than 2xx
// becomes a *drivers.BMCError.
func (b *conn) do(ctx context.Context, r request) (*response, error) {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("%s %s: encode body: %w", r.method, r.path, err)
		}
	}
	asked := r.path
	for hops := 0; ; hops++ {
		token, basic := b.creds()
		resp, err := b.send(ctx, r, payload, token, basic)
		if err != nil {
			return nil, err
		}
		if resp.status == http.StatusUnauthorized && !r.noAuth && token != "" {
			if err := b.relogin(ctx, token); err != nil {
				return nil, err
			}
			token, basic = b.creds()
			if resp, err = b.send(ctx, r, payload, token, basic); err != nil {
				return nil, err
			}
		}
		if isRedirect(resp.status) {
			next, err := b.redirect(r, resp, hops)
			if err != nil {
				return nil, err
			}
			r.path = next
			continue
		}
		if resp.status < 200 || resp.status > 299 {
			return nil, b.httpError(r.method, asked, resp)
		}
		resp.path = r.path
		return resp, nil
	}
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirect returns the path a redirect answer points to, or the error that
// refuses it, naming where it pointed.
func (b *conn) redirect(r request, resp *response, hops int) (string, error) {
	status := fmt.Sprintf("%d %s", resp.status, strings.ToLower(http.StatusText(resp.status)))
	refuse := func(why string, to string) error {
		return &drivers.BMCError{
			Op: r.method + " " + r.path, StatusCode: resp.status, Status: status,
			Message: "redirected to " + to + ": " + why, Class: drivers.ErrPermanent,
		}
	}
	loc := resp.header.Get("Location")
	if loc == "" {
		return "", refuse("no Location given", `""`)
	}
	from, err := url.Parse(b.base.String() + r.path)
	if err != nil {
		return "", refuse("unparseable", strconvQuote(loc))
	}
	ref, err := url.Parse(loc)
	if err != nil {
		return "", refuse("unparseable", strconvQuote(loc))
	}
	target := from.ResolveReference(ref)
	named := target.Redacted()
	switch {
	case target.Scheme != b.base.Scheme || target.Host != b.base.Host:
		return "", refuse("another scheme or host than the BMC's; not followed", named)
	case r.method != http.MethodGet && r.method != http.MethodHead &&
		resp.status != http.StatusTemporaryRedirect && resp.status != http.StatusPermanentRedirect:
		return "", refuse("only 307 and 308 keep the method and body of a "+r.method+"; not followed", named)
	case hops >= maxRedirects:
		return "", refuse(fmt.Sprintf("more than %d redirects; not followed", maxRedirects), named)
	}
	return target.RequestURI(), nil
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// send is one HTTP round trip bounded by the call timeout.
func (b *conn) send(ctx context.Context, r request, payload []byte, token string, basic bool) (*response, error) {
	target, err := b.resolve(r.path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	callCtx, cancel := context.WithTimeout(ctx, b.callTimeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(callCtx, r.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.ifMatch != "" {
		req.Header.Set("If-Match", r.ifMatch)
	}
	if !r.noAuth {
		switch {
		case token != "":
			req.Header.Set("X-Auth-Token", token)
		case basic:
			raw := b.username + ":" + b.password.Reveal()
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(raw)))
		}
	}
	hresp, err := b.client.Do(req)
	if err != nil {
		return nil, b.transportError(ctx, r.method, r.path, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, maxBody))
	if err != nil {
		return nil, b.transportError(ctx, r.method, r.path, err)
	}
	return &response{status: hresp.StatusCode, header: hresp.Header, body: data}, nil
}

// resolve turns a path, or a URL on the BMC's own host (Location headers
// are often absolute), into the URL to request. Other hosts are refused:
// credentials go to the BMC and nowhere else.
func (b *conn) resolve(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	u, err := url.Parse(p)
	if err != nil {
		return "", fmt.Errorf("bad path: %w", err)
	}
	if u.IsAbs() || u.Host != "" {
		if u.Host != b.base.Host || (u.Scheme != "" && u.Scheme != b.base.Scheme) {
			return "", fmt.Errorf("refusing to follow a link to another host %q", u.Host)
		}
		u.Scheme, u.Host = "", ""
	}
	if !strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("relative path %q", p)
	}
	return b.base.Scheme + "://" + b.base.Host + u.RequestURI(), nil
}

// creds returns the session token ("" without a session) and whether to
// send basic auth instead.
func (b *conn) creds() (token string, basic bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.token, b.basic
}

// relogin replaces an expired session. Concurrent callers that saw the same
// stale token log in once.
func (b *conn) relogin(ctx context.Context, stale string) error {
	b.loginMu.Lock()
	defer b.loginMu.Unlock()
	if token, _ := b.creds(); token != stale {
		return nil
	}
	return b.login(ctx)
}

// login creates a session, or falls back to basic auth when the service
// has none.
func (b *conn) login(ctx context.Context) error {
	if b.username == "" {
		return nil
	}
	if b.sessionsPath == "" {
		b.setBasic()
		return nil
	}
	body := map[string]string{"UserName": b.username, "Password": b.password.Reveal()}
	resp, err := b.do(ctx, request{method: http.MethodPost, path: b.sessionsPath, body: body, noAuth: true})
	if err != nil {
		if statusIs(err, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented) {
			b.setBasic()
			return nil
		}
		return fmt.Errorf("login: %w", err)
	}
	token := resp.header.Get("X-Auth-Token")
	if token == "" {
		return fmt.Errorf("login: POST %s: no X-Auth-Token in the answer", b.sessionsPath)
	}
	loc := resp.header.Get("Location")
	if loc == "" {
		var doc struct {
			ID string `json:"@odata.id"`
		}
		if json.Unmarshal(resp.body, &doc) == nil {
			loc = doc.ID
		}
	}
	b.mu.Lock()
	b.token, b.sessionPath = token, loc
	b.mu.Unlock()
	return nil
}

// setBasic switches to basic auth for a service without sessions.
func (b *conn) setBasic() {
	b.mu.Lock()
	b.basic, b.token, b.sessionPath = true, "", ""
	b.mu.Unlock()
}

// logout deletes the session, if any.
func (b *conn) logout(ctx context.Context) error {
	b.mu.Lock()
	path := b.sessionPath
	b.mu.Unlock()
	if path == "" {
		return nil
	}
	_, err := b.do(ctx, request{method: http.MethodDelete, path: path})
	b.mu.Lock()
	b.token, b.sessionPath = "", ""
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}
