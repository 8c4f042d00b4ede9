package gitstatus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/internal/clock"
	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/repo/gitstatus"
)

var bot = gitstatus.Identity{Name: "metalsync", Email: "metalsync@example.com"}

var seedFiles = map[string]string{
	"metalsync.yaml":     "kind: Site\n",
	"nodes/r1-n01.yaml":  "kind: Node\n",
	"nodes/r1-n02.yaml":  "kind: Node\n",
	"status/r1-n01.yaml": "provisionState: available\n",
	"status/r1-n09.yaml": "provisionState: manageable\n",
}

func setup(t *testing.T) (bare string, src *gitsource.Source, url string) {
	t.Helper()
	srv := gittest.Daemon(t)
	bare = gittest.Seed(t, srv.Base, "inv.git", seedFiles)
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git"), IgnoreDir: "status"})
	if err != nil {
		t.Fatal(err)
	}
	return bare, src, srv.URL("inv.git")
}

// fixedClock stamps every commit with the same time, so that commits are
// reproducible; it waits in real time.
type fixedClock struct{ clock.Real }

func (fixedClock) Now() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }

func TestCommitTouchesOnlyStatus(t *testing.T) {
	bare, src, _ := setup(t)
	c, err := gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot, Clock: fixedClock{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	seed := gittest.Git(t, bare, "rev-parse", "main")
	res, err := c.Commit(ctx, []gitstatus.Change{
		{Node: "r1-n01", Data: []byte("provisionState: active\n"), Summary: "available→active"},
		{Node: "r1-n02", Data: []byte("provisionState: enroll\n"), Summary: "new→enroll"},
		{Node: "r1-n09", Data: nil, Summary: "forgotten"},
		{Node: "r1-n03", Data: nil}, // never had a file: no change
	})
	if err != nil {
		t.Fatal(err)
	}
	head := gittest.Git(t, bare, "rev-parse", "main")
	want := gitstatus.Result{Commit: head, Base: seed, Changed: []string{"r1-n01", "r1-n02", "r1-n09"}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if got := gittest.Git(t, bare, "rev-parse", "main^"); got != seed {
		t.Errorf("parent = %s, want seed %s", got, seed)
	}
	files := gittest.Git(t, bare, "diff", "--name-status", seed, head)
	wantFiles := "M\tstatus/r1-n01.yaml\nA\tstatus/r1-n02.yaml\nD\tstatus/r1-n09.yaml"
	if diff := cmp.Diff(wantFiles, files); diff != "" {
		t.Errorf("changed files (-want +got):\n%s", diff)
	}
	log := gittest.Git(t, bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%aI|%B", "main")
	wantLog := "metalsync <metalsync@example.com>|metalsync <metalsync@example.com>|2026-11-25T12:00:00+00:00|" +
		"status: 3 nodes changed (r1-n01 available→active, r1-n02 new→enroll, r1-n09 forgotten)\n\n" +
		"r1-n01 available→active\nr1-n02 new→enroll\nr1-n09 forgotten"
	if diff := cmp.Diff(wantLog, log); diff != "" {
		t.Errorf("commit (-want +got):\n%s", diff)
	}
	if got := gittest.Git(t, bare, "show", "main:status/r1-n01.yaml"); got != "provisionState: active" {
		t.Errorf("status file = %q", got)
	}
	// git's own consistency check of what we pushed.
	gittest.Git(t, bare, "fsck", "--strict")

	// The same content again makes no commit.
	res, err = c.Commit(ctx, []gitstatus.Change{{Node: "r1-n01", Data: []byte("provisionState: active\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != "" || gittest.Git(t, bare, "rev-parse", "main") != head {
		t.Errorf("unchanged batch committed: %+v", res)
	}
	if diff := cmp.Diff(gitstatus.Stats{Commits: 1, Unchanged: 1}, c.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestCommitReportsSpecMoved(t *testing.T) {
	bare, src, _ := setup(t)
	c, err := gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	write := func(data string) gitstatus.Result {
		t.Helper()
		res, err := c.Commit(ctx, []gitstatus.Change{{Node: "r1-n01", Data: []byte(data)}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if r := write("a\n"); r.SpecMoved {
		t.Error("first commit reports spec moved")
	}
	work := gittest.Clone(t, bare)
	// A person edits only status: not a spec change.
	gittest.WriteFiles(t, work, map[string]string{"status/r1-n02.yaml": "by hand\n"})
	gittest.Git(t, work, "add", "-A")
	gittest.Git(t, work, "commit", "-qm", "hand status")
	gittest.Git(t, work, "push", "-q", "origin", "main")
	if r := write("b\n"); r.SpecMoved {
		t.Error("status-only human commit reported as spec moved")
	}
	gittest.Git(t, work, "pull", "-q", "--rebase", "origin", "main")
	gittest.WriteFiles(t, work, map[string]string{"nodes/r1-n01.yaml": "kind: Node\npower: off\n"})
	gittest.Git(t, work, "commit", "-qam", "power off")
	gittest.Git(t, work, "push", "-q", "origin", "main")
	if r := write("c\n"); !r.SpecMoved {
		t.Error("spec change not reported")
	}
	if r := write("d\n"); r.SpecMoved {
		t.Error("spec moved reported twice for one change")
	}
}

func TestSeparateStatusBranch(t *testing.T) {
	bare, src, _ := setup(t)
	c, err := gitstatus.New(gitstatus.Config{Source: src, Branch: "status", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	main := gittest.Git(t, bare, "rev-parse", "main")
	for i, data := range []string{"one\n", "two\n"} {
		res, err := c.Commit(ctx, []gitstatus.Change{{Node: "r1-n01", Data: []byte(data)}, {Node: "r1-n02", Data: []byte("x\n")}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Commit == "" {
			t.Fatalf("commit %d made nothing", i)
		}
	}
	if got := gittest.Git(t, bare, "rev-parse", "main"); got != main {
		t.Errorf("spec branch moved: %s, want %s", got, main)
	}
	if got := gittest.Git(t, bare, "ls-tree", "-r", "--name-only", "status"); got != "r1-n01.yaml\nr1-n02.yaml" {
		t.Errorf("status branch files = %q", got)
	}
	if got := gittest.Git(t, bare, "rev-list", "--count", "status"); got != "2" {
		t.Errorf("status branch has %s commits, want 2", got)
	}
	if got := gittest.Git(t, bare, "show", "status:r1-n01.yaml"); got != "two" {
		t.Errorf("r1-n01 = %q", got)
	}
}

func TestConfigErrors(t *testing.T) {
	src, err := gitsource.New(gitsource.Config{URL: "git://127.0.0.1/x"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  gitstatus.Config
		want string
	}{
		{"no source", gitstatus.Config{Author: bot, Dir: "status"}, "no source"},
		{"no author", gitstatus.Config{Source: src, Dir: "status"}, "author"},
		{"no dir on spec branch", gitstatus.Config{Source: src, Author: bot}, "status directory is required"},
		{"escaping dir", gitstatus.Config{Source: src, Author: bot, Dir: "../x"}, "not a clean relative path"},
		{"git dir", gitstatus.Config{Source: src, Author: bot, Dir: ".git"}, "not a clean relative path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gitstatus.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	c, err := gitstatus.New(gitstatus.Config{Source: src, Author: bot, Dir: "status"})
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"", "..", "a/b", ".hidden", "a\\b"} {
		if _, err := c.Commit(context.Background(), []gitstatus.Change{{Node: node, Data: []byte("x")}}); err == nil || !strings.Contains(err.Error(), "status file name") {
			t.Errorf("node %q: err = %v", node, err)
		}
	}
}

func TestMessage(t *testing.T) {
	long := make([]string, 20)
	for i := range long {
		long[i] = fmt.Sprintf("r1-n%02d deploying→active", i)
	}
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"one", []string{"r1-n01 available→active"}, "status: 1 node changed (r1-n01 available→active)\n"},
		{"two", []string{"a x", "b y"}, "status: 2 nodes changed (a x, b y)\n\na x\nb y\n"},
		{"many", long, "status: 20 nodes changed (r1-n00 deploying→active, r1-n01 deploying→active, …)\n\n" +
			strings.Join(long, "\n") + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, gitstatus.Message(tc.lines)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCommitOverHTTPS(t *testing.T) {
	base := t.TempDir()
	bare := gittest.Seed(t, base, "inv.git", seedFiles)
	url, ca := gittest.HTTPS(t, base, "bot", "s3cr3t-token")
	src, err := gitsource.New(gitsource.Config{URL: url + "/inv.git",
		Auth: gitsource.Auth{Username: "bot", Password: "s3cr3t-token", CAFile: ca}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Commit(context.Background(), []gitstatus.Change{{Node: "r1-n01", Data: []byte("over: https\n"), Summary: "pushed"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := gittest.Git(t, bare, "rev-parse", "main"); got != res.Commit {
		t.Fatalf("remote main = %s, want %s", got, res.Commit)
	}
	if got := gittest.Git(t, bare, "show", "main:status/r1-n01.yaml"); got != "over: https" {
		t.Errorf("status = %q", got)
	}
}

func TestCommitOverFile(t *testing.T) {
	bare := gittest.Seed(t, t.TempDir(), "inv.git", seedFiles)
	src, err := gitsource.New(gitsource.Config{URL: "file://" + bare})
	if err != nil {
		t.Fatal(err)
	}
	c, err := gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		res, err := c.Commit(ctx, []gitstatus.Change{{Node: "r1-n01", Data: []byte(fmt.Sprintf("n: %d\n", i))}})
		if err != nil {
			t.Fatal(err)
		}
		if got := gittest.Git(t, bare, "rev-parse", "main"); got != res.Commit {
			t.Fatalf("remote main = %s, want %s", got, res.Commit)
		}
	}
	if got := gittest.Git(t, bare, "show", "main:status/r1-n01.yaml"); got != "n: 2" {
		t.Errorf("status = %q", got)
	}
	gittest.Git(t, bare, "fsck", "--strict")
}
