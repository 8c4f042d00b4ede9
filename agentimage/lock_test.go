package agentimage

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultLock(t *testing.T) {
	l, err := ParseLock(DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	k, err := l.KernelRelease()
	if err != nil || !strings.HasSuffix(k, "-amd64") {
		t.Fatalf("kernel release %q, %v", k, err)
	}
	again, err := ParseLock(l.Format())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(l, again); diff != "" {
		t.Errorf("Format round trip (-want +got):\n%s", diff)
	}
}

func TestParseLockRejects(t *testing.T) {
	good := string(DefaultLock)
	sum := strings.Repeat("a", 64)
	tests := []struct {
		name, lock, wantIn string
	}{
		{"no epoch", strings.Replace(good, "source-date-epoch 1764720000\n", "", 1), "no source-date-epoch"},
		{"two epochs", good + "source-date-epoch 5\n", "source-date-epoch"},
		{"bad sum", good + "deb foo 1.0 ABC\n", "sha256"},
		{"upper-case sum", good + "deb foo 1.0 " + strings.ToUpper(sum) + "\n", "sha256"},
		{"duplicate", good + "deb mdadm 4.2-5 " + sum + "\n", "twice"},
		{"option as name", good + "deb -o 1 " + sum + "\n", "invalid"},
		{"version with =", good + "deb foo 1=2 " + sum + "\n", "invalid"},
		{"two kernels", good + "deb linux-image-6.1.0-58-amd64 1 " + sum + "\n", "exactly one"},
		{"missing mdadm", strings.Replace(good, "deb mdadm ", "deb mdadm-x ", 1), "mdadm missing"},
		{"junk", good + "hello\n", "want"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLock([]byte(tt.lock))
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantIn)
			}
		})
	}
}

// FuzzParseLock: a lock from anywhere never panics, and what parses
// formats back to the same lock.
func FuzzParseLock(f *testing.F) {
	f.Add(DefaultLock)
	f.Add([]byte("source-date-epoch 1\ndeb linux-image-x 1 " + strings.Repeat("0", 64) + "\n"))
	f.Add([]byte("deb\n#\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLock(b)
		if err != nil {
			return
		}
		again, err := ParseLock(l.Format())
		if err != nil {
			t.Fatalf("formatted lock does not parse: %v", err)
		}
		if diff := cmp.Diff(l, again); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}
