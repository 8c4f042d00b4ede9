package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/lease"
)

// applyLeaseTTL is how long an apply's lease outlives its last renewal: the
// time others wait before taking over from a run that crashed. It is renewed
// every third of it while the run acts.
const applyLeaseTTL = 2 * time.Minute

// remoteFlags are the credentials for an inventory remote: serve follows
// it; apply and unlock reach the remote that holds the lease.
type remoteFlags struct {
	sshKey           string
	sshPassphraseEnv string
	knownHosts       string
	gitUsername      string
	gitPasswordEnv   string
	gitCAFile        string
}

// register adds the flags; purpose ends each help line (" (for the
// lease)", or "").
func (r *remoteFlags) register(fs *flag.FlagSet, purpose string) {
	fs.StringVar(&r.sshKey, "ssh-key", "", "private key file for an SSH inventory remote"+purpose)
	fs.StringVar(&r.sshPassphraseEnv, "ssh-key-passphrase-env", "", "environment variable holding the passphrase of --ssh-key"+purpose)
	fs.StringVar(&r.knownHosts, "known-hosts", "", "known_hosts file with the SSH remote's host key (required for SSH)"+purpose)
	fs.StringVar(&r.gitUsername, "git-username", "", "HTTP username for an https inventory remote"+purpose)
	fs.StringVar(&r.gitPasswordEnv, "git-password-env", "", "environment variable holding the HTTP password or token"+purpose)
	fs.StringVar(&r.gitCAFile, "git-ca-file", "", "PEM file of CA certificates trusted for an https remote, besides the system's (a private Git host)"+purpose)
}

func (r remoteFlags) auth(env *Env) gitsource.Auth {
	a := gitsource.Auth{Username: r.gitUsername, SSHKeyFile: r.sshKey, KnownHostsFile: r.knownHosts, CAFile: r.gitCAFile}
	if r.gitPasswordEnv != "" {
		a.Password = secret.Value(env.Getenv(r.gitPasswordEnv))
	}
	if r.sshPassphraseEnv != "" {
		a.SSHKeyPassphrase = secret.Value(env.Getenv(r.sshPassphraseEnv))
	}
	return a
}

// secretEnvs are the variables the flags name that hold secrets: credential
// sets may not read them.
func (r remoteFlags) secretEnvs() []string {
	return slices.DeleteFunc([]string{r.gitPasswordEnv, r.sshPassphraseEnv}, func(s string) bool { return s == "" })
}

// leaseOfRepo is the lease of the inventory at a remote URL.
func leaseOfRepo(url string, auth gitsource.Auth) (*lease.Lease, error) {
	src, err := gitsource.New(gitsource.Config{URL: url, Auth: auth})
	if err != nil {
		return nil, err
	}
	return lease.ForRemote(src), nil
}

// leaseOfDir finds where the lease of the inventory in dir lives. When dir
// is in a Git working tree whose branch tracks a remote (else one with a
// remote named origin), the lease is that remote's refs/metalsync/lease, so
// that every clone and the daemon following the remote share it; auth
// reaches it. Otherwise it is the lock file dir/.metalsync.lease.
func leaseOfDir(ctx context.Context, dir string, auth gitsource.Auth) (*lease.Lease, error) {
	url, err := trackedRemote(ctx, dir)
	if err != nil {
		return nil, err
	}
	if url == "" {
		return lease.ForDir(dir), nil
	}
	l, err := leaseOfRepo(url, auth)
	if err != nil {
		return nil, fmt.Errorf("%s is a clone of %s, which holds the lease: %w", dir, url, err)
	}
	return l, nil
}

// trackedRemote returns the URL of the remote the Git working tree holding
// dir follows, "" when dir is not in a working tree (or git is missing) or
// the tree has no remote. The git CLI reads the configuration, so
// includes, insteadOf and linked worktrees count as they do for git.
func trackedRemote(ctx context.Context, dir string) (string, error) {
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil || top == "" {
		return "", nil // not a working tree, or no git: the lock file
	}
	name := ""
	if branch, err := git("symbolic-ref", "-q", "--short", "HEAD"); err == nil && branch != "" {
		name, _ = git("config", "--get", "branch."+branch+".remote")
	}
	if name == "" || name == "." { // "." tracks a local branch
		remotes, _ := git("remote")
		for _, r := range strings.Fields(remotes) {
			if r == "origin" {
				name = r
			}
		}
	}
	if name == "" {
		return "", nil
	}
	url, err := git("remote", "get-url", name)
	if err != nil || url == "" {
		return "", fmt.Errorf("%s: remote %s has no URL", top, name)
	}
	return absRemoteURL(top, url), nil
}

// absRemoteURL turns a remote given as a path (absolute, or relative to the
// working tree) into a file:// URL; URLs and scp-like addresses stay.
func absRemoteURL(top, url string) string {
	if strings.Contains(url, "://") {
		return url
	}
	if i := strings.Index(url, ":"); i > 0 && !strings.Contains(url[:i], "/") {
		return url // host:path
	}
	if !filepath.IsAbs(url) {
		url = filepath.Join(top, url)
	}
	return "file://" + filepath.Clean(url)
}

// takeLease acquires l for req. When someone else holds it, the error
// names the holder, since when, where the lease lives and how to proceed;
// unlock is the command line that breaks it, without the id
// ("metalsync unlock inv").
func takeLease(ctx context.Context, l *lease.Lease, req lease.Request, unlock string) (*lease.Held, error) {
	h, err := l.Acquire(ctx, req)
	var held *lease.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("%w\n  lease kept in %s\n  wait for it with --lock-timeout DURATION, or if that run is gone: %s %s",
			err, held.Where, unlock, held.Record.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("take the lease: %w", err)
	}
	return h, nil
}

// holdLease takes l for req (see takeLease) and keeps it renewed, every
// third of req.TTL, until release is called. If the lease is lost (broken
// with unlock, or not renewed before it expired) onLost is called once,
// from another goroutine: the holder must stop acting. release stops the
// renewals and gives the lease back if it is still ours (an error says it
// was not, or the store could not be reached).
func holdLease(ctx context.Context, l *lease.Lease, req lease.Request, unlock string, onLost func(error)) (release func() error, err error) {
	held, err := takeLease(ctx, l, req, unlock)
	if err != nil {
		return nil, err
	}
	kctx, cancel := context.WithCancel(ctx)
	lost := held.Keep(kctx, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := <-lost; err != nil {
			onLost(err)
		}
	}()
	return func() error {
		cancel()
		<-done
		rctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer stop()
		return held.Release(rctx)
	}, nil
}

// unlockCommand is the `metalsync unlock` line for the inventory in dir.
func unlockCommand(dir string) string {
	if dir == "" || dir == "." {
		return "metalsync unlock"
	}
	return "metalsync unlock " + dir
}
