// Package credentials resolves a node's BMC credentials from the site's
// credential sets (metalsync.yaml): environment variables, YAML files
// under the site's credentials directory on the daemon's host, or
// age-encrypted YAML files in the inventory repository. It is the one
// place credentials are read for a node, so it is where the site's rules
// are enforced: the set must be one the node's owner may use, and the BMC
// must be in a network the site allows, over plain HTTP only where the
// site allows it. Errors name where the credentials were looked for,
// never what they contain.
package credentials

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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

// maxFileSize bounds a credentials file: a few lines of YAML.
const maxFileSize = 1 << 20

// ErrMissing marks credentials that are not where the set points.
var ErrMissing = errors.New("credentials not found")

// ErrRefused marks credentials the site's rules do not let a node have,
// or a set naming one of the daemon's own secrets.
var ErrRefused = errors.New("credentials refused")

// Credentials are a BMC username and password.
type Credentials struct {
	Username string
	Password secret.Value
}

// Resolver resolves nodes' credentials. The zero value reads nothing
// from the environment.
type Resolver struct {
	// RepoDir is the root of the inventory repository; ageFile paths are
	// relative to it.
	RepoDir string
	// Getenv reads the environment (os.Getenv outside tests).
	Getenv func(string) string
	// ReadFile reads ageFile sets and the age identity (os.ReadFile when
	// nil).
	ReadFile func(name string) ([]byte, error)
	// Reserved names environment variables that hold the daemon's own
	// secrets (the webhook secret, the Git password); no set may read
	// them, nor any METALSYNC_* variable.
	Reserved []string
}

// Resolve returns the credentials of node's BMC: those of the site's set
// it names, if the site lets its owner use the set and lets its BMC
// receive them (schema.SiteSpec.AuthorizeBMC). Every caller that sends
// credentials to a BMC gets them here, so none can skip the check.
func (r Resolver) Resolve(site *schema.Site, node *schema.Node) (Credentials, error) {
	if site == nil || node == nil {
		return Credentials{}, fmt.Errorf("no site or node to resolve credentials for: %w", ErrRefused)
	}
	set, err := site.Spec.AuthorizeBMC(node)
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	name := node.Spec.BMC.CredentialsRef.Set
	switch {
	case set.Env != nil:
		return r.env(name, set.Env)
	case set.File != "":
		dir := ""
		if site.Spec.Credentials != nil {
			dir = site.Spec.Credentials.Directory
		}
		return r.file(name, dir, set.File)
	case set.AgeFile != "":
		return r.ageFile(name, set.AgeFile)
	}
	return Credentials{}, fmt.Errorf("credential set %s has no source: %w", name, ErrMissing)
}

// file reads a file set inside dir; links and .. cannot leave it.
func (r Resolver) file(set, dir, name string) (Credentials, error) {
	fail := func(err error) (Credentials, error) {
		return Credentials{}, fmt.Errorf("credential set %s: file %s: %w", set, name, err)
	}
	if dir == "" || !filepath.IsAbs(dir) {
		return fail(fmt.Errorf("credentials.directory is not an absolute directory: %w", ErrRefused))
	}
	if !filepath.IsLocal(name) {
		return fail(fmt.Errorf("not a path inside %s: %w", dir, ErrRefused))
	}
	b, err := readInRoot(dir, name)
	if err != nil {
		return fail(err)
	}
	c, err := parse(b)
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// pathErr drops the path of a *PathError, which the caller names already,
// keeping the operation and cause.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

func (r Resolver) getenv(k string) string {
	if r.Getenv == nil {
		return ""
	}
	return r.Getenv(k)
}

// read reads the age identity on the daemon's host.
func (r Resolver) read(name string) ([]byte, error) {
	if r.ReadFile != nil {
		return r.ReadFile(name)
	}
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no such file", ErrMissing)
	}
	if err != nil {
		return nil, pathErr(err)
	}
	return b, nil
}

// readRepo reads a file of the repository; links cannot leave it.
func (r Resolver) readRepo(rel string) ([]byte, error) {
	if r.ReadFile != nil {
		return r.ReadFile(filepath.Join(r.RepoDir, rel))
	}
	return readInRoot(cmpOr(r.RepoDir, "."), rel)
}

// readInRoot reads the regular file name below dir, refusing links out of
// dir, FIFOs (which would block) and devices, and files too large to hold
// credentials.
func readInRoot(dir, name string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, pathErr(err)
	}
	defer root.Close()
	st, err := root.Lstat(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no such file in %s", ErrMissing, dir)
	}
	if err != nil {
		return nil, pathErr(err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file: %w", ErrRefused)
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, pathErr(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, pathErr(err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return b, nil
}

func (r Resolver) env(set string, e *schema.EnvCredentials) (Credentials, error) {
	for _, v := range []string{e.Username, e.Password} {
		if strings.HasPrefix(v, schema.ReservedEnvPrefix) || slices.Contains(r.Reserved, v) {
			return Credentials{}, fmt.Errorf("credential set %s: env %s holds a secret of the daemon's own: %w", set, v, ErrRefused)
		}
	}
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
		return Credentials{}, fmt.Errorf("credential set %s: env %s not set: %w", set, strings.Join(missing, " and "), ErrMissing)
	}
	return Credentials{Username: user, Password: secret.Value(pass)}, nil
}

func (r Resolver) ageFile(set, rel string) (Credentials, error) {
	if filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		return Credentials{}, fmt.Errorf("credential set %s: ageFile %s: must be a path inside the repository", set, rel)
	}
	idPath := r.getenv(IdentityEnv)
	if idPath == "" {
		return Credentials{}, fmt.Errorf("credential set %s: ageFile %s: %s is not set (path of the age identity file): %w", set, rel, IdentityEnv, ErrMissing)
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
	data, err := r.readRepo(rel)
	if err != nil {
		return Credentials{}, fmt.Errorf("credential set %s: ageFile %s: %w", set, rel, err)
	}
	var in io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte(armor.Header)) {
		in = armor.NewReader(bytes.NewReader(bytes.TrimSpace(data)))
	}
	dec, err := age.Decrypt(in, ids...)
	if err != nil {
		return Credentials{}, fmt.Errorf("credential set %s: ageFile %s: decrypt: %w", set, rel, err)
	}
	plain, err := io.ReadAll(io.LimitReader(dec, 1<<20))
	if err != nil {
		return Credentials{}, fmt.Errorf("credential set %s: ageFile %s: decrypt: %w", set, rel, err)
	}
	c, err := parse(plain)
	if err != nil {
		return Credentials{}, fmt.Errorf("credential set %s: ageFile %s: %w", set, rel, err)
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

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
