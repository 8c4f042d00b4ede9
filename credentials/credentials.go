// Package credentials resolves a node's credentialsRef into a username
// and a password: from environment variables, from a YAML file on the
// daemon's host, or from an age-encrypted YAML file in the inventory
// repository. Errors name where the credentials were looked for, never
// what they contain.
package credentials

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"sigs.k8s.io/yaml"

	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/schema"
)

// IdentityEnv names the environment variable holding the path of the age
// identity file that decrypts ageFile credentials.
const IdentityEnv = "METALSYNC_AGE_IDENTITY"

// ErrMissing marks credentials that are not where the reference points.
var ErrMissing = errors.New("credentials not found")

// Credentials are a BMC username and password.
type Credentials struct {
	Username string
	Password secret.Value
}

// Resolver resolves credential references.
type Resolver struct {
	// RepoDir is the root of the inventory repository; ageFile paths are
	// relative to it.
	RepoDir string
	// Getenv reads the environment (os.Getenv outside tests).
	Getenv func(string) string
	// ReadFile reads a file (os.ReadFile when nil).
	ReadFile func(name string) ([]byte, error)
}

// Resolve returns the credentials ref points at.
func (r Resolver) Resolve(ref schema.CredentialsRef) (Credentials, error) {
	set := 0
	for _, ok := range []bool{ref.Env != nil, ref.File != "", ref.AgeFile != ""} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return Credentials{}, fmt.Errorf("credentialsRef: want exactly one of env, file, ageFile, have %d", set)
	}
	switch {
	case ref.Env != nil:
		return r.env(ref.Env)
	case ref.File != "":
		b, err := r.read(ref.File)
		if err != nil {
			return Credentials{}, fmt.Errorf("credentials file %s: %w", ref.File, err)
		}
		c, err := parse(b)
		if err != nil {
			return Credentials{}, fmt.Errorf("credentials file %s: %w", ref.File, err)
		}
		return c, nil
	default:
		return r.ageFile(ref.AgeFile)
	}
}

func (r Resolver) getenv(k string) string {
	if r.Getenv == nil {
		return ""
	}
	return r.Getenv(k)
}

func (r Resolver) read(name string) ([]byte, error) {
	if r.ReadFile != nil {
		return r.ReadFile(name)
	}
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no such file", ErrMissing)
	}
	if err != nil {
		// The path is already named by the caller; the *PathError adds
		// only the operation and cause.
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: %w", pe.Op, pe.Err)
		}
		return nil, err
	}
	return b, nil
}

func (r Resolver) env(e *schema.EnvCredentials) (Credentials, error) {
	user := r.getenv(e.Username)
	pass := r.getenv(e.Password)
	var missing []string
	if user == "" {
		missing = append(missing, e.Username)
	}
	if pass == "" {
		missing = append(missing, e.Password)
	}
	if len(missing) > 0 {
		return Credentials{}, fmt.Errorf("credentials env: %s not set: %w", strings.Join(missing, " and "), ErrMissing)
	}
	return Credentials{Username: user, Password: secret.Value(pass)}, nil
}

func (r Resolver) ageFile(rel string) (Credentials, error) {
	if filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		return Credentials{}, fmt.Errorf("credentials ageFile %s: must be a path inside the repository", rel)
	}
	idPath := r.getenv(IdentityEnv)
	if idPath == "" {
		return Credentials{}, fmt.Errorf("credentials ageFile %s: %s is not set (path of the age identity file): %w", rel, IdentityEnv, ErrMissing)
	}
	idText, err := r.read(idPath)
	if err != nil {
		return Credentials{}, fmt.Errorf("age identity %s: %w", idPath, err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(idText))
	if err != nil {
		// Parse errors may quote the key line: say only that it failed.
		return Credentials{}, fmt.Errorf("age identity %s: not a valid age identity file", idPath)
	}
	data, err := r.read(filepath.Join(r.RepoDir, rel))
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials ageFile %s: %w", rel, err)
	}
	var in io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte(armor.Header)) {
		in = armor.NewReader(bytes.NewReader(bytes.TrimSpace(data)))
	}
	dec, err := age.Decrypt(in, ids...)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials ageFile %s: decrypt: %w", rel, err)
	}
	plain, err := io.ReadAll(io.LimitReader(dec, 1<<20))
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials ageFile %s: decrypt: %w", rel, err)
	}
	c, err := parse(plain)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials ageFile %s: %w", rel, err)
	}
	return c, nil
}

// parse reads `username: ...` and `password: ...`. Its errors never quote
// the input: a YAML error message can contain the password.
func parse(b []byte) (Credentials, error) {
	var f struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return Credentials{}, errors.New("not a YAML mapping of string username and password (quote values YAML reads as numbers or booleans)")
	}
	if f.Username == "" || f.Password == "" {
		return Credentials{}, fmt.Errorf("username and password are both required: %w", ErrMissing)
	}
	return Credentials{Username: f.Username, Password: secret.Value(f.Password)}, nil
}
