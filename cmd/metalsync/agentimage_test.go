package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAgentImage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     agentImageArgs
		wantCode int
	}{
		{name: "defaults", args: []string{"build"}, want: agentImageArgs{agent: "metalsync.dev/metalsync/cmd/metalsync-agent", version: "dev"}, wantCode: -1},
		{name: "all", args: []string{"build", "--out", "o", "--agent", "./p", "--version", "1.2", "--lock", "l", "-C", "d", "--cache", "c", "--debs", "b", "--no-cache", "-v"},
			want: agentImageArgs{out: "o", agent: "./p", version: "1.2", lock: "l", dir: "d", cache: "c", debs: "b", noCache: true, verbose: true}, wantCode: -1},
		{name: "refresh", args: []string{"build", "--refresh-lock"}, want: agentImageArgs{agent: "metalsync.dev/metalsync/cmd/metalsync-agent", version: "dev", refreshLock: true}, wantCode: -1},
		{name: "no subcommand", args: nil, wantCode: exitUsage},
		{name: "other subcommand", args: []string{"push"}, wantCode: exitUsage},
		{name: "no-cache needs out", args: []string{"build", "--no-cache"}, wantCode: exitUsage},
		{name: "extra argument", args: []string{"build", "x"}, wantCode: exitUsage},
		{name: "help", args: []string{"build", "-h"}, wantCode: exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errb strings.Builder
			got, code := parseAgentImage(tt.args, &Env{Stdio: Stdio{Out: &strings.Builder{}, Err: &errb}})
			if code != tt.wantCode {
				t.Fatalf("code %d, want %d; stderr:\n%s", code, tt.wantCode, errb.String())
			}
			if code < 0 {
				if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(agentImageArgs{})); diff != "" {
					t.Errorf("args (-want +got):\n%s", diff)
				}
			}
		})
	}
}
