// Package tools lets tests demand real external programs (xorriso,
// ipmi_sim, cloud-init, git). Locally a missing program skips the test; in
// CI (CI=true) it fails it, because CI must run the real thing.
package tools

import (
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of the program name, or skips (locally) or
// fails (CI=true) the test when it is not installed.
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; CI must run this test for real (make test installs it)", name)
	}
	t.Skipf("%s is not installed; run `make test` as root to install it", name)
	return ""
}

// RequireFile is Require for a program at a fixed path, such as Debian's
// /usr/bin/python3 (which alone can import cloud-init).
func RequireFile(t testing.TB, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing; CI must run this test for real (make test installs it)", path)
	}
	t.Skipf("%s is missing; run `make test` as root to install it", path)
	return ""
}
