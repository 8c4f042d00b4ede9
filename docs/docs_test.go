// Package docs_test keeps the operator documentation true to the code: every
// metric it names is registered, every flag it writes after a metalsync
// command is a flag of that command, every relative link resolves, and the
// example systemd unit parses.
package docs_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"metalsync.dev/metalsync/agentapi/server"
	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/imagecache"
)

// unitFile is the example systemd unit, relative to docs/.
const unitFile = "examples/metalsync.service"

// docFiles returns the documentation files: every Markdown file under
// docs/ and the example unit, keyed by path relative to docs/.
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (!strings.HasSuffix(path, ".md") && path != unitFile) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(path)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d documentation files, want the three guides and the unit", len(files))
	}
	return files
}

// registeredMetrics returns the name of every metalsync_* metric the daemon
// can serve: those of daemon.NewMetrics' registry, the agent listener's and
// the image cache's (registered through a recording Registerer).
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	rec := &recordingRegisterer{}
	if _, err := server.New(server.Config{Key: bytes.Repeat([]byte{1}, server.MinKeyLen), Registerer: rec}); err != nil {
		t.Fatalf("agent server: %v", err)
	}
	if _, err := imagecache.New(t.TempDir(), imagecache.Options{Registerer: rec}); err != nil {
		t.Fatalf("image cache: %v", err)
	}
	collectors := append([]prometheus.Collector{daemon.NewMetrics().Registry}, rec.collectors...)
	fqName := regexp.MustCompile(`fqName: "(metalsync_[^"]+)"`)
	names := map[string]bool{}
	for _, c := range collectors {
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if sm := fqName.FindStringSubmatch(d.String()); sm != nil {
				names[sm[1]] = true
			}
		}
	}
	if !names["metalsync_actions_total"] || !names["metalsync_agent_requests_total"] {
		t.Fatalf("registered metrics %v lack the daemon's or the agent listener's", names)
	}
	return names
}

// recordingRegisterer keeps what is registered with it.
type recordingRegisterer struct {
	mu         sync.Mutex
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *recordingRegisterer) Unregister(prometheus.Collector) bool { return false }

var metricName = regexp.MustCompile(`\bmetalsync_[a-z0-9_]*[a-z0-9]`)

// unknownMetrics returns the metalsync_* names in text that are not
// registered. The series of a registered name with _bucket, _sum or
// _count appended (a histogram's) count as that name.
func unknownMetrics(text string, registered map[string]bool) []string {
	var bad []string
	for _, name := range metricName.FindAllString(text, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && registered[b] {
				base = b
			}
		}
		if !registered[base] && !slices.Contains(bad, name) {
			bad = append(bad, name)
		}
	}
	return bad
}

// commandUse is one metalsync command line written in the docs.
type commandUse struct {
	line    int
	command string // "serve", "agent-image"
	flags   []string
}

var (
	commandStart = regexp.MustCompile(`\bmetalsync ([a-z][a-z-]*)`)
	flagToken    = regexp.MustCompile(`(?:^|[\s\[(])--?([a-zA-Z][a-zA-Z0-9-]*)`)
)

// commandUses finds every `metalsync COMMAND …` in text with the flags
// written after it: up to the end of the inline code span or the line, a
// shell comment, pipe or command separator, following backslash
// continuations.
func commandUses(text string, commands map[string]bool) []commandUse {
	lines := strings.Split(text, "\n")
	var uses []commandUse
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		for _, loc := range commandStart.FindAllStringSubmatchIndex(line, -1) {
			cmd := line[loc[2]:loc[3]]
			if !commands[cmd] {
				continue
			}
			inCode := strings.Count(line[:loc[0]], "`")%2 == 1
			rest := line[loc[1]:]
			for j := i; strings.HasSuffix(strings.TrimSpace(rest), `\`) && j+1 < len(lines); j++ {
				rest = strings.TrimSuffix(strings.TrimSpace(rest), `\`) + " " + lines[j+1]
			}
			if inCode {
				rest, _, _ = strings.Cut(rest, "`")
			}
			for _, stop := range []string{" #", "|", ";", "&&", ">"} {
				rest, _, _ = strings.Cut(rest, stop)
			}
			u := commandUse{line: i + 1, command: cmd}
			for _, m := range flagToken.FindAllStringSubmatch(rest, -1) {
				u.flags = append(u.flags, m[1])
			}
			uses = append(uses, u)
		}
	}
	return uses
}

var helpFlag = regexp.MustCompile(`(?m)^ {2}-([a-zA-Z0-9][a-zA-Z0-9-]*)`)

// cli is the metalsync binary built from this checkout and what its help
// says about each command.
type cli struct {
	bin      string
	commands map[string]bool
	flags    map[string]map[string]bool // command -> flag names
}

var (
	builtOnce sync.Once
	built     *cli
	buildErr  error
)

// metalsyncCLI builds the binary once per test run and reads every
// command's flags from its --help.
func metalsyncCLI(t *testing.T) *cli {
	t.Helper()
	builtOnce.Do(func() {
		dir, err := os.MkdirTemp("", "metalsync-docs-")
		if err != nil {
			buildErr = err
			return
		}
		c := &cli{bin: filepath.Join(dir, "metalsync"), commands: map[string]bool{}, flags: map[string]map[string]bool{}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", c.bin, "../cmd/metalsync").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ../cmd/metalsync: %w\n%s", err, out)
			return
		}
		out, err := exec.CommandContext(ctx, c.bin, "help").Output()
		if err != nil {
			buildErr = fmt.Errorf("metalsync help: %w", err)
			return
		}
		// "  serve        run the daemon: …" under "commands:".
		sc := bufio.NewScanner(bytes.NewReader(out))
		inCommands := false
		for sc.Scan() {
			l := sc.Text()
			switch {
			case l == "commands:":
				inCommands = true
			case inCommands && strings.HasPrefix(l, "  "):
				c.commands[strings.Fields(l)[0]] = true
			case inCommands:
				inCommands = false
			}
		}
		for cmd := range c.commands {
			args := []string{cmd, "--help"}
			if cmd == "agent-image" {
				args = []string{cmd, "build", "--help"}
			}
			out, err := exec.CommandContext(ctx, c.bin, args...).CombinedOutput()
			if err != nil && cmd != "help" {
				buildErr = fmt.Errorf("metalsync %s: %w\n%s", strings.Join(args, " "), err, out)
				return
			}
			fl := map[string]bool{"h": true, "help": true}
			for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
				fl[m[1]] = true
			}
			c.flags[cmd] = fl
		}
		built = c
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if !built.flags["serve"]["repo"] {
		t.Fatalf("metalsync serve --help lists no --repo: %v", built.flags["serve"])
	}
	return built
}

// unknownFlags returns the flags written after metalsync commands in text
// that the command does not have.
func unknownFlags(text string, c *cli) []string {
	var bad []string
	for _, u := range commandUses(text, c.commands) {
		for _, f := range u.flags {
			if !c.flags[u.command][f] {
				bad = append(bad, fmt.Sprintf("line %d: metalsync %s --%s", u.line, u.command, f))
			}
		}
	}
	return bad
}

var (
	mdLink  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
)

// anchors returns the GitHub anchors of the headings of a Markdown text.
func anchors(md string) map[string]bool {
	a := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(md, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
				b.WriteRune(r)
			}
		}
		a[b.String()] = true
	}
	return a
}

// brokenLinks returns the relative links of the Markdown file at path
// (relative to docs/) whose file does not exist, or whose #anchor names no
// heading of that file.
func brokenLinks(path, md string, read func(string) (string, error)) []string {
	var bad []string
	for _, m := range mdLink.FindAllStringSubmatch(md, -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		file, anchor, _ := strings.Cut(target, "#")
		resolved := path
		if file != "" {
			resolved = filepath.ToSlash(filepath.Join(filepath.Dir(path), file))
		}
		content, err := read(resolved)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", target, err))
			continue
		}
		if anchor != "" && strings.HasSuffix(resolved, ".md") && !anchors(content)[anchor] {
			bad = append(bad, fmt.Sprintf("%s: no heading #%s in %s", target, anchor, resolved))
		}
	}
	return bad
}

func readRel(name string) (string, error) {
	b, err := os.ReadFile(filepath.FromSlash(name))
	return string(b), err
}

func TestMetricsAreRegistered(t *testing.T) {
	registered := registeredMetrics(t)
	for path, text := range docFiles(t) {
		for _, name := range unknownMetrics(text, registered) {
			t.Errorf("%s: metric %s is not registered by the daemon or the agent listener", path, name)
		}
	}
}

// TestEveryDaemonMetricIsDocumented: the scaling guide's table lists every
// metric the daemon and its agent listener register.
func TestEveryDaemonMetricIsDocumented(t *testing.T) {
	doc, err := readRel("scaling.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range registeredMetrics(t) {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("scaling.md does not describe metric %s", name)
		}
	}
}

func TestFlagsExist(t *testing.T) {
	c := metalsyncCLI(t)
	uses := 0
	for path, text := range docFiles(t) {
		uses += len(commandUses(text, c.commands))
		for _, bad := range unknownFlags(text, c) {
			t.Errorf("%s: %s: no such flag", path, bad)
		}
	}
	if uses < 10 {
		t.Errorf("found %d metalsync command lines in the docs; the scanner is broken", uses)
	}
}

func TestRelativeLinksResolve(t *testing.T) {
	for path, text := range docFiles(t) {
		if !strings.HasSuffix(path, ".md") {
			continue
		}
		for _, bad := range brokenLinks(path, text, readRel) {
			t.Errorf("%s: broken link %s", path, bad)
		}
	}
}

// TestUnitFileVerifies runs systemd-analyze verify on the example unit,
// with ExecStart's binary pointed at a real one (verify checks that it
// exists). Without systemd-analyze the test skips, even with CI=true:
// systemd cannot be installed into the containers CI runs in.
func TestUnitFileVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (not installable in a container without systemd; skipped even in CI)")
	}
	c := metalsyncCLI(t)
	unit, err := readRel(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	const installed = "/usr/local/bin/metalsync serve"
	if !strings.Contains(unit, "ExecStart="+installed) {
		t.Fatalf("%s: ExecStart does not run %s", unitFile, installed)
	}
	path := filepath.Join(t.TempDir(), "metalsync.service")
	if err := os.WriteFile(path, []byte(strings.Replace(unit, installed, c.bin+" serve", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput()
	// verify exits 0 on unknown keys and bad values, only warning about
	// them: any line naming the unit is a failure.
	if err != nil || strings.Contains(string(out), "metalsync.service") {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
}

// TestCheckersFail: each check reports a made-up metric, flag and link,
// so that the tests above can fail.
func TestCheckersFail(t *testing.T) {
	registered := map[string]bool{"metalsync_nodes": true, "metalsync_reconcile_duration_seconds": true}
	c := &cli{commands: map[string]bool{"serve": true, "unlock": true}, flags: map[string]map[string]bool{
		"serve": {"repo": true, "poll": true}, "unlock": {"repo": true},
	}}
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"made-up metric", "watch `metalsync_nodes` and `metalsync_made_up_total`", []string{"metalsync_made_up_total"}},
		{"histogram series", "rate(metalsync_reconcile_duration_seconds_bucket[5m]) metalsync_nodes_total", []string{"metalsync_nodes_total"}},
		{"made-up flag inline", "run `metalsync serve --repo URL --made-up-flag` then", []string{"line 1: metalsync serve --made-up-flag"}},
		{"flag of another command", "`metalsync unlock --poll 5s ID`", []string{"line 1: metalsync unlock --poll"}},
		{"continued unit line", "ExecStart=/usr/local/bin/metalsync serve \\\n    --repo x \\\n    --bogus y\n--not-this", []string{"line 1: metalsync serve --bogus"}},
		{"stops at comment and pipe", "metalsync serve --poll 1s  # --not-a-flag\nmetalsync serve --repo x | grep --count", nil},
		{"unknown command ignored", "metalsync completion bash --whatever", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := append(unknownMetrics(tt.text, registered), unknownFlags(tt.text, c)...)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	files := map[string]string{
		"a.md":   "# Title\n## Some `code` heading (x)\n",
		"b/c.md": "[ok](../a.md#some-code-heading-x) [missing](../nope.md) [bad anchor](../a.md#nope) [self](#here)\n# Here\n",
	}
	read := func(name string) (string, error) {
		if s, ok := files[name]; ok {
			return s, nil
		}
		return "", os.ErrNotExist
	}
	got := brokenLinks("b/c.md", files["b/c.md"], read)
	want := []string{"../nope.md: file does not exist", "../a.md#nope: no heading #nope in a.md"}
	if !slices.Equal(got, want) {
		t.Errorf("brokenLinks: got %q, want %q", got, want)
	}
}
