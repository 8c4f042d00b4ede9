package gitsource_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/test/tools"
)

var seedFiles = map[string]string{
	"metalsync.yaml":      "kind: Site\n",
	"nodes/r1/n01.yaml":   "kind: Node\nname: r1-n01\n",
	"nodes/r1/n02.yaml":   "kind: Node\nname: r1-n02\n",
	"owners/team-a.yaml":  "kind: Owner\n",
	"templates/raid.yaml": "kind: DeployTemplate\n",
	"status/r1-n01.yaml":  "kind: NodeStatus\n",
}

// readAll returns every file of fsys, path → content.
func readAll(t *testing.T, fsys fs.FS) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		got[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestFetchFollowsPushes(t *testing.T) {
	for _, remote := range []string{"git", "file"} {
		t.Run(remote, func(t *testing.T) {
			srv := gittest.Daemon(t)
			bare := gittest.Seed(t, srv.Base, "inv.git", seedFiles)
			url := srv.URL("inv.git")
			if remote == "file" {
				url = "file://" + bare
			}
			src, err := gitsource.New(gitsource.Config{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			commit, changed, err := src.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := gittest.Git(t, bare, "rev-parse", "main"); commit != want || !changed {
				t.Fatalf("first fetch = %s changed=%v, want %s changed=true", commit, changed, want)
			}
			fsys, err := src.Tree(commit)
			if err != nil {
				t.Fatal(err)
			}
			if err := fstest.TestFS(fsys, "metalsync.yaml", "nodes/r1/n01.yaml", "status/r1-n01.yaml"); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(seedFiles, readAll(t, fsys)); diff != "" {
				t.Errorf("tree (-want +got):\n%s", diff)
			}

			// Unchanged remote: same commit, not changed.
			again, changed, err := src.Fetch(ctx)
			if err != nil || again != commit || changed {
				t.Fatalf("refetch = %s changed=%v err=%v, want %s unchanged", again, changed, err, commit)
			}

			// A person pushes: rename a node, edit another, add a template.
			work := gittest.Clone(t, bare)
			gittest.Git(t, work, "mv", "nodes/r1/n02.yaml", "nodes/r1/n03.yaml")
			gittest.WriteFiles(t, work, map[string]string{
				"nodes/r1/n01.yaml":   "kind: Node\nname: r1-n01\npower: off\n",
				"templates/bios.yaml": "kind: DeployTemplate\n",
			})
			gittest.Git(t, work, "add", "-A")
			gittest.Git(t, work, "commit", "-qm", "edit nodes")
			gittest.Git(t, work, "push", "-q", "origin", "main")

			next, changed, err := src.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := gittest.Git(t, bare, "rev-parse", "main"); next != want || !changed {
				t.Fatalf("fetch after push = %s changed=%v, want %s changed=true", next, changed, want)
			}
			fsys, err = src.Tree(next)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for k, v := range seedFiles {
				want[k] = v
			}
			delete(want, "nodes/r1/n02.yaml")
			want["nodes/r1/n03.yaml"] = seedFiles["nodes/r1/n02.yaml"]
			want["nodes/r1/n01.yaml"] = "kind: Node\nname: r1-n01\npower: off\n"
			want["templates/bios.yaml"] = "kind: DeployTemplate\n"
			if diff := cmp.Diff(want, readAll(t, fsys)); diff != "" {
				t.Errorf("tree after push (-want +got):\n%s", diff)
			}
			// The old tree is still readable: the daemon may be mid-pass on it.
			old, err := src.Tree(commit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(seedFiles, readAll(t, old)); diff != "" {
				t.Errorf("old tree (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFetchOnDisk(t *testing.T) {
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", seedFiles)
	dir := filepath.Join(t.TempDir(), "cache.git")
	ctx := context.Background()
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git"), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c1, _, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A second Source on the same directory (a restarted daemon) has the
	// objects already and reads the tree without fetching them again.
	work := gittest.Clone(t, bare)
	gittest.WriteFiles(t, work, map[string]string{"nodes/r1/n09.yaml": "kind: Node\n"})
	gittest.Git(t, work, "add", "-A")
	gittest.Git(t, work, "commit", "-qm", "add n09")
	gittest.Git(t, work, "push", "-q", "origin", "main")
	src2, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git"), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src2.Tree(c1); err != nil {
		t.Fatalf("restarted source lost commit %s: %v", c1, err)
	}
	c2, _, err := src2.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := src2.Tree(c2)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(fsys, "nodes/r1/n09.yaml"); err != nil || string(b) != "kind: Node\n" {
		t.Fatalf("n09 = %q, %v", b, err)
	}
	// A real git can read the cache: it is an ordinary bare repository.
	if got := gittest.Git(t, dir, "rev-parse", "refs/remotes/origin/main"); got != c2 {
		t.Errorf("git sees %s, want %s", got, c2)
	}
}

func TestFetchMissingBranch(t *testing.T) {
	srv := gittest.Daemon(t)
	gittest.Seed(t, srv.Base, "inv.git", seedFiles)
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git"), Branch: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = src.Fetch(context.Background())
	if !errors.Is(err, gitsource.ErrNoBranch) {
		t.Fatalf("err = %v, want ErrNoBranch", err)
	}
	if !strings.Contains(err.Error(), srv.URL("inv.git")) {
		t.Errorf("error %q does not name the remote", err)
	}
}

func TestPushIsCompareAndSwap(t *testing.T) {
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", seedFiles)
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	head, _, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Someone else pushes first.
	work := gittest.Clone(t, bare)
	gittest.Git(t, work, "commit", "-q", "--allow-empty", "-m", "human")
	gittest.Git(t, work, "push", "-q", "origin", "main")
	human := gittest.Git(t, bare, "rev-parse", "main")

	// Pushing our old head over theirs must fail as moved, leaving theirs.
	err = src.Push(ctx, "main", plumbing.NewHash(head), plumbing.NewHash(head), nil)
	if !errors.Is(err, gitsource.ErrRemoteMoved) {
		t.Fatalf("push err = %v, want ErrRemoteMoved", err)
	}
	if got := gittest.Git(t, bare, "rev-parse", "main"); got != human {
		t.Fatalf("remote main = %s, want the human commit %s", got, human)
	}
}

func TestRunDeliversSpecChanges(t *testing.T) {
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", seedFiles)
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git")})
	if err != nil {
		t.Fatal(err)
	}
	// Set after New, as serve does once it has read the site file.
	if err := src.SetIgnoreDir("a/b"); err == nil {
		t.Error("SetIgnoreDir took a nested directory")
	}
	if err := src.SetIgnoreDir("status"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trigger := make(chan struct{}, 1)
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, time.Hour, trigger, func(ctx context.Context, commit string, fsys fs.FS) {
			b, err := fs.ReadFile(fsys, "nodes/r1/n01.yaml")
			if err != nil {
				t.Errorf("read in onCommit: %v", err)
			}
			got <- commit + " " + string(b)
		})
	}()
	first := <-got
	if want := gittest.Git(t, bare, "rev-parse", "main") + " " + seedFiles["nodes/r1/n01.yaml"]; first != want {
		t.Fatalf("first delivery %q, want %q", first, want)
	}

	work := gittest.Clone(t, bare)
	push := func(files map[string]string, msg string) string {
		gittest.WriteFiles(t, work, files)
		gittest.Git(t, work, "add", "-A")
		gittest.Git(t, work, "commit", "-qm", msg)
		gittest.Git(t, work, "push", "-q", "origin", "main")
		return gittest.Git(t, work, "rev-parse", "HEAD")
	}
	// A status-only commit is not delivered; the spec change after it is.
	push(map[string]string{"status/r1-n01.yaml": "kind: NodeStatus\npower: on\n"}, "status only")
	trigger <- struct{}{}
	spec := push(map[string]string{"nodes/r1/n01.yaml": "changed\n"}, "spec")
	trigger <- struct{}{}
	select {
	case d := <-got:
		if d != spec+" changed\n" {
			t.Fatalf("delivery %q, want the spec commit %s", d, spec)
		}
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	close(got)
	for d := range got {
		t.Errorf("unexpected extra delivery %q", d)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  gitsource.Config
		want string
	}{
		{"empty url", gitsource.Config{}, "remote URL is empty"},
		{"bad scheme", gitsource.Config{URL: "ftp://h/r"}, `unsupported scheme "ftp"`},
		{"ssh without key", gitsource.Config{URL: "ssh://git@h/r", Auth: gitsource.Auth{KnownHostsFile: "kh"}}, "no ssh-agent fallback"},
		{"ssh without known_hosts", gitsource.Config{URL: "git@h:r.git", Auth: gitsource.Auth{SSHKeyFile: key}}, "known_hosts file"},
		{"ssh with password", gitsource.Config{URL: "ssh://h/r", Auth: gitsource.Auth{Password: "x"}}, "use a key file"},
		{"https with ssh key", gitsource.Config{URL: "https://h/r", Auth: gitsource.Auth{SSHKeyFile: key}}, "SSH key settings"},
		{"git with credentials", gitsource.Config{URL: "git://h/r", Auth: gitsource.Auth{Username: "u"}}, "no authentication"},
		{"bad key", gitsource.Config{URL: "ssh://h/r", Auth: gitsource.Auth{SSHKeyFile: key, KnownHostsFile: "kh"}}, "ssh key"},
		{"bad branch", gitsource.Config{URL: "git://h/r", Branch: "a..b"}, "not a valid branch"},
		{"nested ignore", gitsource.Config{URL: "git://h/r", IgnoreDir: "a/b"}, "top-level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gitsource.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestErrorsRedactCredentials(t *testing.T) {
	tools.Require(t, "git")
	// A closed port on loopback: the fetch fails and its error must name
	// the remote without the password, whether it came in the URL or in
	// Auth.
	for _, tc := range []struct {
		name string
		cfg  gitsource.Config
	}{
		{"in url", gitsource.Config{URL: "http://bot:s3cr3t-pw@127.0.0.1:1/inv.git"}},
		{"in auth", gitsource.Config{URL: "http://127.0.0.1:1/s3cr3t-pw/inv.git?token=s3cr3t-pw",
			Auth: gitsource.Auth{Username: "bot", Password: "s3cr3t-pw"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := gitsource.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(src.Name(), "s3cr3t") && tc.name == "in url" {
				t.Errorf("Name() = %q shows the password", src.Name())
			}
			if strings.Contains(src.Name(), "token=") {
				t.Errorf("Name() = %q shows the query", src.Name())
			}
			_, _, err = src.Fetch(context.Background())
			if err == nil {
				t.Fatal("fetch from a closed port succeeded")
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error shows the password: %v", err)
			}
			if !strings.Contains(err.Error(), "127.0.0.1:1") {
				t.Errorf("error does not name the remote: %v", err)
			}
		})
	}
}

func TestName(t *testing.T) {
	tests := []struct{ url, want string }{
		{"git@github.com:org/inv.git", "git@github.com:org/inv.git"},
		{"ssh://git@host:2222/inv.git", "ssh://git@host:2222/inv.git"},
		{"https://bot:pw@host/inv.git?x=1", "https://bot:redacted@host/inv.git"},
		{"file:///srv/inv.git", "file:///srv/inv.git"},
	}
	for _, tc := range tests {
		// Name does not depend on credentials being usable; give SSH
		// remotes none so New stops before reading files: use the error.
		src, err := gitsource.New(gitsource.Config{URL: tc.url})
		var got string
		if err != nil {
			got = strings.SplitN(strings.TrimPrefix(err.Error(), "remote "), ": ", 2)[0]
		} else {
			got = src.Name()
		}
		if got != tc.want {
			t.Errorf("name of %q = %q, want %q", tc.url, got, tc.want)
		}
	}
}

func TestTreeRejectsBadPaths(t *testing.T) {
	srv := gittest.Daemon(t)
	gittest.Seed(t, srv.Base, "inv.git", seedFiles)
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git")})
	if err != nil {
		t.Fatal(err)
	}
	commit, _, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := src.Tree(commit)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../x", "/nodes", "nodes/", "nodes/r1/n01.yaml/x", "missing.yaml", "nodes//r1"} {
		if _, err := fs.ReadFile(fsys, p); err == nil {
			t.Errorf("ReadFile(%q) succeeded", p)
		}
	}
	if _, err := fs.ReadFile(fsys, "nodes"); err == nil {
		t.Error("ReadFile of a directory succeeded")
	}
	ents, err := fs.ReadDir(fsys, "nodes/r1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !sort.StringsAreSorted(names) || len(names) != 2 {
		t.Errorf("ReadDir = %v", names)
	}
	if _, err := src.Tree("nothex"); err == nil {
		t.Error("Tree(nothex) succeeded")
	}
	if _, err := src.Tree(strings.Repeat("ab", 20)); err == nil {
		t.Error("Tree(unknown commit) succeeded")
	}
}

// TestShallowFetchAndCompaction checks the two ways the in-memory store
// stays small: fetches are shallow (so a file reverted to content that
// only older history holds must still arrive) and the store is rebuilt
// after CompactAfter new commits, while trees handed out stay readable.
func TestShallowFetchAndCompaction(t *testing.T) {
	srv := gittest.Daemon(t)
	bare := gittest.Seed(t, srv.Base, "inv.git", map[string]string{"nodes/a.yaml": "version: 1\n"})
	work := gittest.Clone(t, bare)
	push := func(content, msg string) {
		t.Helper()
		gittest.WriteFiles(t, work, map[string]string{"nodes/a.yaml": content})
		gittest.Git(t, work, "commit", "-qam", msg)
		gittest.Git(t, work, "push", "-q", "origin", "main")
	}
	push("version: 2\n", "v2")

	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git"), CompactAfter: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	read := func(commit string) string {
		t.Helper()
		fsys, err := src.Tree(commit)
		if err != nil {
			t.Fatal(err)
		}
		b, err := fs.ReadFile(fsys, "nodes/a.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first, _, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	firstFS, err := src.Tree(first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Tree(gittest.Git(t, bare, "rev-parse", "main^")); err == nil {
		t.Error("first fetch brought history: not shallow")
	}
	var got []string
	for i, content := range []string{"version: 1\n", "version: 3\n", "version: 2\n", "version: 1\n", "version: 4\n"} {
		push(content, fmt.Sprintf("step %d", i))
		c, changed, err := src.Fetch(ctx)
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if !changed {
			t.Fatalf("fetch %d: not changed", i)
		}
		got = append(got, read(c))
	}
	want := []string{"version: 1\n", "version: 3\n", "version: 2\n", "version: 1\n", "version: 4\n"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("contents (-want +got):\n%s", diff)
	}
	// The first tree was handed out before the store was compacted.
	if b, err := fs.ReadFile(firstFS, "nodes/a.yaml"); err != nil || string(b) != "version: 2\n" {
		t.Errorf("tree from before compaction: %q, %v", b, err)
	}
	// After compaction the store no longer holds the first commit.
	if _, err := src.Tree(first); err == nil {
		t.Error("store still holds the first commit: no compaction happened")
	}
}

func TestHTTPSWithBasicAuthAndCA(t *testing.T) {
	base := t.TempDir()
	bare := gittest.Seed(t, base, "inv.git", seedFiles)
	url, ca := gittest.HTTPS(t, base, "bot", "s3cr3t-token")
	ctx := context.Background()

	src, err := gitsource.New(gitsource.Config{URL: url + "/inv.git",
		Auth: gitsource.Auth{Username: "bot", Password: "s3cr3t-token", CAFile: ca}})
	if err != nil {
		t.Fatal(err)
	}
	commit, _, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := gittest.Git(t, bare, "rev-parse", "main"); commit != want {
		t.Fatalf("fetched %s, want %s", commit, want)
	}

	tests := []struct {
		name string
		auth gitsource.Auth
		want string
	}{
		{"wrong password", gitsource.Auth{Username: "bot", Password: "wrong-pw", CAFile: ca}, "authentication required"},
		{"no credentials", gitsource.Auth{CAFile: ca}, "authentication required"},
		{"untrusted certificate", gitsource.Auth{Username: "bot", Password: "s3cr3t-token"}, "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := gitsource.New(gitsource.Config{URL: url + "/inv.git", Auth: tc.auth})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = src.Fetch(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("fetch error = %v, want one containing %q", err, tc.want)
			}
			for _, pw := range []string{"wrong-pw", "s3cr3t-token"} {
				if strings.Contains(err.Error(), pw) {
					t.Errorf("error shows a password: %v", err)
				}
			}
		})
	}
}
