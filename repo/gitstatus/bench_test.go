package gitstatus

import (
	"context"
	"fmt"
	"metalsync.dev/metalsync/test/tools"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage"

	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
)

// benchSizes are the node counts benchmarked: METALSYNC_BENCH_NODES
// (comma-separated) or a small default so that `make bench` stays quick.
func benchSizes(b *testing.B) []int {
	return tools.BenchSizes(b, "METALSYNC_BENCH_NODES", 10, 1000)
}

func statusFile(i, round int) []byte {
	return []byte(fmt.Sprintf("apiVersion: metalsync.dev/v1alpha1\nkind: NodeStatus\nmetadata:\n  name: n%05d\nstatus:\n  power: \"on\"\n  provisionState: active\n  round: %d\n", i, round))
}

// seedInventory makes an inventory of n nodes with n status files, served
// by a git daemon, and returns the server, the bare repo and a worktree.
func seedInventory(b *testing.B, n int) (*gittest.Server, string, string) {
	srv := gittest.Daemon(b)
	bare := filepath.Join(srv.Base, "inv.git")
	gittest.Git(b, srv.Base, "init", "-q", "--bare", "--initial-branch=main", bare)
	work := gittest.Clone(b, bare)
	for i := 0; i < n; i++ {
		gittest.WriteFiles(b, work, map[string]string{
			fmt.Sprintf("nodes/n%05d.yaml", i):  fmt.Sprintf("kind: Node\nmetadata:\n  name: n%05d\n", i),
			fmt.Sprintf("status/n%05d.yaml", i): string(statusFile(i, 0)),
		})
	}
	gittest.Git(b, work, "add", "-A")
	gittest.Git(b, work, "commit", "-qm", "seed")
	gittest.Git(b, work, "push", "-q", "origin", "main")
	return srv, bare, work
}

// BenchmarkStatusCommit measures one status commit in which n node
// statuses change at once:
//   - build: the object-level commit alone (blobs, trees, commit object),
//   - commit+push: Committer.Commit against a local git daemon (fetch,
//     build, compare-and-swap push),
//   - gitcli: writing the n files into a worktree and running
//     `git add -A && git commit`, the yardstick.
func BenchmarkStatusCommit(b *testing.B) {
	for _, n := range benchSizes(b) {
		srv, _, work := seedInventory(b, n)
		src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git"), IgnoreDir: "status"})
		if err != nil {
			b.Fatal(err)
		}
		c, err := New(Config{Source: src, Dir: "status", Author: Identity{"bench", "bench@example.com"}})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		head, err := src.FetchBranch(ctx, "main")
		if err != nil {
			b.Fatal(err)
		}
		round := 0
		batch := func() []Change {
			round++
			ch := make([]Change, n)
			for i := range ch {
				ch[i] = Change{Node: fmt.Sprintf("n%05d", i), Data: statusFile(i, round), Summary: "active→active"}
			}
			return ch
		}
		b.Run(fmt.Sprintf("build/nodes=%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				ch, _ := normalise(batch())
				b.StartTimer()
				err := src.WithStorer(func(st storage.Storer) error {
					bt, err := c.build(st, head, ch)
					if err == nil && bt.commit == plumbing.ZeroHash {
						err = fmt.Errorf("no commit built")
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("commit+push/nodes=%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				ch := batch()
				b.StartTimer()
				res, err := c.Commit(ctx, ch)
				if err != nil || res.Commit == "" {
					b.Fatalf("commit: %+v %v", res, err)
				}
			}
		})
		b.Run(fmt.Sprintf("gitcli/nodes=%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				round++
				for i := 0; i < n; i++ {
					if err := os.WriteFile(filepath.Join(work, "status", fmt.Sprintf("n%05d.yaml", i)), statusFile(i, round), 0o644); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				cmd := exec.Command("sh", "-c", "git add -A && git commit -q -m status")
				cmd.Dir = work
				cmd.Env = gittest.Env(work)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("git: %v: %s", err, out)
				}
			}
		})
	}
}
