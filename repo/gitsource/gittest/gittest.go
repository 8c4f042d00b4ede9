// Package gittest runs real Git for tests: a `git daemon` on loopback
// serving bare repositories, and the git CLI driven as a person would.
package gittest

import (
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"metalsync.dev/metalsync/test/tools"
)

// Env is the environment for git commands: no user or system config, a
// fixed identity, so tests behave the same on every machine.
func Env(home string) []string {
	return append(os.Environ(),
		"HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"),
		"GIT_AUTHOR_NAME=Human Operator",
		"GIT_AUTHOR_EMAIL=human@example.com",
		"GIT_COMMITTER_NAME=Human Operator",
		"GIT_COMMITTER_EMAIL=human@example.com",
		"GIT_TERMINAL_PROMPT=0",
		// No background gc or maintenance: it would outlive the test and
		// race the removal of its temporary directory.
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=gc.auto", "GIT_CONFIG_VALUE_0=0",
		"GIT_CONFIG_KEY_1=maintenance.auto", "GIT_CONFIG_VALUE_1=false",
	)
}

// Git runs git in dir and returns its trimmed stdout; a failure fails tb.
func Git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	out, err := TryGit(dir, args...)
	if err != nil {
		tb.Fatalf("git %s (in %s): %v", strings.Join(args, " "), dir, err)
	}
	return out
}

// TryGit runs git in dir and returns its trimmed stdout, or an error with
// its stderr.
func TryGit(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = Env(dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// Server is a git daemon serving the bare repositories under Base.
type Server struct {
	Base string
	Port int
}

// URL is the git:// URL of the repository name.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("git://127.0.0.1:%d/%s", s.Port, name)
}

// Daemon starts `git daemon` on a free loopback port, with pushes enabled,
// and stops it when the test ends.
func Daemon(tb testing.TB) *Server {
	tb.Helper()
	tools.Require(tb, "git")
	base := tb.TempDir()
	execPath, err := TryGit(base, "--exec-path")
	if err != nil {
		tb.Fatalf("git --exec-path: %v", err)
	}
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// `git daemon` forks git-daemon, which would outlive a killed
		// parent: run it directly, in its own process group, and end the
		// group (its per-connection children too).
		cmd := exec.Command(filepath.Join(execPath, "git-daemon"), "--export-all", "--enable=receive-pack", "--reuseaddr",
			"--base-path="+base, "--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), base)
		cmd.Env = Env(base)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start git daemon: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		stop := func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if waitListening(port, done) {
			tb.Cleanup(stop)
			return &Server{Base: base, Port: port}
		}
		stop()
	}
	tb.Fatal("git daemon did not start")
	return nil
}

func waitListening(port int, exited <-chan error) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Seed creates a bare repository name under base with one commit on main
// holding files (path → content), and returns the bare repository's path.
func Seed(tb testing.TB, base, name string, files map[string]string) string {
	tb.Helper()
	bare := filepath.Join(base, name)
	Git(tb, base, "init", "--quiet", "--bare", "--initial-branch=main", bare)
	work := Clone(tb, bare)
	WriteFiles(tb, work, files)
	Git(tb, work, "add", "-A")
	Git(tb, work, "commit", "--quiet", "-m", "seed")
	Git(tb, work, "push", "--quiet", "origin", "HEAD:main")
	return bare
}

// Clone clones url into a new temporary directory and returns it.
func Clone(tb testing.TB, url string) string {
	tb.Helper()
	dir := tb.TempDir()
	Git(tb, dir, "clone", "--quiet", url, ".")
	Git(tb, dir, "checkout", "--quiet", "-B", "main")
	return dir
}

// WriteFiles writes files (path → content) under dir, creating parents.
func WriteFiles(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// HTTPS serves the bare repositories under base with `git http-backend`
// (through net/http/cgi) over TLS on loopback, requiring HTTP basic
// credentials user:pass. It returns the base URL and a PEM file with the
// server's certificate, for gitsource's CAFile.
func HTTPS(tb testing.TB, base, user, pass string) (url, caFile string) {
	tb.Helper()
	gitPath := tools.Require(tb, "git")
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		// REMOTE_USER enables receive-pack; the wrapper below has
		// authenticated the request.
		Env: append(Env(base), "GIT_PROJECT_ROOT="+base, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER="+user),
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	caFile = filepath.Join(tb.TempDir(), "ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, block, 0o644); err != nil {
		tb.Fatal(err)
	}
	return srv.URL, caFile
}

// Repo is a repository with a work tree, committed to as people would.
type Repo struct {
	tb  testing.TB
	Dir string
}

// NewRepo makes an empty repository on main in a new temporary directory.
func NewRepo(tb testing.TB) *Repo {
	tb.Helper()
	r := &Repo{tb: tb, Dir: tb.TempDir()}
	Git(tb, r.Dir, "init", "--quiet", "--initial-branch=main")
	return r
}

// Commit writes files (path → content; "" deletes the file), commits
// everything as author ("Name" becomes "Name <Name@example.net>" with
// spaces as dots) and returns the new commit's hash.
func (r *Repo) Commit(author, msg string, files map[string]string) string {
	r.tb.Helper()
	write := map[string]string{}
	for name, data := range files {
		if data != "" {
			write[name] = data
			continue
		}
		if err := os.Remove(filepath.Join(r.Dir, filepath.FromSlash(name))); err != nil {
			r.tb.Fatal(err)
		}
	}
	WriteFiles(r.tb, r.Dir, write)
	Git(r.tb, r.Dir, "add", "-A")
	email := strings.ReplaceAll(author, " ", ".") + "@example.net"
	Git(r.tb, r.Dir, "commit", "--quiet", "--allow-empty", "-m", msg, "--author", author+" <"+email+">")
	return Git(r.tb, r.Dir, "rev-parse", "HEAD")
}
