package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// cmdFlags is one command and its flags, learnt by running the command
// with --help and Env.describe set, so completion never drifts from the
// flags the commands define.
type cmdFlags struct {
	command
	flags []*flag.Flag
}

func describeCommands(ctx context.Context, env *Env) []cmdFlags {
	var out []cmdFlags
	for _, c := range commands() {
		cf := cmdFlags{command: c}
		probe := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, Getenv: env.Getenv}
		probe.describe = func(fs *flag.FlagSet) {
			fs.VisitAll(func(f *flag.Flag) { cf.flags = append(cf.flags, f) })
		}
		c.run(ctx, []string{"--help"}, probe)
		out = append(out, cf)
	}
	return out
}

// flagWord is how completion offers a flag: -o for one letter, --name
// otherwise (both forms parse).
func flagWord(f *flag.Flag) string {
	if len(f.Name) == 1 {
		return "-" + f.Name
	}
	return "--" + f.Name
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// shortUsage is the first clause of a flag's usage, without the characters
// the shells' completion specs treat specially.
func shortUsage(f *flag.Flag) string {
	_, u := flag.UnquoteUsage(f)
	if i := strings.IndexAny(u, ";("); i > 0 {
		u = u[:i]
	}
	u = strings.Map(func(r rune) rune {
		switch r {
		case '\'', '"', '[', ']', ':', '`', '$', '\\', '\n':
			return -1
		}
		return r
	}, u)
	return strings.TrimSpace(u)
}

func topicNames() []string {
	var t []string
	for k := range helpTopics() {
		t = append(t, k)
	}
	slices.Sort(t)
	return t
}

func completionShells() []string { return []string{"bash", "zsh", "fish"} }

func runCompletion(ctx context.Context, args []string, env *Env) int {
	fs := newFlags("completion", env)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: metalsync completion bash|zsh|fish

Prints a completion script for the shell: commands, their flags, help topics.
  bash:  source <(metalsync completion bash)     # in ~/.bashrc
  zsh:   metalsync completion zsh > "${fpath[1]}/_metalsync"
  fish:  metalsync completion fish > ~/.config/fish/completions/metalsync.fish`)
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 || !slices.Contains(completionShells(), fs.Arg(0)) {
		fmt.Fprintf(env.Err, "metalsync completion: want one shell: %s\n", strings.Join(completionShells(), ", "))
		if fs.NArg() == 1 {
			if s := suggest(fs.Arg(0), completionShells()); len(s) > 0 {
				fmt.Fprintf(env.Err, "\nDid you mean this?\n\t%s\n", strings.Join(s, "\n\t"))
			}
		}
		return exitUsage
	}
	cmds := describeCommands(ctx, env)
	var b strings.Builder
	switch fs.Arg(0) {
	case "bash":
		writeBashCompletion(&b, cmds)
	case "zsh":
		writeZshCompletion(&b, cmds)
	case "fish":
		writeFishCompletion(&b, cmds)
	}
	io.WriteString(env.Out, b.String())
	return exitOK
}

func writeBashCompletion(b *strings.Builder, cmds []cmdFlags) {
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	b.WriteString("# bash completion for metalsync: source <(metalsync completion bash)\n")
	b.WriteString("_metalsync() {\n")
	b.WriteString("    local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"${COMP_WORDS[1]}\" words=\"\"\n")
	fmt.Fprintf(b, "    if [[ $COMP_CWORD -eq 1 ]]; then\n        COMPREPLY=($(compgen -W %q -- \"$cur\"))\n        return\n    fi\n",
		strings.Join(append(names, "help", "--help", "--version"), " "))
	b.WriteString("    case \"$cmd\" in\n")
	fmt.Fprintf(b, "    help) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", strings.Join(append(names, topicNames()...), " "))
	fmt.Fprintf(b, "    completion) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", strings.Join(completionShells(), " "))
	for _, c := range cmds {
		if c.name == "completion" {
			continue
		}
		var fl []string
		for _, f := range c.flags {
			fl = append(fl, flagWord(f))
		}
		fl = append(fl, "--help")
		fmt.Fprintf(b, "    %s) words=%q ;;\n", c.name, strings.Join(fl, " "))
	}
	b.WriteString("    esac\n")
	b.WriteString("    if [[ $cur == -* ]]; then\n        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n    fi\n")
	b.WriteString("}\ncomplete -o default -o bashdefault -F _metalsync metalsync\n")
}

func writeZshCompletion(b *strings.Builder, cmds []cmdFlags) {
	b.WriteString("#compdef metalsync\n# zsh completion for metalsync: metalsync completion zsh > \"${fpath[1]}/_metalsync\"\n\n")
	b.WriteString("_metalsync() {\n    local -a cmds\n    cmds=(\n")
	for _, c := range cmds {
		fmt.Fprintf(b, "        '%s:%s'\n", c.name, strings.ReplaceAll(c.summary, "'", "'\\''"))
	}
	b.WriteString("        'help:help on a command or topic'\n    )\n")
	b.WriteString("    if (( CURRENT == 2 )); then\n        _describe -t commands 'metalsync command' cmds\n        return\n    fi\n")
	b.WriteString("    case $words[2] in\n")
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	fmt.Fprintf(b, "    help) _values 'command or topic' %s ;;\n", strings.Join(append(names, topicNames()...), " "))
	fmt.Fprintf(b, "    completion) _values 'shell' %s ;;\n", strings.Join(completionShells(), " "))
	for _, c := range cmds {
		if c.name == "completion" {
			continue
		}
		fmt.Fprintf(b, "    %s) _arguments \\\n", c.name)
		for _, f := range c.flags {
			spec := fmt.Sprintf("%s[%s]", flagWord(f), shortUsage(f))
			if !isBoolFlag(f) {
				name, _ := flag.UnquoteUsage(f)
				if name == "" {
					name = "value"
				}
				spec += ":" + name + ":"
				if strings.EqualFold(name, "file") || strings.EqualFold(name, "dir") {
					spec += "_files"
				}
			}
			fmt.Fprintf(b, "            '%s' \\\n", spec)
		}
		b.WriteString("            '*:file:_files' ;;\n")
	}
	b.WriteString("    esac\n}\n\ncompdef _metalsync metalsync\n")
}

func writeFishCompletion(b *strings.Builder, cmds []cmdFlags) {
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	b.WriteString("# fish completion for metalsync: metalsync completion fish > ~/.config/fish/completions/metalsync.fish\n")
	b.WriteString("complete -c metalsync -f -n __fish_use_subcommand -l version -d 'print the version'\n")
	for _, c := range cmds {
		fmt.Fprintf(b, "complete -c metalsync -f -n __fish_use_subcommand -a %s -d '%s'\n", c.name, strings.ReplaceAll(c.summary, "'", "\\'"))
	}
	b.WriteString("complete -c metalsync -f -n __fish_use_subcommand -a help -d 'help on a command or topic'\n")
	fmt.Fprintf(b, "complete -c metalsync -f -n '__fish_seen_subcommand_from help' -a '%s'\n", strings.Join(append(names, topicNames()...), " "))
	fmt.Fprintf(b, "complete -c metalsync -f -n '__fish_seen_subcommand_from completion' -a '%s'\n", strings.Join(completionShells(), " "))
	for _, c := range cmds {
		for _, f := range c.flags {
			opt := "-l " + f.Name
			if len(f.Name) == 1 {
				opt = "-s " + f.Name
			}
			req := ""
			if !isBoolFlag(f) {
				req = " -r"
			}
			fmt.Fprintf(b, "complete -c metalsync -n '__fish_seen_subcommand_from %s' %s%s -d '%s'\n", c.name, opt, req, shortUsage(f))
		}
	}
}
