package redfish

import (
	"testing"
	"time"
)

func TestRedact(t *testing.T) {
	cases := []struct {
		name, text, secret, want string
	}{
		{"prose-word-kept", "invalid username or password", "password", "invalid username or password"},
		{"quoted-word-redacted", "The value 'password' for Password is bad", "password", "The value '[redacted]' for Password is bad"},
		{"json-redacted", `{"Password":"password"}`, "password", `{"Password":"[redacted]"}`},
		{"key-value-redacted", "login failed: password=password", "password", "login failed: password=[redacted]"},
		{"colon-value-redacted", "Password: password", "password", "Password: [redacted]"},
		{"whole-text", "password", "password", "[redacted]"},
		{"not-prose-bare-redacted", "user admin with hunter2 refused", "hunter2", "user admin with [redacted] refused"},
		{"inside-longer-word-kept", "administrator admin2x", "admin2", "administrator admin2x"},
		{"every-occurrence", "'s3cret-pw' and \"s3cret-pw\"", "s3cret-pw", "'[redacted]' and \"[redacted]\""},
		{"no-secret", "anything", "", "anything"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := redact(tc.text, tc.secret); got != tc.want {
				t.Errorf("redact(%q, %q) = %q, want %q", tc.text, tc.secret, got, tc.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{"-5", 0},
		{"Thu, 01 Jan 2026 00:01:00 GMT", time.Minute},
		{"86400", maxRetryAfter},
		{"soon", 0},
	}
	for _, tc := range cases {
		if got := parseRetryAfter(tc.h, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}
