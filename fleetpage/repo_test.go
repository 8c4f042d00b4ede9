package fleetpage

import (
	"testing"

	"metalsync.dev/metalsync/repo/gitsource/gittest"
)

// gitRepo is a real repository, committed to with the git CLI.
type gitRepo struct {
	t   *testing.T
	dir string
}

func newRepo(t *testing.T) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, dir: t.TempDir()}
	gittest.Git(t, r.dir, "init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) commit(author, msg string, files map[string]string) {
	r.t.Helper()
	gittest.WriteFiles(r.t, r.dir, files)
	gittest.Git(r.t, r.dir, "add", "-A")
	gittest.Git(r.t, r.dir, "commit", "-q", "-m", msg, "--author", author+" <ops@example.net>")
}
