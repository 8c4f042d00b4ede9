package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParsePlan(t *testing.T) {
	tests := []struct {
		args     []string
		want     planArgs
		wantCode int
	}{
		{nil, planArgs{dir: ".", format: "text"}, -1},
		{[]string{"inv"}, planArgs{dir: "inv", format: "text"}, -1},
		{[]string{"--refresh", "--format", "markdown", "--detailed-exitcode", "-o", "p.json", "inv"},
			planArgs{dir: "inv", refresh: true, format: "markdown", detailed: true, out: "p.json"}, -1},
		{[]string{"--simulate-agent", "--format=json"}, planArgs{dir: ".", format: "json", simulateAgent: true}, -1},
		{[]string{"--format", "yaml"}, planArgs{dir: ".", format: "yaml"}, exitUsage},
		{[]string{"a", "b"}, planArgs{dir: ".", format: "text"}, exitUsage},
		{[]string{"--bogus"}, planArgs{dir: ".", format: "text"}, exitUsage},
		{[]string{"-h"}, planArgs{dir: ".", format: "text"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, code := parsePlan(tt.args, &Env{Stdio: Stdio{Err: io.Discard}})
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d", code, tt.wantCode)
			}
			if tt.wantCode == -1 {
				if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(planArgs{})); diff != "" {
					t.Errorf("args (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestParseApply(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(planFile, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args     []string
		want     applyArgs
		wantCode int
	}{
		{nil, applyArgs{dir: ".", lock: true}, -1},
		{[]string{dir}, applyArgs{dir: dir, lock: true}, -1},
		{[]string{"--auto-approve", "--dir", dir, planFile}, applyArgs{dir: dir, planFile: planFile, autoApprove: true, lock: true}, -1},
		{[]string{"--refresh", "--simulate-agent", "inv"}, applyArgs{dir: "inv", refresh: true, simulateAgent: true, lock: true}, -1},
		{[]string{"a", "b"}, applyArgs{dir: "."}, exitUsage},
		{[]string{"--lock-timeout", "90s", "--ssh-key", "k", "--known-hosts", "kh", "inv"}, applyArgs{dir: "inv", lock: true, lockTimeout: 90 * time.Second, remote: remoteFlags{sshKey: "k", knownHosts: "kh"}}, -1},
		{[]string{"--lock=false", "inv"}, applyArgs{dir: "inv"}, -1},
		{[]string{"--lock=false", "--lock-timeout", "1m", "inv"}, applyArgs{}, exitUsage},
		{[]string{"--lock-timeout", "-1s", "inv"}, applyArgs{}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, code := parseApply(tt.args, &Env{Stdio: Stdio{Err: io.Discard}})
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d", code, tt.wantCode)
			}
			if tt.wantCode == -1 {
				if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(applyArgs{}, remoteFlags{})); diff != "" {
					t.Errorf("args (-want +got):\n%s", diff)
				}
			}
		})
	}
}
