package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/schema"
)

// TestGitFetchesCounted: the revision source serve builds for a Git remote
// counts its fetches in metalsync_git_fetches_total by result. Its first
// fetch finds the head the start-up fetch (the site file) already read.
func TestGitFetchesCounted(t *testing.T) {
	srv := gittest.Daemon(t)
	gittest.Seed(t, srv.Base, "inv.git", map[string]string{"nodes/n1.yaml": "kind: Node\n"})
	env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, Getenv: func(string) string { return "" }}
	metrics := daemon.NewMetrics()
	a := serveArgs{repo: srv.URL("inv.git"), branch: "main"}
	in, err := buildGitIO(t.Context(), a, env, &schema.Loader{}, metrics, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	delivered := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- in.source.Run(ctx, nil, func(context.Context, string, fs.FS) { delivered <- struct{}{} })
	}()
	select {
	case <-delivered:
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff(map[string]float64{"unchanged": 1}, fetchCounts(t, metrics)); diff != "" {
		t.Errorf("metalsync_git_fetches_total (-want +got):\n%s", diff)
	}
}

// fetchCounts reads metalsync_git_fetches_total by result.
func fetchCounts(t *testing.T, m *daemon.Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "metalsync_git_fetches_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "result" {
					got[l.GetValue()] = mt.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}

// TestServePrivateGitHost: serve follows an https remote whose certificate
// comes from a private CA only with --git-ca-file, and takes the token
// from the variable --git-password-env names, never from the command line.
func TestServePrivateGitHost(t *testing.T) {
	base := t.TempDir()
	gittest.Seed(t, base, "inv.git", map[string]string{"nodes/n1.yaml": "kind: Node\n"})
	url, caFile := gittest.HTTPS(t, base, "metalsync", "tok-Secret-42")
	vars := map[string]string{"GIT_TOKEN": "tok-Secret-42"}
	env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, Getenv: func(k string) string { return vars[k] }}
	args := []string{"--repo", url + "/inv.git", "--git-username", "metalsync", "--git-password-env", "GIT_TOKEN"}
	build := func(extra ...string) error {
		a, code := parseServe(append(slices.Clone(args), extra...), env)
		if code >= 0 {
			t.Fatalf("parseServe exit %d", code)
		}
		_, err := buildGitIO(t.Context(), a, env, &schema.Loader{}, daemon.NewMetrics(), slog.New(slog.DiscardHandler))
		return err
	}
	if err := build(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without --git-ca-file: %v, want a certificate error", err)
	}
	if err := build("--git-ca-file", caFile); err != nil {
		t.Errorf("with --git-ca-file: %v", err)
	}
	vars["GIT_TOKEN"] = "wrong"
	if err := build("--git-ca-file", caFile); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong token: %v, want an error that does not repeat the token", err)
	}
}

// TestRemoteFlags: every command that reaches a remote takes the same
// credentials flags, and the secret-holding variables are reserved.
func TestRemoteFlags(t *testing.T) {
	in := []string{"--ssh-key", "k", "--ssh-key-passphrase-env", "PASS", "--known-hosts", "kh", "--git-username", "u", "--git-password-env", "TOK", "--git-ca-file", "ca.pem"}
	want := remoteFlags{sshKey: "k", sshPassphraseEnv: "PASS", knownHosts: "kh", gitUsername: "u", gitPasswordEnv: "TOK", gitCAFile: "ca.pem"}
	env := &Env{Stdio: Stdio{Out: io.Discard, Err: io.Discard}, Getenv: func(k string) string { return map[string]string{"PASS": "pp", "TOK": "tt"}[k] }}
	s, code := parseServe(append([]string{"--repo", "https://git.example.net/inv.git"}, in...), env)
	if code >= 0 || s.remoteFlags != want {
		t.Errorf("serve: exit %d, %+v", code, s.remoteFlags)
	}
	u, code := parseUnlock(append([]string{"--repo", "https://git.example.net/inv.git", "abc"}, in...), env)
	if code >= 0 || u.remote != want {
		t.Errorf("unlock: exit %d, %+v", code, u.remote)
	}
	auth := want.auth(env)
	if auth.CAFile != "ca.pem" || auth.SSHKeyPassphrase.Reveal() != "pp" || auth.Password.Reveal() != "tt" {
		t.Errorf("auth: %+v", auth)
	}
	if got := want.secretEnvs(); !slices.Equal(got, []string{"TOK", "PASS"}) {
		t.Errorf("secretEnvs = %v", got)
	}
}

func TestStatusIgnoreDir(t *testing.T) {
	tests := []struct {
		status *schema.StatusTarget
		want   string
	}{
		{nil, ""},
		{&schema.StatusTarget{Directory: "status"}, "status"},
		{&schema.StatusTarget{Directory: "observed/"}, "observed"},
		{&schema.StatusTarget{Directory: "ops/status"}, "ops"},
		{&schema.StatusTarget{Branch: "status", Directory: "status"}, ""},
		{&schema.StatusTarget{Branch: "main", Directory: "status"}, "status"},
		{&schema.StatusTarget{Branch: "status"}, ""},
	}
	for _, tt := range tests {
		if got := statusIgnoreDir(schema.SiteSpec{Status: tt.status}, "main"); got != tt.want {
			t.Errorf("statusIgnoreDir(%+v) = %q, want %q", tt.status, got, tt.want)
		}
	}
}

// TestServeResumesFromStatusBranch: with status on a separate branch, a
// starting daemon resumes from the status recorded there, write-ahead
// intent included; a broken status file there stops the start.
func TestServeResumesFromStatusBranch(t *testing.T) {
	srv := gittest.Daemon(t)
	site := "apiVersion: metalsync.dev/v1alpha1\nkind: Site\nmetadata: {name: test}\nspec:\n  status: {branch: observed, directory: st}\n"
	bare := gittest.Seed(t, srv.Base, "inv.git", map[string]string{"metalsync.yaml": site})
	env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, Getenv: func(string) string { return "" }}
	a := serveArgs{repo: srv.URL("inv.git"), branch: "main"}
	start := func() (inventoryIO, error) {
		return buildGitIO(t.Context(), a, env, &schema.Loader{}, daemon.NewMetrics(), slog.New(slog.DiscardHandler))
	}

	// No status branch yet: nothing to resume from.
	in, err := start()
	if err != nil {
		t.Fatal(err)
	}
	inv := &schema.Inventory{Status: map[string]*schema.NodeStatus{}}
	in.resume(inv)
	if len(inv.Status) != 0 {
		t.Errorf("resumed %d statuses from a branch that does not exist", len(inv.Status))
	}

	// The branch records an intent: the first revision gets it, later ones
	// keep their own.
	work := gittest.Clone(t, bare)
	gittest.Git(t, work, "checkout", "-q", "--orphan", "observed")
	gittest.Git(t, work, "rm", "-rqf", ".")
	status := "apiVersion: metalsync.dev/v1alpha1\nkind: NodeStatus\nmetadata: {name: n1}\nstatus:\n  provisionState: deploying\n  operation:\n    kind: deploy\n    step: 2\n    steps: [a, b, write_image]\n    intent: {step: write_image, id: c-7}\n"
	gittest.WriteFiles(t, work, map[string]string{"st/rack1/n1.yaml": status})
	gittest.Git(t, work, "add", "-A")
	gittest.Git(t, work, "commit", "-qm", "status")
	gittest.Git(t, work, "push", "-q", "origin", "observed")
	if in, err = start(); err != nil {
		t.Fatal(err)
	}
	first, second := &schema.Inventory{}, &schema.Inventory{}
	in.resume(first)
	in.resume(second)
	st := first.Status["n1"]
	if st == nil || st.Status.Operation == nil || st.Status.Operation.Intent == nil || st.Status.Operation.Intent.ID != "c-7" {
		t.Fatalf("resumed status of n1: %+v", st)
	}
	if second.Status != nil {
		t.Errorf("a later revision was given the start's status too")
	}

	// A broken status file on the branch stops the start, naming it.
	gittest.WriteFiles(t, work, map[string]string{"st/rack1/n1.yaml": "status: [\n"})
	gittest.Git(t, work, "commit", "-qam", "broken")
	gittest.Git(t, work, "push", "-q", "origin", "observed")
	if _, err := start(); err == nil || !strings.Contains(err.Error(), "status branch observed") || !strings.Contains(err.Error(), "st/rack1/n1.yaml") {
		t.Errorf("broken status file: %v", err)
	}
}

// TestStatusBranchAtRoot: a status branch may hold the files at its root.
func TestStatusBranchAtRoot(t *testing.T) {
	srv := gittest.Daemon(t)
	site := "apiVersion: metalsync.dev/v1alpha1\nkind: Site\nmetadata: {name: test}\nspec:\n  status: {branch: observed}\n"
	bare := gittest.Seed(t, srv.Base, "inv.git", map[string]string{"metalsync.yaml": site})
	work := gittest.Clone(t, bare)
	gittest.Git(t, work, "checkout", "-q", "--orphan", "observed")
	gittest.Git(t, work, "rm", "-rqf", ".")
	gittest.WriteFiles(t, work, map[string]string{"rack1/n1.yaml": "apiVersion: metalsync.dev/v1alpha1\nkind: NodeStatus\nmetadata: {name: n1}\nstatus: {provisionState: active, power: \"on\"}\n"})
	gittest.Git(t, work, "add", "-A")
	gittest.Git(t, work, "commit", "-qm", "status")
	gittest.Git(t, work, "push", "-q", "origin", "observed")
	env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, Getenv: func(string) string { return "" }}
	in, err := buildGitIO(t.Context(), serveArgs{repo: srv.URL("inv.git"), branch: "main"}, env, &schema.Loader{}, daemon.NewMetrics(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	inv := &schema.Inventory{}
	in.resume(inv)
	if st := inv.Status["n1"]; st == nil || st.Status.ProvisionState != "active" {
		t.Errorf("resumed status of n1: %+v", st)
	}
}

func TestServePageRefreshFlag(t *testing.T) {
	env := &Env{Stdio: Stdio{Out: io.Discard, Err: io.Discard}}
	if a, code := parseServe([]string{"--local", ".", "--page-refresh", "1m"}, env); code >= 0 || a.pageRefresh != time.Minute {
		t.Errorf("--page-refresh 1m: exit %d, %s", code, a.pageRefresh)
	}
	if a, code := parseServe([]string{"--local", "."}, env); code >= 0 || a.pageRefresh != 15*time.Second {
		t.Errorf("default: exit %d, %s", code, a.pageRefresh)
	}
	if _, code := parseServe([]string{"--local", ".", "--page-refresh", "500ms"}, env); code != exitUsage {
		t.Errorf("--page-refresh 500ms: exit %d, want %d", code, exitUsage)
	}
}
