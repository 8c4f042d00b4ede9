package gitstatus_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"metalsync.dev/metalsync/internal/clock"
	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/repo/gitstatus"
)

// TestHumanPushesRaceStatus races a person pushing spec commits with the git
// CLI (pull --rebase on rejection, as people do) against two status writers
// (two daemons sharding the fleet, each with its own clone) that also race
// each other. Every human commit must end up in the final history, every
// status commit too, and each status file must be what was last written.
//
// The races are not left to the scheduler: each round stops the writers at
// chosen points and lets the others push there, so that every round is a
// race that really happens. A writer is held either after it has built its
// commit on the head it fetched and before it pushes (through Config.Now,
// which the build calls), or inside the server's receive-pack after the
// client checked the advertised head and before git takes the ref lock
// (through a pre-receive hook), where only git's compare-and-swap on the
// ref stands between the writer and a lost human commit.
//
// The rounds are shared between two repositories raced in parallel, one
// per core: git processes are most of the cost. METALSYNC_RACE_ROUNDS
// changes the number of human pushes (default 150).
func TestHumanPushesRaceStatus(t *testing.T) {
	rounds := 150
	if v, err := strconv.Atoi(os.Getenv("METALSYNC_RACE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	const repos = 2
	for r := range repos {
		n := rounds / repos
		if r < rounds%repos {
			n++
		}
		t.Run(fmt.Sprintf("repo%d", r), func(t *testing.T) {
			t.Parallel()
			raceInOneRepo(t, n)
		})
	}
}

// raceInOneRepo plays rounds of TestHumanPushesRaceStatus on a repository
// of its own and checks the outcome.
func raceInOneRepo(t *testing.T, rounds int) {
	// file:// runs git's own upload-pack and receive-pack, as git:// does,
	// without a git daemon process per connection.
	bare := gittest.Seed(t, t.TempDir(), "inv.git", seedFiles)
	url := "file://" + bare
	// Each git process costs, and each push ran a needless `git gc --auto`.
	gittest.Git(t, bare, "config", "receive.autoGC", "false")
	gate := newPushGate(t, bare)
	hu := &human{work: gittest.Clone(t, bare)}

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	// On failure, free whatever is held so that no writer outlives the test.
	defer func() {
		cancel()
		gate.release(t)
		wg.Wait()
	}()
	bots := []*racer{newRacer(t, ctx, url, 0, &wg), newRacer(t, ctx, url, 1, &wg)}

	for i := 0; i < rounds; i++ {
		b, o := bots[i%2], bots[1-i%2]
		hu.commit(t, i)
		switch i % 5 {
		case 0: // The person pushes between a writer's fetch and its push.
			done := b.start(ctx, true)
			b.waitBuilt(t, done)
			hu.push(t)
			b.resume <- struct{}{}
			b.finish(t, done, true)
		case 1: // The person pushes while a writer's push is in receive-pack.
			gate.arm(t)
			done := b.start(ctx, false)
			gate.wait(t, done)
			hu.push(t)
			gate.release(t)
			b.finish(t, done, true)
		case 2: // A writer pushes between the person's commit and push.
			b.finish(t, b.start(ctx, false), false)
			if hu.push(t) == 0 {
				t.Errorf("round %d: the person's push was not rejected after a status commit", i)
			}
		case 3: // The writers race each other, and the person pushes too.
			done := b.start(ctx, true)
			b.waitBuilt(t, done)
			o.finish(t, o.start(ctx, false), false)
			hu.push(t)
			b.resume <- struct{}{}
			b.finish(t, done, true)
		case 4: // All three at once: one writer before its push, one inside it.
			doneB := b.start(ctx, true)
			b.waitBuilt(t, doneB)
			gate.arm(t)
			doneO := o.start(ctx, false)
			gate.wait(t, doneO)
			hu.push(t)
			gate.release(t)
			o.finish(t, doneO, true)
			b.resume <- struct{}{}
			b.finish(t, doneB, true)
		}
	}

	// One git process per question: the history (linear: no merge, and
	// every pushed commit still in it), the final tree, and which files the
	// status commits changed.
	history := map[string]bool{}
	for _, line := range strings.Split(gittest.Git(t, bare, "rev-list", "--parents", "main"), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 {
			t.Errorf("merge commit %s in history", f[0])
		}
		history[f[0]] = true
	}
	if len(hu.commits) != rounds {
		t.Errorf("%d human commits pushed, want %d", len(hu.commits), rounds)
	}
	for _, h := range hu.commits {
		if !history[h] {
			t.Errorf("human commit %s lost: not in the history of main", h)
		}
	}
	tree := map[string]string{} // path → blob
	for _, line := range strings.Split(gittest.Git(t, bare, "ls-tree", "-r", "main"), "\n") {
		meta, path, _ := strings.Cut(line, "\t")
		if f := strings.Fields(meta); len(f) == 3 {
			tree[path] = f[2]
		}
	}
	for i := 0; i < rounds; i++ {
		if p := fmt.Sprintf("nodes/h%03d.yaml", i); tree[p] == "" {
			t.Errorf("%s missing from the final tree", p)
		}
	}
	botCommits := 0
	for _, r := range bots {
		t.Logf("bot %d: %d commits, %d push retries", r.shard, len(r.commits), r.retries)
		botCommits += len(r.commits)
		want := gitstatus.Stats{Commits: uint64(len(r.commits)), PushRetries: uint64(r.retries)}
		if got := r.c.Stats(); got != want {
			t.Errorf("bot %d: stats %+v, want %+v", r.shard, got, want)
		}
		for _, h := range r.commits {
			if !history[h] {
				t.Errorf("bot %d: status commit %s lost: not in the history of main", r.shard, h)
			}
		}
		for p, data := range r.want {
			if got, want := tree[p], plumbing.ComputeHash(plumbing.BlobObject, []byte(data)).String(); got != want {
				t.Errorf("%s is blob %q, want %q (%q)", p, got, want, data)
			}
		}
	}
	// No status commit touched anything outside status/.
	log := gittest.Git(t, bare, "log", "--format=%x00%H", "--name-only", "--author=metalsync@example.com", "main")
	statusCommits := 0
	for _, c := range strings.Split(log, "\x00")[1:] {
		statusCommits++
		f := strings.Fields(c)
		for _, file := range f[1:] {
			if !strings.HasPrefix(file, "status/") {
				t.Errorf("status commit %s changed %s", f[0], file)
			}
		}
	}
	if statusCommits != botCommits {
		t.Errorf("%d status commits in history, want %d", statusCommits, botCommits)
	}
	gittest.Git(t, bare, "fsck", "--strict")
}

// human is a person with a clone, driven from the test's goroutine.
type human struct {
	work    string
	commits []string // pushed, in order
}

// commit adds nodes/hNNN.yaml and commits it locally.
func (h *human) commit(t *testing.T, i int) {
	t.Helper()
	gittest.WriteFiles(t, h.work, map[string]string{fmt.Sprintf("nodes/h%03d.yaml", i): "kind: Node\n"})
	gittest.Git(t, h.work, "add", "-A")
	gittest.Git(t, h.work, "commit", "-qm", fmt.Sprintf("add h%03d", i))
}

// push pushes main, pulling with rebase when the remote refuses, and
// returns how many pushes were refused. Nobody else pushes while it runs,
// so a second refusal is a failure. The commit recorded is the one the
// remote took, as push reports it.
func (h *human) push(t *testing.T) (refused int) {
	t.Helper()
	const ref = " \trefs/heads/main:refs/heads/main\t"
	for {
		out, err := gittest.TryGit(h.work, "-c", "core.abbrev=no", "push", "--porcelain", "origin", "main")
		if err == nil {
			i := strings.Index(out, ref)
			_, pushed, ok := strings.Cut(strings.SplitN(out[max(i, 0):], "\n", 2)[0], "..")
			if i < 0 || !ok {
				t.Fatalf("git push output has no update of main: %q", out)
			}
			h.commits = append(h.commits, pushed)
			return refused
		}
		if refused++; refused > 1 {
			t.Fatalf("human push refused again after pull --rebase: %v", err)
		}
		gittest.Git(t, h.work, "pull", "-q", "--rebase", "origin", "main")
	}
}

// racer is one status writer (a daemon with its own clone) writing its
// shard's status files one commit at a time.
type racer struct {
	shard int
	c     *gitstatus.Committer
	wg    *sync.WaitGroup

	n       int               // writes started
	want    map[string]string // path → last content written
	commits []string
	retries int

	hold   chan struct{} // full: the next build stops in Now
	built  chan struct{} // a held build has its commit's tree
	resume chan struct{} // lets the held build go on to push
}

type outcome struct {
	res  gitstatus.Result
	path string
	data string
	err  error
}

// newRacer makes a writer; a build held in Now gives up when ctx ends.
func newRacer(t *testing.T, ctx context.Context, url string, shard int, wg *sync.WaitGroup) *racer {
	t.Helper()
	src, err := gitsource.New(gitsource.Config{URL: url, IgnoreDir: "status"})
	if err != nil {
		t.Fatal(err)
	}
	r := &racer{shard: shard, wg: wg, want: map[string]string{},
		hold: make(chan struct{}, 1), built: make(chan struct{}), resume: make(chan struct{})}
	// Now is called once per build, after the fetch of the head the commit
	// is built on and before the push: the point to hold a writer at.
	now := func() time.Time {
		select {
		case <-r.hold:
			select {
			case r.built <- struct{}{}:
				select {
				case <-r.resume:
				case <-ctx.Done():
				}
			case <-ctx.Done():
			}
		default:
		}
		return fixedClock{}.Now()
	}
	r.c, err = gitstatus.New(gitstatus.Config{Source: src, Dir: "status", Author: bot, Clock: holdClock{now: now}, MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start writes the shard's next status change in a goroutine; with hold,
// its build stops in Now until resumed.
func (r *racer) start(ctx context.Context, hold bool) <-chan outcome {
	if hold {
		r.hold <- struct{}{}
	}
	i := r.n
	r.n++
	node := fmt.Sprintf("shard%d-n%02d", r.shard, i%5)
	o := outcome{path: "status/" + node + ".yaml", data: fmt.Sprintf("round: %d\n", i)}
	done := make(chan outcome, 1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		o.res, o.err = r.c.Commit(ctx, []gitstatus.Change{{Node: node, Data: []byte(o.data), Summary: fmt.Sprintf("round %d", i)}})
		done <- o
	}()
	return done
}

// waitBuilt waits until the held build has fetched and built its commit.
func (r *racer) waitBuilt(t *testing.T, done <-chan outcome) {
	t.Helper()
	select {
	case <-r.built:
	case o := <-done:
		t.Fatalf("bot %d: status commit ended before its build was held: %+v, %v", r.shard, o.res, o.err)
	}
}

// finish waits for the write and checks that it landed, after at least one
// push that found the remote moved when raced.
func (r *racer) finish(t *testing.T, done <-chan outcome, raced bool) {
	t.Helper()
	o := <-done
	if o.err != nil {
		t.Fatalf("bot %d: status commit: %v", r.shard, o.err)
	}
	if o.res.Commit == "" {
		t.Fatalf("bot %d: status commit made nothing: %+v", r.shard, o.res)
	}
	if raced && o.res.Retries == 0 {
		t.Errorf("bot %d: raced status commit %s pushed without a retry", r.shard, o.res.Commit)
	}
	if !raced && o.res.Retries != 0 {
		t.Errorf("bot %d: unraced status commit retried %d times", r.shard, o.res.Retries)
	}
	r.commits = append(r.commits, o.res.Commit)
	r.retries += o.res.Retries
	r.want[o.path] = o.data
}

// pushGate holds one push inside the server's receive-pack: while armed,
// the bare repository has a pre-receive hook that says so through one FIFO
// and waits for a line on another. pre-receive runs before receive-pack
// locks the ref and checks its old value, so a push landing meanwhile makes
// the held push fail git's compare-and-swap. The hook exists only while
// armed, so that other pushes do not pay for running it.
type pushGate struct {
	hook     string // hooks/pre-receive
	script   []byte
	arrivals chan struct{}
	resume   *os.File
}

func newPushGate(t *testing.T, bare string) *pushGate {
	t.Helper()
	dir := t.TempDir()
	g := &pushGate{hook: filepath.Join(bare, "hooks", "pre-receive"), arrivals: make(chan struct{})}
	arrivedPath, resumePath := filepath.Join(dir, "arrived"), filepath.Join(dir, "resume")
	for _, p := range []string{arrivedPath, resumePath} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Read-write opens do not wait for the other end, and keep each FIFO
	// open for the hook whatever it does.
	arrived, err := os.OpenFile(arrivedPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g.resume, err = os.OpenFile(resumePath, os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		arrived.Close()
		g.resume.Close()
	})
	go func() {
		sc := bufio.NewScanner(arrived)
		for sc.Scan() {
			select {
			case g.arrivals <- struct{}{}:
			case <-stop:
				return
			}
		}
	}()
	// Shell built-ins only: echo and read start no process.
	g.script = fmt.Appendf(nil, "#!/bin/sh\necho >'%s'\nread line <'%s'\n", arrivedPath, resumePath)
	return g
}

// arm makes the next push wait in the hook.
func (g *pushGate) arm(t *testing.T) {
	t.Helper()
	// Renamed into place: git must not run a half-written hook.
	tmp := g.hook + ".tmp"
	if err := os.WriteFile(tmp, g.script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, g.hook); err != nil {
		t.Fatal(err)
	}
}

// wait waits until the push started by a writer is held in the hook, and
// disarms the gate.
func (g *pushGate) wait(t *testing.T, done <-chan outcome) {
	t.Helper()
	select {
	case <-g.arrivals:
	case o := <-done:
		t.Fatalf("status commit ended before its push reached the server: %+v, %v", o.res, o.err)
	}
	if err := os.Remove(g.hook); err != nil {
		t.Fatal(err)
	}
}

// release lets a held push go on (a line waits in the FIFO if none is held).
func (g *pushGate) release(t *testing.T) {
	t.Helper()
	if _, err := g.resume.WriteString("\n"); err != nil {
		t.Fatal(err)
	}
}

// holdClock is a clock whose Now may hold the writer (see newRacer); its
// waits are the wall clock's.
type holdClock struct {
	clock.Real
	now func() time.Time
}

func (h holdClock) Now() time.Time { return h.now() }
