package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"metalsync.dev/metalsync/internal/spelling"
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

	// describe, when set, receives a command's FlagSet instead of its help
	// being printed: `completion` and `help` learn a command's flags by
	// running it with --help, without a second table of flags to keep.
	describe func(*flag.FlagSet)
}

// command is one `metalsync <verb>`.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, env *Env) int
}

// Exit codes shared by every command; exitCodesHelp documents them.
const (
	exitOK      = 0
	exitError   = 1
	exitChanges = 2 // plan --detailed-exitcode: there are changes
	exitUsage   = 64
)

// exitCodesHelp is the one table of exit codes (`metalsync help exit-codes`,
// and the README's copy).
const exitCodesHelp = `exit codes:
  0   success (plan --detailed-exitcode: no changes)
  1   error: invalid inventory, a failed step, an unreachable BMC, ...
  2   plan --detailed-exitcode: there are changes
  64  usage error: unknown command or flag, bad flag value, wrong arguments
`

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
		{"version", "print metalsync's version, commit and Go version", runVersion},
		{"completion", "print a shell completion script: bash, zsh or fish", runCompletion},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// Main runs metalsync with args (without the program name) and returns the
// process exit code.
func Main(args []string, stdio Stdio) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &Env{Stdio: stdio, Getenv: os.Getenv}
	return run(ctx, args, env)
}

func run(ctx context.Context, args []string, env *Env) int {
	if len(args) == 0 {
		// Scripts rely on a bare `metalsync` being a usage error.
		usage(env.Err)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(env.Out)
		return exitOK
	case "help":
		return runHelp(ctx, args[1:], env)
	case "-version", "--version":
		return runVersion(ctx, nil, env)
	}
	if c, ok := findCommand(args[0]); ok {
		return c.run(ctx, args[1:], env)
	}
	fmt.Fprintf(env.Err, "metalsync: unknown command %q\n", args[0])
	if s := suggest(args[0], commandNames()); len(s) > 0 {
		fmt.Fprintf(env.Err, "\nDid you mean this?\n\t%s\n", strings.Join(s, "\n\t"))
	}
	fmt.Fprintln(env.Err, "\nRun 'metalsync help' for the list of commands.")
	return exitUsage
}

func commandNames() []string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return names
}

// helpTopics are `metalsync help TOPIC` pages that are not commands.
func helpTopics() map[string]string {
	return map[string]string{
		"exit-codes": exitCodesHelp,
		"flags": `Flags may come before or after the arguments, in any order:
  metalsync plan --format json DIR  and  metalsync plan DIR --format json
are the same. A flag is written -name or --name, its value as --name value
or --name=value; a boolean flag takes only --name or --name=false. After --
every argument is an argument, even one starting with -.
`,
		"environment": `environment:
  NO_COLOR                 metalsync writes no colour or other terminal escape codes
                           in any case; NO_COLOR is honoured by construction
  METALSYNC_CACHE_DIR      validation cache (default: the user cache directory)
  METALSYNC_BMC_PASSWORD   bmc: the BMC password (see --password-env)
`,
	}
}

func runHelp(ctx context.Context, args []string, env *Env) int {
	if len(args) == 0 {
		usage(env.Out)
		return exitOK
	}
	if len(args) > 1 {
		fmt.Fprintln(env.Err, "metalsync help: want one command or topic")
		return exitUsage
	}
	if text, ok := helpTopics()[args[0]]; ok {
		io.WriteString(env.Out, text)
		return exitOK
	}
	c, ok := findCommand(args[0])
	if !ok {
		fmt.Fprintf(env.Err, "metalsync help: unknown command or topic %q\n", args[0])
		names := commandNames()
		for t := range helpTopics() {
			names = append(names, t)
		}
		if s := suggest(args[0], names); len(s) > 0 {
			fmt.Fprintf(env.Err, "\nDid you mean this?\n\t%s\n", strings.Join(s, "\n\t"))
		}
		return exitUsage
	}
	fmt.Fprintf(env.Out, "metalsync %s: %s\n\n", c.name, c.summary)
	return c.run(ctx, []string{"--help"}, env)
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage: metalsync <command> [flags] [args]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	b.WriteString("  help         help on a command or topic: metalsync help plan\n")
	b.WriteString("\nflags go before or after arguments; --version prints the version.\n\n")
	b.WriteString(exitCodesHelp)
	topics := topicNames()
	fmt.Fprintf(&b, "\nRun 'metalsync help <command>' or 'metalsync <command> --help' for a command's flags,\n'metalsync help <topic>' for one of: %s.\n", strings.Join(topics, ", "))
	io.WriteString(w, b.String())
}

// flagOutput is where a FlagSet made by newFlags writes: env.Err, while
// keeping the invocation's Env reachable from the FlagSet for parseFlags.
type flagOutput struct {
	io.Writer
	env  *Env
	name string
}

// newFlags returns a FlagSet that reports errors to env.Err and never exits.
// A command's Usage func writes to fs.Output(): stderr after a usage error,
// stdout when help was asked for.
func newFlags(name string, env *Env) *flag.FlagSet {
	fs := flag.NewFlagSet("metalsync "+name, flag.ContinueOnError)
	fs.SetOutput(&flagOutput{Writer: env.Err, env: env, name: name})
	return fs
}

// parseFlags parses args, with flags anywhere among the arguments (as
// kubectl and gh do), and returns the exit code to use when parsing stopped
// the command (help or a bad flag), or -1 to go on. Afterwards fs.Args()
// holds every non-flag argument in order.
func parseFlags(fs *flag.FlagSet, args []string) int {
	out, _ := fs.Output().(*flagOutput)
	usage := fs.Usage
	// The flag package prints its own error and the usage on failure;
	// parseFlags says it better, so silence both while parsing.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	pos, err := parseInterleaved(fs, args)
	fs.SetOutput(out)
	if out == nil {
		fs.SetOutput(os.Stderr)
	}
	fs.Usage = usage
	switch {
	case err == nil:
		// Leave the arguments where fs.Args() finds them.
		_ = fs.Parse(append([]string{"--"}, pos...))
		return -1
	case errors.Is(err, flag.ErrHelp):
		if out != nil && out.env.describe != nil {
			out.env.describe(fs)
			return exitOK
		}
		if out != nil {
			// Help goes to stdout, also from a Usage func that writes
			// to env.Err rather than fs.Output().
			env := out.env
			fs.SetOutput(env.Out)
			errw := env.Err
			env.Err = env.Out
			defer func() { fs.SetOutput(out); env.Err = errw }()
		}
		fs.Usage()
		return exitOK
	}
	name := strings.TrimPrefix(fs.Name(), "metalsync ")
	w := fs.Output()
	fmt.Fprintf(w, "metalsync %s: %v\n", name, err)
	if bad, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, flagWord(f)) })
		if s := suggest(bad, names); len(s) > 0 {
			fmt.Fprintf(w, "\nDid you mean this?\n\t%s\n", strings.Join(s, "\n\t"))
		}
	}
	fmt.Fprintf(w, "\nRun 'metalsync %s --help' for usage.\n", name)
	return exitUsage
}

// parseInterleaved parses the flags found anywhere among args and returns
// the other arguments; after "--" everything is an argument.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// suggest returns the candidates close to a mistyped word: within two
// edits (one for short words), or starting with it. Leading dashes are
// ignored, so flags compare by name.
func suggest(word string, candidates []string) []string {
	w := strings.TrimLeft(word, "-")
	var out []string
	for _, c := range candidates {
		n := strings.TrimLeft(c, "-")
		d := spelling.Distance(w, n)
		if d <= 2 && d <= len(n)/2 || len(w) >= 3 && strings.HasPrefix(n, w) {
			out = append(out, c)
		}
	}
	return out
}
