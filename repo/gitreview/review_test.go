package gitreview

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-cmp/cmp"
)

// tools skips without git or ssh-keygen, and fails without them in CI.
func tools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"git", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI: %v", tool, err)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_DATE=2026-12-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-12-01T00:00:00Z")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// key makes an ed25519 key pair and returns the private key's file and
// the public key line.
func key(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	f := filepath.Join(dir, name)
	run(t, dir, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", f)
	pub, err := os.ReadFile(f + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return f, strings.TrimSpace(string(pub))
}

type history struct {
	t    *testing.T
	dir  string
	work string
}

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if data == "" {
			os.Remove(p)
			continue
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// commit writes files ("" deletes one) and commits them as email, signed
// with signKey when it is not "".
func (h *history) commit(email, signKey string, files map[string]string) string {
	h.t.Helper()
	write(h.t, h.dir, files)
	run(h.t, h.dir, "git", "add", "-A")
	args := []string{"-c", "user.name=" + email, "-c", "user.email=" + email}
	if signKey != "" {
		args = append(args, "-c", "gpg.format=ssh", "-c", "user.signingkey="+signKey, "commit", "-S")
	} else {
		args = append(args, "commit")
	}
	run(h.t, h.dir, "git", append(args, "-q", "--allow-empty", "-m", "change by "+email)...)
	return run(h.t, h.dir, "git", "rev-parse", "HEAD")
}

const site = `apiVersion: metalsync.dev/v1alpha1
kind: Site
metadata:
  name: test
spec:
  credentials:
    sets:
      bmc:
        env: {username: BMC_USER, password: BMC_PASS}
`

func ownersFiles(adminKey, eveKey string) map[string]string {
	return map[string]string{
		"owners/platform.yaml": `apiVersion: metalsync.dev/v1alpha1
kind: Owner
metadata: {name: platform}
spec:
  admin: true
  members:
    - email: alice@example.net
      signingKey: ` + adminKey + `
`,
		"owners/tenant.yaml": `apiVersion: metalsync.dev/v1alpha1
kind: Owner
metadata: {name: tenant}
spec:
  members: [{email: tom@example.net}]
`,
		"owners/renter.yaml": `apiVersion: metalsync.dev/v1alpha1
kind: Owner
metadata: {name: renter}
spec:
  members: [{email: lee@example.net}, {email: eve@example.net, signingKey: "` + eveKey + `"}]
`,
	}
}

func node(name, bmc, power string) string {
	return `apiVersion: metalsync.dev/v1alpha1
kind: Node
metadata: {name: ` + name + `}
spec:
  bmc:
    address: ` + bmc + `
    credentialsRef: {set: bmc}
  owner: tenant
  lessee: renter
  power: "` + power + `"
  provision:
    state: manageable
    deployTemplates: [bios]
`
}

func template(desc string) string {
	return `apiVersion: metalsync.dev/v1alpha1
kind: DeployTemplate
metadata: {name: bios}
spec:
  description: ` + desc + `
  steps:
    - {interface: bios, step: apply_configuration, args: {settings: {HyperThreading: Enabled}}, priority: 10}
`
}

func TestReview(t *testing.T) {
	tools(t)
	dir := t.TempDir()
	aliceKey, alicePub := key(t, dir, "alice")
	eveKey, evePub := key(t, dir, "eve")
	repoDir := filepath.Join(dir, "repo")
	os.Mkdir(repoDir, 0o755)
	run(t, repoDir, "git", "init", "-q", "-b", "main")
	h := &history{t: t, dir: repoDir}
	files := ownersFiles(alicePub, evePub)
	files["metalsync.yaml"] = site
	files["nodes/n1.yaml"] = node("n1", "fake://n1", "off")
	files["nodes/n2.yaml"] = node("n2", "fake://n2", "off")
	files["templates/bios.yaml"] = template("one")
	base := h.commit("alice@example.net", aliceKey, files)

	type want struct {
		Email    string
		Verified bool
		Problem  string
		Changes  []string // path=rule:allowed
	}
	steps := []struct {
		email, key string
		files      map[string]string
		want       want
	}{
		{"lee@example.net", "", map[string]string{"nodes/n1.yaml": node("n1", "fake://n1", "on")},
			want{"lee@example.net", false, "", []string{"Node/n1 spec.power node-power true"}}},
		{"lee@example.net", "", map[string]string{"nodes/n1.yaml": node("n1", "fake://evil", "on")},
			want{"lee@example.net", false, "", []string{"Node/n1 spec.bmc.address node-bmc false"}}},
		{"alice@example.net", "", map[string]string{"nodes/n1.yaml": node("n1", "fake://evil2", "on")},
			want{"alice@example.net", false, "unsigned, but alice@example.net has a signingKey", []string{"Node/n1 spec.bmc.address signature false"}}},
		{"alice@example.net", eveKey, map[string]string{"nodes/n1.yaml": node("n1", "fake://evil3", "on")},
			want{"alice@example.net", false, "does not verify", []string{"Node/n1 spec.bmc.address signature false"}}},
		{"eve@example.net", eveKey, map[string]string{"nodes/n2.yaml": node("n2", "fake://n2", "on")},
			want{"eve@example.net", true, "", []string{"Node/n2 spec.power node-power true"}}},
		{"alice@example.net", aliceKey, map[string]string{"templates/bios.yaml": template("two")},
			want{"alice@example.net", true, "", []string{"DeployTemplate/bios spec.description templates-admin true"}}},
	}
	for _, s := range steps {
		h.commit(s.email, s.key, s.files)
	}
	head := run(t, repoDir, "git", "rev-parse", "HEAD")

	repo, err := git.PlainOpen(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Review(context.Background(), repo.Storer, plumbing.NewHash(base), plumbing.NewHash(head), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Commits) != len(steps) {
		t.Fatalf("got %d commits, want %d", len(rep.Commits), len(steps))
	}
	for i, c := range rep.Commits {
		got := want{Email: c.Author.Email, Verified: c.Signature.Verified, Problem: c.Signature.Problem}
		if strings.Contains(got.Problem, steps[i].want.Problem) {
			got.Problem = steps[i].want.Problem // only a part of the message is stable
		}
		for _, d := range c.Decisions {
			got.Changes = append(got.Changes, strings.Join([]string{d.Kind + "/" + d.Name, d.Path, d.Rule, map[bool]string{true: "true", false: "false"}[d.Allowed]}, " "))
		}
		if diff := cmp.Diff(steps[i].want, got); diff != "" {
			t.Errorf("commit %d (-want +got):\n%s", i+1, diff)
		}
	}
	if diff := cmp.Diff([]Template{{Name: "bios", Op: "modify", Nodes: []string{"n1", "n2"}}}, rep.Blast); diff != "" {
		t.Errorf("blast radius (-want +got):\n%s", diff)
	}

	// The site requires signatures: tom (no signingKey) is not trusted.
	h.commit("alice@example.net", aliceKey, map[string]string{"metalsync.yaml": site + "  git: {requireSignatures: true}\n"})
	mid := run(t, repoDir, "git", "rev-parse", "HEAD")
	last := h.commit("tom@example.net", "", map[string]string{"nodes/n2.yaml": node("n2", "fake://n2", "off")})
	rep, err = Review(context.Background(), repo.Storer, plumbing.NewHash(mid), plumbing.NewHash(last), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Refused(); len(got) != 1 || got[0].Rule != "signature" {
		t.Errorf("refused %+v, want spec.power refused for want of a signature", got)
	}
}
