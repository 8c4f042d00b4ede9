package githistory

import (
	"strings"
	"testing"
)

// FuzzDiff: any two versions of a file, whatever was committed, give a
// field diff without panicking, each field with a value on one side at
// least, within the bound.
func FuzzDiff(f *testing.F) {
	f.Add([]byte("spec:\n  power: \"off\"\n"), []byte("spec:\n  power: on\n  traits: [A, B]\n"))
	f.Add([]byte("a: &x [*x]\n"), []byte("1: 2\n"))
	f.Add([]byte("key: [unclosed\n"), []byte("a:\n  b:\n    c: {}\n"))
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"), []byte("- 1\n- 2\n"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		old, cur := parseDocument(a), parseDocument(b)
		if old.unparsed || cur.unparsed {
			return
		}
		opt := Options{MaxValue: 32, Redact: func(path, _ string) bool { return strings.HasSuffix(path, "password") }}
		for _, fd := range diffFields(old.leaves, cur.leaves, opt) {
			if fd.Old == "" && fd.New == "" {
				t.Errorf("%s: listed with no value on either side", fd.Path)
			}
			for _, v := range []string{fd.Old, fd.New} {
				if len(v) > 32+len("…") {
					t.Errorf("%s: value of %d bytes past the bound", fd.Path, len(v))
				}
			}
		}
	})
}
