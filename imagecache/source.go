package imagecache

import (
	"fmt"
	"net/url"
	"strings"
)

// source is a validated Prepare request.
type source struct {
	url      *url.URL
	display  string // url with userinfo, query and fragment redacted
	checksum string // normalised "algo:hex"
	algo     string // sha256, sha512
	digest   string // lower-case hex
	format   string // raw, qcow2
	// key names the index entry: the same bytes prepared as raw and as
	// qcow2 give different disks.
	key string
}

func parseSource(rawURL, checksum, format string) (source, error) {
	var s source
	s.display = redactURL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		return s, fmt.Errorf("%w: unparseable URL", ErrRefused)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return s, fmt.Errorf("%w: URL has no host", ErrRefused)
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return s, fmt.Errorf("%w: file URL names host %q; only local files are read", ErrRefused, u.Host)
		}
		if u.Path == "" {
			return s, fmt.Errorf("%w: file URL has no path", ErrRefused)
		}
	default:
		return s, fmt.Errorf("%w: URL scheme %q; use http, https or file", ErrRefused, u.Scheme)
	}
	s.url = u
	algo, digest, ok := strings.Cut(checksum, ":")
	digest = strings.ToLower(digest)
	switch {
	case !ok:
		return s, fmt.Errorf("%w: checksum %q is not algo:hex", ErrRefused, checksum)
	case algo == "sha256" && isHex(digest, 64), algo == "sha512" && isHex(digest, 128):
	default:
		return s, fmt.Errorf("%w: checksum %q: want sha256:<64 hex> or sha512:<128 hex>", ErrRefused, checksum)
	}
	if format != "raw" && format != "qcow2" {
		return s, fmt.Errorf("%w: format %q; use raw or qcow2", ErrRefused, format)
	}
	s.algo, s.digest, s.format = algo, digest, format
	s.checksum = algo + ":" + digest
	s.key = algo + "-" + digest + "." + format
	return s, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// redactURL drops any userinfo, query and fragment, which may carry
// tokens, from a URL for logs and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL]" // do not echo what may hold a secret
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery = "redacted"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
