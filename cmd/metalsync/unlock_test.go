package main

import (
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
