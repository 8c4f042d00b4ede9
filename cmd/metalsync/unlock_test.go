package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/repo/lease"
)

func TestParseUnlock(t *testing.T) {
	tests := []struct {
		args     []string
		want     unlockArgs
		wantCode int
	}{
		{[]string{"abc"}, unlockArgs{dir: ".", id: "abc"}, -1},
		{[]string{"inv", "abc"}, unlockArgs{dir: "inv", id: "abc"}, -1},
		{[]string{"--repo", "git://h/r", "--git-username", "u", "abc"}, unlockArgs{repo: "git://h/r", dir: ".", id: "abc", remote: remoteFlags{gitUsername: "u"}}, -1},
		{nil, unlockArgs{}, exitUsage},
		{[]string{"--repo", "git://h/r", "inv", "abc"}, unlockArgs{}, exitUsage},
		{[]string{"a", "b", "c"}, unlockArgs{}, exitUsage},
		{[]string{""}, unlockArgs{}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, code := parseUnlock(tt.args, &Env{Stdio: Stdio{Err: io.Discard}})
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d", code, tt.wantCode)
			}
			if tt.wantCode == -1 {
				if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(unlockArgs{}, remoteFlags{})); diff != "" {
					t.Errorf("args (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestAbsRemoteURL(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://git.example.net/inv.git", "https://git.example.net/inv.git"},
		{"file:///srv/inv.git", "file:///srv/inv.git"},
		{"git@git.example.net:ops/inv.git", "git@git.example.net:ops/inv.git"},
		{"/srv/git/inv.git", "file:///srv/git/inv.git"},
		{"../inv.git", "file:///home/op/inv.git"},
	}
	for _, tt := range tests {
		if got := absRemoteURL("/home/op/clone", tt.url); got != tt.want {
			t.Errorf("absRemoteURL(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

// A held lease broken by `metalsync unlock` tells its holder to stop, and
// the holder's release then leaves the next holder's lease alone.
func TestHoldLeaseReportsLoss(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	req := lease.Request{Holder: "metalsync apply test", Operation: "apply", TTL: 30 * time.Millisecond}
	lost := make(chan error, 1)
	release, err := holdLease(ctx, lease.ForDir(dir), req, "metalsync unlock", func(err error) { lost <- err })
	if err != nil {
		t.Fatal(err)
	}
	cur, err := lease.ForDir(dir).Current(ctx)
	if err != nil || cur == nil {
		t.Fatalf("current lease = %v, %v", cur, err)
	}
	var stdout, stderr strings.Builder
	env := &Env{Stdio: Stdio{Out: &stdout, Err: &stderr}, Getenv: func(string) string { return "" }}
	if code := runUnlock(ctx, []string{dir, cur.ID}, env); code != exitOK {
		t.Fatalf("unlock exit %d: %s", code, stderr.String())
	}
	if err := <-lost; !errors.Is(err, lease.ErrLost) {
		t.Fatalf("onLost got %v, want ErrLost", err)
	}
	next, err := lease.ForDir(dir).Acquire(ctx, lease.Request{Holder: "next", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := release(); !errors.Is(err, lease.ErrLost) {
		t.Errorf("release of a broken lease = %v, want ErrLost", err)
	}
	if cur, err := lease.ForDir(dir).Current(ctx); err != nil || cur == nil || cur.ID != next.Record().ID {
		t.Errorf("after the broken holder's release: current lease %+v, %v; want the next holder's", cur, err)
	}
}
