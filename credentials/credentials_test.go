package credentials

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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

func TestResolve(t *testing.T) {
	repo := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	write := func(name string, b []byte) string {
		p := filepath.Join(repo, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := fmt.Sprintf("username: admin\npassword: %q\n", testPassword)
	idFile := write("key.txt", []byte(id.String()+"\n"))
	write("secrets/r1.age", encrypt(t, id.Recipient(), good, false))
	write("secrets/r1.asc", encrypt(t, id.Recipient(), good, true))
	write("secrets/other.age", encrypt(t, other.Recipient(), good, false))
	plainFile := write("creds.yaml", []byte(good))
	badYAML := write("bad.yaml", []byte("username: admin\npassword: ["+testPassword+"\n"))
	noPass := write("nopass.yaml", []byte("username: admin\n"))

	env := map[string]string{"U": "admin", "P": testPassword, IdentityEnv: idFile}
	r := Resolver{RepoDir: repo, Getenv: func(k string) string { return env[k] }}
	want := Credentials{Username: "admin", Password: testPassword}
	tests := []struct {
		name    string
		ref     schema.CredentialsRef
		want    Credentials
		wantErr string
		missing bool
	}{
		{"env", schema.CredentialsRef{Env: &schema.EnvCredentials{Username: "U", Password: "P"}}, want, "", false},
		{"env unset", schema.CredentialsRef{Env: &schema.EnvCredentials{Username: "U", Password: "NOPE"}}, Credentials{}, "NOPE not set", true},
		{"file", schema.CredentialsRef{File: plainFile}, want, "", false},
		{"file missing", schema.CredentialsRef{File: filepath.Join(repo, "none.yaml")}, Credentials{}, "no such file", true},
		{"file bad yaml", schema.CredentialsRef{File: badYAML}, Credentials{}, "not a YAML mapping", false},
		{"file no password", schema.CredentialsRef{File: noPass}, Credentials{}, "both required", true},
		{"age", schema.CredentialsRef{AgeFile: "secrets/r1.age"}, want, "", false},
		{"age armored", schema.CredentialsRef{AgeFile: "secrets/r1.asc"}, want, "", false},
		{"age wrong key", schema.CredentialsRef{AgeFile: "secrets/other.age"}, Credentials{}, "decrypt", false},
		{"age outside repo", schema.CredentialsRef{AgeFile: "../etc/x.age"}, Credentials{}, "inside the repository", false},
		{"none", schema.CredentialsRef{}, Credentials{}, "exactly one", false},
		{"two", schema.CredentialsRef{File: plainFile, AgeFile: "secrets/r1.age"}, Credentials{}, "exactly one", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(tt.ref)
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
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("error reveals the testPassword: %v", err)
			}
			if errors.Is(err, ErrMissing) != tt.missing {
				t.Errorf("errors.Is(err, ErrMissing) = %v, want %v", !tt.missing, tt.missing)
			}
		})
	}

	t.Run("no identity", func(t *testing.T) {
		r := Resolver{RepoDir: repo, Getenv: func(string) string { return "" }}
		_, err := r.Resolve(schema.CredentialsRef{AgeFile: "secrets/r1.age"})
		if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), IdentityEnv) {
			t.Errorf("Resolve = %v, want missing %s", err, IdentityEnv)
		}
	})
	t.Run("testPassword does not print", func(t *testing.T) {
		c, _ := r.Resolve(schema.CredentialsRef{File: plainFile})
		if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, testPassword) {
			t.Errorf("formatting credentials reveals the testPassword: %s", s)
		}
	})
}
