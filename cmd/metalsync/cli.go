package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Stdio is the standard streams of one invocation.
type Stdio struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// Env is what every command gets: its streams and the process environment.
// Commands read the environment only through Getenv so tests can replace it.
type Env struct {
	Stdio
	Getenv func(string) string
}

// command is one `metalsync <verb>`.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, env *Env) int
}

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitError   = 1
	exitChanges = 2 // plan --detailed-exitcode: there are changes
	exitUsage   = 64
)

func commands() []command {
	return []command{
		{"validate", "check an inventory repository against the schema and cross-file rules", runValidate},
		{"sim", "serve simulated Redfish BMCs for tests and demos until interrupted", runSim},
		{"plan", "show what metalsync would do to the machines, offline from recorded status", runPlan},
		{"apply", "plan, confirm, and carry the plan out on the machines", runApply},
		{"unlock", "break the fleet's lease left by a run that is gone (metalsync unlock ID)", runUnlock},
		{"render", "render a node's DHCP-less boot media (config drive or NoCloud ISO)", runRender},
		{"serve", "run the daemon: follow the inventory repository, reconcile, commit status", runServe},
		{"demo", "run the whole loop on the embedded example with simulated BMCs and a local Git remote", runDemo},
		{"bmc", "talk to one BMC: power, boot device, virtual media, inventory, BIOS", runBMC},
		{"schema", "print the inventory schema: the embedded CUE, or JSON Schema for editors", runSchema},
		{"status", "list the nodes with their recorded status, like kubectl get", runStatus},
		{"review", "review a change for CI: who changed what, allowed or refused, signatures, blast radius, plan", runReview},
		{"agent-image", "build the deploy agent's template ISO from pinned Debian packages (cached)", runAgentImage},
	}
}

// Main runs metalsync with args (without the program name) and returns the
// process exit code.
func Main(args []string, stdio Stdio) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &Env{Stdio: stdio, Getenv: os.Getenv}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdio.Err)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], env)
		}
	}
	fmt.Fprintf(stdio.Err, "metalsync: unknown command %q\n\n", args[0])
	usage(stdio.Err)
	return exitUsage
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage: metalsync <command> [flags] [args]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'metalsync <command> -h' for a command's flags.\n")
	io.WriteString(w, b.String())
}

// newFlags returns a FlagSet that reports errors to env.Err and never exits.
func newFlags(name string, env *Env) *flag.FlagSet {
	fs := flag.NewFlagSet("metalsync "+name, flag.ContinueOnError)
	fs.SetOutput(env.Err)
	return fs
}

// parseFlags parses args and returns the exit code to use when parsing
// stopped the command (help or a bad flag), or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	return -1
}
