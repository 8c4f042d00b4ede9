package gitsource_test

import (
	"context"
	"fmt"
	"io/fs"
	"metalsync.dev/metalsync/test/tools"
	"path/filepath"
	"testing"

	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
)

// benchNodes is METALSYNC_BENCH_NODES (one count) or a small default, so
// that `make bench` stays quick.
func benchNodes(b *testing.B) int {
	return tools.BenchSize(b, "METALSYNC_BENCH_NODES", 1000)
}

func seedNodes(b *testing.B, n int) (*gittest.Server, string) {
	srv := gittest.Daemon(b)
	bare := filepath.Join(srv.Base, "inv.git")
	gittest.Git(b, srv.Base, "init", "-q", "--bare", "--initial-branch=main", bare)
	work := gittest.Clone(b, bare)
	for i := 0; i < n; i++ {
		gittest.WriteFiles(b, work, map[string]string{
			fmt.Sprintf("nodes/n%05d.yaml", i):  fmt.Sprintf("apiVersion: metalsync.dev/v1alpha1\nkind: Node\nmetadata:\n  name: n%05d\nspec:\n  power: on\n", i),
			fmt.Sprintf("status/n%05d.yaml", i): fmt.Sprintf("kind: NodeStatus\nmetadata:\n  name: n%05d\n", i),
		})
	}
	gittest.Git(b, work, "add", "-A")
	gittest.Git(b, work, "commit", "-qm", "seed")
	gittest.Git(b, work, "push", "-q", "origin", "main")
	return srv, work
}

// BenchmarkTreeReadAll walks and reads every file (2n: nodes and status)
// of an inventory commit through Tree, as the loader does on each commit.
func BenchmarkTreeReadAll(b *testing.B) {
	n := benchNodes(b)
	srv, _ := seedNodes(b, n)
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git")})
	if err != nil {
		b.Fatal(err)
	}
	commit, _, err := src.Fetch(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
		for b.Loop() {
			fsys, err := src.Tree(commit)
			if err != nil {
				b.Fatal(err)
			}
			files := 0
			err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				_, err = fs.ReadFile(fsys, p)
				files++
				return err
			})
			if err != nil || files != 2*n {
				b.Fatalf("read %d files, err %v", files, err)
			}
		}
	})
}

// BenchmarkFetch measures Fetch against a local git daemon: when nothing
// changed (the poll case) and when one new commit arrived; and the first
// clone of the whole inventory.
func BenchmarkFetch(b *testing.B) {
	n := benchNodes(b)
	srv, work := seedNodes(b, n)
	ctx := context.Background()
	b.Run(fmt.Sprintf("clone/nodes=%d", n), func(b *testing.B) {
		for b.Loop() {
			src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git")})
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := src.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	src, err := gitsource.New(gitsource.Config{URL: srv.URL("inv.git")})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := src.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("unchanged/nodes=%d", n), func(b *testing.B) {
		for b.Loop() {
			if _, changed, err := src.Fetch(ctx); err != nil || changed {
				b.Fatalf("changed=%v err=%v", changed, err)
			}
		}
	})
	b.Run(fmt.Sprintf("one-commit/nodes=%d", n), func(b *testing.B) {
		round := 0
		for b.Loop() {
			b.StopTimer()
			round++
			gittest.WriteFiles(b, work, map[string]string{"nodes/n00000.yaml": fmt.Sprintf("round: %d\n", round)})
			gittest.Git(b, work, "commit", "-qam", "edit")
			gittest.Git(b, work, "push", "-q", "origin", "main")
			b.StartTimer()
			if _, changed, err := src.Fetch(ctx); err != nil || !changed {
				b.Fatalf("changed=%v err=%v", changed, err)
			}
		}
	})
}
