package imagecache

import (
	"net/url"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://images.example/deb.qcow2", "https://images.example/deb.qcow2"},
		{"https://u:p@images.example/deb.qcow2?X-Amz-Signature=abc#frag", "https://redacted@images.example/deb.qcow2?redacted"},
		{"https://token@images.example/deb.qcow2", "https://redacted@images.example/deb.qcow2"},
		{"file:///srv/images/deb.raw", "file:///srv/images/deb.raw"},
		{"http://[::1]:namedport", "[unparseable URL]"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzRedactURL: whatever the input, the redacted form carries no
// password, user name, query or fragment.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"https://u:p@h/x?t=1#f", "http://h/x", "file:///x", "https://h/x?", "//u@h/p", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := redactURL(s)
		if out == "[unparseable URL]" {
			return
		}
		u, err := url.Parse(out)
		if err != nil {
			t.Fatalf("redacted %q does not parse: %v", out, err)
		}
		if u.User != nil && u.User.String() != "redacted" {
			t.Fatalf("redactURL(%q) = %q keeps userinfo", s, out)
		}
		if (u.RawQuery != "" && u.RawQuery != "redacted") || u.Fragment != "" {
			t.Fatalf("redactURL(%q) = %q keeps query or fragment", s, out)
		}
	})
}
