// Package secret holds the one type for credential values: BMC passwords,
// Git tokens, webhook keys. It is a leaf so that drivers, Git and webhook
// code can all carry secrets without importing each other.
package secret

// Value is a credential. It never prints itself: fmt, slog, JSON and YAML
// all see "[redacted]"; Reveal is for the one place that must send it.
type Value string

// String redacts the secret.
func (Value) String() string { return "[redacted]" }

// GoString redacts the secret in %#v.
func (Value) GoString() string { return "[redacted]" }

// MarshalText redacts the secret in JSON, YAML and slog output.
func (Value) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Reveal returns the secret for the one place that must send it.
func (s Value) Reveal() string { return string(s) }
