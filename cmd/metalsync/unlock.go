package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"metalsync.dev/metalsync/repo/lease"
)

// unlockArgs are the flags of `metalsync unlock`.
type unlockArgs struct {
	repo   string
	dir    string
	id     string
	remote remoteFlags
}

func parseUnlock(args []string, env *Env) (unlockArgs, int) {
	fs := newFlags("unlock", env)
	a := unlockArgs{dir: "."}
	fs.StringVar(&a.repo, "repo", "", "URL of the inventory repository whose lease to break (instead of DIR)")
	a.remote.register(fs, " (for the lease)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync unlock [flags] [DIR] ID\n       metalsync unlock --repo URL [flags] ID\n\nBreaks the fleet's lease ID, left by a run that is gone (crashed, killed,\nits machine lost), so that the next apply or serve may take it. The lease\nis removed only if ID is still the current one; otherwise the current\nholder is named. Breaking the lease of a run that is still acting lets two\nruns act on the same machines: the broken run stops at its next renewal.\nDIR (default .) finds the lease as apply does: in the Git remote DIR is a\nclone of, else in DIR/.metalsync.lease.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	switch {
	case fs.NArg() == 1:
		a.id = fs.Arg(0)
	case fs.NArg() == 2 && a.repo == "":
		a.dir, a.id = fs.Arg(0), fs.Arg(1)
	default:
		fs.Usage()
		return a, exitUsage
	}
	if a.id == "" {
		fmt.Fprintln(env.Err, "metalsync unlock: the lease ID is empty")
		return a, exitUsage
	}
	return a, -1
}

func runUnlock(ctx context.Context, args []string, env *Env) int {
	a, code := parseUnlock(args, env)
	if code >= 0 {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var (
		l   *lease.Lease
		err error
	)
	if a.repo != "" {
		l, err = leaseOfRepo(a.repo, a.remote.auth(env))
	} else {
		l, err = leaseOfDir(ctx, a.dir, a.remote.auth(env))
	}
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync unlock: %v\n", err)
		return exitError
	}
	rec, err := l.Break(ctx, a.id)
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync unlock: %v\n", err)
		var held *lease.HeldError
		if errors.As(err, &held) {
			fmt.Fprintf(env.Err, "  lease kept in %s\n", held.Where)
		}
		return exitError
	}
	fmt.Fprintf(env.Out, "Broke lease %s of %s (since %s); %s is free.\n", rec.ID, rec.Holder, rec.Since.UTC().Format(time.RFC3339), l)
	return exitOK
}
