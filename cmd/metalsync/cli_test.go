package main

import (
	"bytes"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseFlagsAnywhere(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		format   string
		detailed bool
		pos      []string
		code     int
	}{
		{"flags first", []string{"--format", "json", "--detailed", "dir"}, "json", true, []string{"dir"}, -1},
		{"flags last", []string{"dir", "--format", "json", "--detailed"}, "json", true, []string{"dir"}, -1},
		{"mixed", []string{"a", "-format=json", "b", "--detailed=false"}, "json", false, []string{"a", "b"}, -1},
		{"double dash", []string{"--format", "json", "--", "--detailed", "-x"}, "json", false, []string{"--detailed", "-x"}, -1},
		{"double dash after args", []string{"a", "--", "--format"}, "text", false, []string{"a", "--format"}, -1},
		{"lone dash is an argument", []string{"-", "--detailed"}, "text", true, []string{"-"}, -1},
		{"help after args", []string{"dir", "--help"}, "text", false, nil, exitOK},
		{"unknown flag", []string{"dir", "--formt", "json"}, "text", false, nil, exitUsage},
		{"missing value", []string{"dir", "--format"}, "text", false, nil, exitUsage},
		{"none", nil, "text", false, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &Env{Stdio: Stdio{Out: &out, Err: &errb}}
			fs := newFlags("x", env)
			format := fs.String("format", "text", "output format")
			detailed := fs.Bool("detailed", false, "detailed")
			code := parseFlags(fs, tt.args)
			if code != tt.code {
				t.Fatalf("code %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if code >= 0 {
				return
			}
			if *format != tt.format || *detailed != tt.detailed || !slices.Equal(fs.Args(), tt.pos) {
				t.Errorf("format %q detailed %v args %q, want %q %v %q", *format, *detailed, fs.Args(), tt.format, tt.detailed, tt.pos)
			}
			if fs.NArg() != len(tt.pos) {
				t.Errorf("NArg %d, want %d", fs.NArg(), len(tt.pos))
			}
		})
	}
}

// TestParseFlagsHelpAndErrors: help goes to stdout, errors to stderr with
// a suggestion and no usage dump.
func TestParseFlagsHelpAndErrors(t *testing.T) {
	var out, errb bytes.Buffer
	env := &Env{Stdio: Stdio{Out: &out, Err: &errb}}
	fs := newFlags("x", env)
	fs.String("format", "text", "output format")
	fs.Usage = func() { io.WriteString(fs.Output(), "usage: metalsync x\n"); fs.PrintDefaults() }
	if code := parseFlags(fs, []string{"-h"}); code != exitOK {
		t.Fatalf("-h: code %d", code)
	}
	if !strings.HasPrefix(out.String(), "usage: metalsync x\n") || errb.Len() != 0 {
		t.Errorf("-h: stdout %q stderr %q", out.String(), errb.String())
	}
	out.Reset()
	if code := parseFlags(fs, []string{"--fromat=json"}); code != exitUsage {
		t.Fatalf("--fromat: code %d", code)
	}
	want := "metalsync x: flag provided but not defined: -fromat\n\nDid you mean this?\n\t--format\n\nRun 'metalsync x --help' for usage.\n"
	if errb.String() != want || out.Len() != 0 {
		t.Errorf("stderr %q, want %q; stdout %q", errb.String(), want, out.String())
	}
	// A Usage func written against env.Err prints help on stdout too.
	out.Reset()
	errb.Reset()
	fs2 := newFlags("y", env)
	fs2.Usage = func() { io.WriteString(env.Err, "usage: metalsync y\n") }
	if code := parseFlags(fs2, []string{"--help"}); code != exitOK || out.String() != "usage: metalsync y\n" || errb.Len() != 0 {
		t.Errorf("env.Err Usage: code %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	if env.Err != &errb {
		t.Errorf("env.Err not restored")
	}
	// A usage error a command reports itself still goes to stderr.
	errb.Reset()
	fs.Usage()
	if !strings.HasPrefix(errb.String(), "usage: metalsync x") {
		t.Errorf("Usage after parsing wrote %q to stderr", errb.String())
	}
}

func TestSuggest(t *testing.T) {
	cmds := []string{"validate", "plan", "apply", "status", "schema", "serve", "sim", "version", "completion"}
	flags := []string{"--format", "--detailed-exitcode", "-o", "--refresh", "--watch", "-l"}
	tests := []struct {
		word       string
		candidates []string
		want       []string
	}{
		{"plna", cmds, []string{"plan"}},
		{"stauts", cmds, []string{"status"}},
		{"valdate", cmds, []string{"validate"}},
		{"compl", cmds, []string{"completion"}},
		{"frobnicate", cmds, nil},
		{"x", cmds, nil},
		{"-formt", flags, []string{"--format"}},
		{"-detailed", flags, []string{"--detailed-exitcode"}},
		{"-x", flags, nil},
		{"-refesh", flags, []string{"--refresh"}},
	}
	for _, tt := range tests {
		if got := suggest(tt.word, tt.candidates); !slices.Equal(got, tt.want) {
			t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}

// TestEveryCommandHelp runs every command with --help: exit 0, its usage
// on stdout and nothing on stderr, and describe sees its flags (what
// completion is made from).
func TestEveryCommandHelp(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, Getenv: func(string) string { return "" }}
			if code := c.run(t.Context(), []string{"--help"}, env); code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, errb.String())
			}
			if !strings.Contains(out.String(), "metalsync "+c.name) || errb.Len() != 0 {
				t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
			}
			var described bool
			env.describe = func(*flag.FlagSet) { described = true }
			out.Reset()
			if code := c.run(t.Context(), []string{"--help"}, env); code != exitOK || !described || out.Len() != 0 {
				t.Errorf("describe: exit %d, described %v, stdout %q", code, described, out.String())
			}
		})
	}
}

func TestBuildVersionString(t *testing.T) {
	tests := []struct {
		v    buildVersion
		want string
	}{
		{buildVersion{Version: "v0.3.0", Commit: "7119246df84d", Time: "2026-12-03T19:00:00Z", Go: "go1.26.0", Platform: "linux/amd64"},
			"metalsync v0.3.0\ncommit: 7119246df84d, 2026-12-03T19:00:00Z\ngo: go1.26.0 linux/amd64\n"},
		{buildVersion{Version: "(devel)", Commit: "7119246df84d", Modified: true, Go: "go1.26.0", Platform: "linux/arm64"},
			"metalsync (devel)\ncommit: 7119246df84d (modified)\ngo: go1.26.0 linux/arm64\n"},
		{buildVersion{Version: "(devel)", Go: "go1.26.0", Platform: "linux/amd64"},
			"metalsync (devel)\ncommit: unknown (built without VCS information)\ngo: go1.26.0 linux/amd64\n"},
	}
	for _, tt := range tests {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	if v := readBuildVersion(); v.Go == "" || v.Version == "" {
		t.Errorf("readBuildVersion() = %+v: no Go version or version", v)
	}
}
