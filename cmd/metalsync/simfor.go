package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"metalsync.dev/metalsync/schema"
)

// simListen keeps the daemon of a tried-by-hand fleet on loopback, where
// the simulators reach it.
const simListen = `  listen: ["127.0.0.1:8080"]` + "\n"

var (
	siteListenLine  = regexp.MustCompile(`(?m)^  listen: .*\n`)
	siteListenBlock = regexp.MustCompile(`(?m)^  listen:\n(    .*\n)+`)
	urlLine         = regexp.MustCompile(`(?m)^(\s*(?:-\s+)?url:\s+)["']?https?://([^/\s"']+)`)
)

// runSimFor starts simulated BMCs for every node of the inventory in
// forDir, writes a copy of the inventory pointed at them into out (a new
// Git repository), prints the commands to run next and serves until ctx
// ends.
func runSimFor(ctx context.Context, forDir, out string, env *Env) error {
	if _, err := exec.LookPath("git"); err != nil {
		return fmt.Errorf("the copied inventory is a Git repository and needs the git command: %w", err)
	}
	if err := emptyDir(out); err != nil {
		return err
	}
	inv, diags := loadInventory(forDir, env)
	if diags.HasErrors() {
		return fmt.Errorf("inventory %s is invalid:\n%s", forDir, diags)
	}
	fleet, err := startFleet(inv)
	if err != nil {
		return fmt.Errorf("simulated BMCs: %w", err)
	}
	defer fleet.close()
	// Every artifact URL (images, firmware) goes to the local artifact
	// server, its host kept in the path so that URLs stay distinct.
	rewrite := func(s string) string {
		return urlLine.ReplaceAllString(s, "${1}"+fleet.artifacts+"/${2}")
	}
	if err := writeSimInventory(os.DirFS(forDir), inv, out, fleet, func(s string) string {
		s = rewrite(s)
		s = siteListenBlock.ReplaceAllLiteralString(s, simListen)
		return siteListenLine.ReplaceAllLiteralString(s, simListen)
	}); err != nil {
		return err
	}
	// Check the copy before saying it is ready: a node's file the
	// rewrite could not follow must fail here, not in apply.
	written, wdiags := schema.Load(os.DirFS(out))
	if wdiags.HasErrors() {
		return fmt.Errorf("the inventory written to %s is invalid (its files are left for inspection):\n%s", out, wdiags)
	}
	for _, n := range written.Nodes {
		if want, ok := fleet.addrs[n.Name()]; ok && n.Spec.BMC.Address != want {
			return fmt.Errorf("node %s in %s: BMC address not pointed at its simulator", n.Name(), out)
		}
	}
	commit, err := commitSimInventory(ctx, out, forDir)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		abs = out
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Simulated BMCs for the %d nodes of %s; inventory for them in %s (commit %.12s):\n", len(inv.Nodes), forDir, abs, commit)
	for _, n := range inv.Nodes {
		addr, ok := fleet.addrs[n.Name()]
		if !ok {
			addr = n.Spec.BMC.Address + " (unchanged)"
		}
		fmt.Fprintf(&b, "   %-12s %s\n", n.Name(), addr)
	}
	fmt.Fprintf(&b, "\nIn another shell:\n\n")
	fmt.Fprintf(&b, "  export DEMO_BMC_USERNAME=%s DEMO_BMC_PASSWORD=%s\n", fleet.user, fleet.pass)
	fmt.Fprintf(&b, "  metalsync apply --simulate-agent --auto-approve %s\n", abs)
	fmt.Fprintf(&b, "  metalsync serve --local %s --simulate-agent\n", abs)
	fmt.Fprintf(&b, "\nready: serving until interrupted\n")
	if _, err := fmt.Fprint(env.Out, b.String()); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// emptyDir creates dir, or checks that it is empty: the copy must not mix
// with another inventory or with the status of simulators that are gone.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("--out %s: %w", dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("--out %s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("--out %s is not empty: its simulators are gone; remove it or name a new directory", dir)
	}
	return nil
}

// commitSimInventory makes dir a Git repository with the copy as its
// first commit, so plans and status name a revision; it returns the
// commit.
func commitSimInventory(ctx context.Context, dir, from string) (string, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=metalsync sim", "GIT_AUTHOR_EMAIL=sim@metalsync.invalid",
			"GIT_COMMITTER_NAME=metalsync sim", "GIT_COMMITTER_EMAIL=sim@metalsync.invalid")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "Inventory of " + from + " pointed at simulated BMCs"}} {
		if _, err := git(args...); err != nil {
			return "", err
		}
	}
	return git("rev-parse", "HEAD")
}
