package credentials

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/schema"
)

const testPassword = "Sup3r-S3cret!"

func encrypt(t *testing.T, r age.Recipient, plain string, armored bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var out io.WriteCloser = nopCloser{&buf}
	var aw io.WriteCloser
	if armored {
		aw = armor.NewWriter(&buf)
		out = aw
	}
	w, err := age.Encrypt(out, r)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if aw != nil {
		if err := aw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// site is a site with one set of every kind and two BMC networks.
func testSite(dir string) *schema.Site {
	return &schema.Site{Spec: schema.SiteSpec{
		Credentials: &schema.CredentialSettings{Directory: dir, Sets: map[string]schema.CredentialSet{
			"env":         {Env: &schema.EnvCredentials{Username: "U", Password: "P"}},
			"env-unset":   {Env: &schema.EnvCredentials{Username: "U", Password: "NOPE"}},
			"agent-key":   {Env: &schema.EnvCredentials{Username: "U", Password: "METALSYNC_AGENT_KEY"}},
			"webhook":     {Env: &schema.EnvCredentials{Username: "U", Password: "WEBHOOK_SECRET"}},
			"file":        {File: "creds.yaml"},
			"file-nested": {File: "rack2/creds.yaml"},
			"file-none":   {File: "none.yaml"},
			"file-bad":    {File: "bad.yaml"},
			"file-nopass": {File: "nopass.yaml"},
			"file-link":   {File: "link.yaml"},
			"file-fifo":   {File: "fifo.yaml"},
			"file-up":     {File: "../creds.yaml"},
			"age":         {AgeFile: "secrets/r1.age"},
			"age-armored": {AgeFile: "secrets/r1.asc"},
			"age-other":   {AgeFile: "secrets/other.age"},
			"age-out":     {AgeFile: "../etc/x.age"},
			"platform":    {Env: &schema.EnvCredentials{Username: "U", Password: "P"}, Owners: []string{"platform"}},
		}},
		BMCNetworks: []schema.BMCNetwork{
			{CIDR: "10.10.0.0/24"},
			{CIDR: "127.0.0.0/8", AllowPlainHTTP: true},
		},
	}}
}

func testNode(owner, set, addr string) *schema.Node {
	n := &schema.Node{Metadata: schema.Meta{Name: "n1"}}
	n.Spec.Owner = owner
	n.Spec.BMC = schema.BMC{Address: addr, CredentialsRef: schema.CredentialsRef{Set: set}}
	return n
}

func TestResolve(t *testing.T) {
	repo := t.TempDir()
	credDir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	writeIn := func(dir, name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write := func(name string, b []byte) string { return writeIn(repo, name, b) }
	good := fmt.Sprintf("username: admin\npassword: %q\n", testPassword)
	idFile := write("key.txt", []byte(id.String()+"\n"))
	write("secrets/r1.age", encrypt(t, id.Recipient(), good, false))
	write("secrets/r1.asc", encrypt(t, id.Recipient(), good, true))
	write("secrets/other.age", encrypt(t, other.Recipient(), good, false))
	writeIn(credDir, "creds.yaml", []byte(good))
	writeIn(credDir, "rack2/creds.yaml", []byte(good))
	writeIn(credDir, "bad.yaml", []byte("username: admin\npassword: ["+testPassword+"\n"))
	writeIn(credDir, "nopass.yaml", []byte("username: admin\n"))
	outside := write("outside.yaml", []byte(good))
	if err := os.Symlink(outside, filepath.Join(credDir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(credDir, "fifo.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"U": "admin", "P": testPassword, IdentityEnv: idFile,
		"METALSYNC_AGENT_KEY": testPassword, "WEBHOOK_SECRET": testPassword}
	r := Resolver{RepoDir: repo, Getenv: func(k string) string { return env[k] }, Reserved: []string{"WEBHOOK_SECRET"}}
	site := testSite(credDir)
	const https = "redfish+https://10.10.0.5/redfish/v1/Systems/1"
	want := Credentials{Username: "admin", Password: testPassword}
	tests := []struct {
		name    string
		node    *schema.Node
		want    Credentials
		wantErr string
		is      error // the error wraps it
	}{
		{"env", testNode("a", "env", https), want, "", nil},
		{"env unset", testNode("a", "env-unset", https), Credentials{}, "NOPE not set", ErrMissing},
		{"env of the agent key", testNode("a", "agent-key", https), Credentials{}, "METALSYNC_AGENT_KEY holds a secret of the daemon's own", ErrRefused},
		{"env of the webhook secret", testNode("a", "webhook", https), Credentials{}, "WEBHOOK_SECRET holds a secret of the daemon's own", ErrRefused},
		{"file", testNode("a", "file", https), want, "", nil},
		{"file in a subdirectory", testNode("a", "file-nested", https), want, "", nil},
		{"file missing", testNode("a", "file-none", https), Credentials{}, "no such file", ErrMissing},
		{"file bad yaml", testNode("a", "file-bad", https), Credentials{}, "not a YAML mapping", nil},
		{"file no password", testNode("a", "file-nopass", https), Credentials{}, "both required", ErrMissing},
		{"file linked out of the directory", testNode("a", "file-link", https), Credentials{}, "not a regular file", ErrRefused},
		{"file is a fifo", testNode("a", "file-fifo", https), Credentials{}, "not a regular file", ErrRefused},
		{"file above the directory", testNode("a", "file-up", https), Credentials{}, "not a path inside", ErrRefused},
		{"age", testNode("a", "age", https), want, "", nil},
		{"age armored", testNode("a", "age-armored", https), want, "", nil},
		{"age wrong key", testNode("a", "age-other", https), Credentials{}, "decrypt", nil},
		{"age outside repo", testNode("a", "age-out", https), Credentials{}, "inside the repository", nil},
		{"set of its owner", testNode("platform", "platform", https), want, "", nil},
		{"set of another owner", testNode("tenant", "platform", https), Credentials{}, `credential set "platform" is not for owner tenant`, schema.ErrCredentialSet},
		{"unknown set", testNode("a", "nope", https), Credentials{}, `credential set "nope" is not declared`, schema.ErrCredentialSet},
		{"no set", testNode("a", "", https), Credentials{}, "names no set", schema.ErrCredentialSet},
		{"inline env", func() *schema.Node {
			n := testNode("a", "", https)
			n.Spec.BMC.CredentialsRef.Env = &schema.EnvCredentials{Username: "U", Password: "P"}
			return n
		}(), Credentials{}, "inline credential sources are not allowed", schema.ErrLegacyCredentials},
		{"inline file beside a set", func() *schema.Node {
			n := testNode("a", "env", https)
			n.Spec.BMC.CredentialsRef.File = outside
			return n
		}(), Credentials{}, "inline credential sources are not allowed", schema.ErrLegacyCredentials},
		{"bmc outside the networks", testNode("a", "env", "redfish+https://192.0.2.1"), Credentials{}, "in no network", schema.ErrBMCNetwork},
		{"bmc host name", testNode("a", "env", "redfish+https://attacker.example"), Credentials{}, "in no network", schema.ErrBMCNetwork},
		{"plain http refused", testNode("a", "env", "redfish+http://10.10.0.5"), Credentials{}, "unencrypted", schema.ErrPlainHTTP},
		{"plain http allowed", testNode("a", "env", "redfish+http://127.0.0.1:8000"), want, "", nil},
		{"ipmi", testNode("a", "env", "ipmi://10.10.0.5:623"), want, "", nil},
		{"fake needs no network", testNode("a", "env", "fake://n1"), want, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(site, tt.node)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want.Username, got.Username); diff != "" {
					t.Errorf("username (-want +got):\n%s", diff)
				}
				if got.Password.Reveal() != tt.want.Password.Reveal() {
					t.Error("password differs")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Resolve = %v, want error containing %q", err, tt.wantErr)
			}
			if got != (Credentials{}) {
				t.Errorf("Resolve returned credentials with its error")
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("error reveals the testPassword: %v", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Resolve = %v, want an error wrapping %v", err, tt.is)
			}
		})
	}

	t.Run("no identity", func(t *testing.T) {
		r := Resolver{RepoDir: repo, Getenv: func(string) string { return "" }}
		_, err := r.Resolve(site, testNode("a", "age", https))
		if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), IdentityEnv) {
			t.Errorf("Resolve = %v, want missing %s", err, IdentityEnv)
		}
	})
	t.Run("no site", func(t *testing.T) {
		if _, err := r.Resolve(nil, testNode("a", "env", https)); !errors.Is(err, ErrRefused) {
			t.Errorf("Resolve without a site = %v, want refused", err)
		}
	})
	t.Run("testPassword does not print", func(t *testing.T) {
		c, _ := r.Resolve(site, testNode("a", "file", https))
		if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, testPassword) {
			t.Errorf("formatting credentials reveals the testPassword: %s", s)
		}
	})
}
