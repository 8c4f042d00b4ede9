package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"metalsync.dev/metalsync/agentimage"
)

type agentImageArgs struct {
	out         string
	agent       string
	version     string
	lock        string
	dir         string
	cache       string
	debs        string
	noCache     bool
	refreshLock bool
	verbose     bool
}

const agentImageUsage = `usage: metalsync agent-image build [--out DIR] [--agent PKG] [--version V]

Builds the deploy agent's template ISO from the pinned Debian packages of
the lock file and the agent's Go package, or takes it from the cache
($XDG_CACHE_HOME/metalsync/agent-image) when nothing changed. Prints the
ISO's path; its manifest is next to it (<iso>.json). The same inputs give
the same bytes.

--refresh-lock prints a lock file pinning the current Debian candidates
instead of building:
  metalsync agent-image build --refresh-lock > agentimage/debs.lock
`

func parseAgentImage(args []string, env *Env) (agentImageArgs, int) {
	fs := newFlags("agent-image", env)
	a := agentImageArgs{}
	fs.StringVar(&a.out, "out", "", "also place agent.iso and agent.iso.json in `DIR`")
	fs.StringVar(&a.agent, "agent", agentimage.DefaultAgent, "Go `package` built as the agent (/init)")
	fs.StringVar(&a.version, "version", "dev", "agent version (main.version)")
	fs.StringVar(&a.lock, "lock", "", "lock `FILE` (default: the one built in, agentimage/debs.lock)")
	fs.StringVar(&a.dir, "C", "", "run go build in `DIR` (inside the agent's module)")
	fs.StringVar(&a.cache, "cache", "", "image cache `DIR` (default $XDG_CACHE_HOME/metalsync/agent-image)")
	fs.StringVar(&a.debs, "debs", "", "downloaded .deb cache `DIR` (default: debs in the image cache)")
	fs.BoolVar(&a.noCache, "no-cache", false, "build even when the cache holds the image (needs --out)")
	fs.BoolVar(&a.refreshLock, "refresh-lock", false, "print a lock of the current Debian candidates and exit")
	fs.BoolVar(&a.verbose, "v", false, "log progress to stderr")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), agentImageUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "build" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			return a, parseFlags(fs, args[:1])
		}
		fmt.Fprint(env.Err, "metalsync agent-image: want the build subcommand\n\n"+agentImageUsage)
		return a, exitUsage
	}
	if code := parseFlags(fs, args[1:]); code >= 0 {
		return a, code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Err, "metalsync agent-image build: unexpected argument %q\n", fs.Arg(0))
		return a, exitUsage
	}
	if a.noCache && a.out == "" {
		fmt.Fprint(env.Err, "metalsync agent-image build: --no-cache needs --out\n")
		return a, exitUsage
	}
	return a, -1
}

func runAgentImage(ctx context.Context, args []string, env *Env) int {
	a, code := parseAgentImage(args, env)
	if code >= 0 {
		return code
	}
	if a.refreshLock {
		// A new lock gets today's date as its epoch, so an image built
		// from it is dated by its inputs, not its build.
		lock, err := agentimage.RefreshLock(ctx, time.Now().UTC().Truncate(24*time.Hour).Unix())
		if err != nil {
			fmt.Fprintf(env.Err, "metalsync agent-image: %v\n", err)
			return exitError
		}
		// Unchanged packages keep their epoch, so the image stays the same.
		cur := agentimage.DefaultLock
		if a.lock != "" {
			if cur, err = os.ReadFile(a.lock); err != nil {
				fmt.Fprintf(env.Err, "metalsync agent-image: %v\n", err)
				return exitError
			}
		}
		if prev, err := agentimage.ParseLock(cur); err == nil && slices.Equal(prev.Debs, lock.Debs) {
			lock.SourceDateEpoch = prev.SourceDateEpoch
		}
		env.Out.Write(lock.Format())
		return exitOK
	}
	level := slog.LevelWarn
	if a.verbose {
		level = slog.LevelInfo
	}
	opts := agentimage.Options{
		Agent: a.agent, Dir: a.dir, Version: a.version, CacheDir: a.cache, DebDir: a.debs,
		Log: slog.New(slog.NewTextHandler(env.Err, &slog.HandlerOptions{Level: level})),
	}
	if a.lock != "" {
		b, err := os.ReadFile(a.lock)
		if err != nil {
			fmt.Fprintf(env.Err, "metalsync agent-image: %v\n", err)
			return exitError
		}
		opts.Lock = b
	}
	var img agentimage.Image
	var err error
	if a.noCache {
		img, err = agentimage.Build(ctx, opts, a.out)
	} else {
		img, err = agentimage.Ensure(ctx, opts)
		if err == nil && a.out != "" {
			img, err = agentimage.CopyTo(img, a.out)
		}
	}
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync agent-image: %v\n", err)
		return exitError
	}
	fmt.Fprintln(env.Out, img.ISO)
	return exitOK
}
