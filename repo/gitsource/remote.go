package gitsource

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"metalsync.dev/metalsync/credentials/secret"
)

// Auth holds the credentials for the remote. Which fields apply depends on
// the URL's scheme; setting fields that do not apply is an error, so that a
// typo never silently sends a repository unauthenticated.
type Auth struct {
	// Username and Password are HTTP basic credentials (for a token, the
	// forge's token user name, e.g. "x-access-token" or "oauth2").
	Username string
	Password secret.Value

	// SSHKeyFile is the private key for ssh:// and scp-like (git@host:path)
	// URLs. There is no ssh-agent fallback: without a key file an SSH remote
	// is refused.
	SSHKeyFile       string
	SSHKeyPassphrase secret.Value
	// KnownHostsFile lists the accepted host keys (OpenSSH known_hosts
	// format). Required for SSH; a host whose key is not in it is refused.
	KnownHostsFile string

	// CAFile holds PEM certificates trusted for https, in addition to the
	// system's (a forge behind an internal CA).
	CAFile string
}

// remote is a parsed remote: where it is, how to talk to it, and how to name
// it in errors.
type remote struct {
	ep       *transport.Endpoint
	auth     transport.AuthMethod
	name     string   // redacted URL, safe for logs and errors
	secrets  []string // strings to scrub from any error text
	inProc   bool     // file:// served by go-git in this process (no git binary)
	gitFound bool     // file:// may use the git binary
}

// parseRemote validates rawURL and builds its transport and credentials.
func parseRemote(rawURL string, a Auth) (*remote, error) {
	if rawURL == "" {
		return nil, errors.New("remote URL is empty")
	}
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", redactURL(rawURL), err)
	}
	r := &remote{ep: ep, name: redactURL(rawURL)}
	if ep.Password != "" {
		r.secrets = append(r.secrets, ep.Password, url.QueryEscape(ep.Password), url.PathEscape(ep.Password))
	}
	if a.Password != "" {
		r.secrets = append(r.secrets, a.Password.Reveal())
	}
	for _, sec := range r.secrets {
		if sec != "" {
			r.name = strings.ReplaceAll(r.name, sec, "[redacted]")
		}
	}
	fail := func(format string, args ...any) (*remote, error) {
		return nil, fmt.Errorf("remote %s: "+format, append([]any{r.name}, args...)...)
	}
	sshSet := a.SSHKeyFile != "" || a.KnownHostsFile != "" || a.SSHKeyPassphrase != ""
	if a.CAFile != "" && ep.Protocol != "https" {
		return fail("a CA file is only used with https")
	}
	httpSet := a.Username != "" || a.Password != ""

	switch ep.Protocol {
	case "https", "http":
		if sshSet {
			return fail("SSH key settings given for an %s URL", ep.Protocol)
		}
		if a.CAFile != "" {
			if ep.Protocol != "https" {
				return fail("a CA file is only used with https")
			}
			pem, err := os.ReadFile(a.CAFile)
			if err != nil {
				return fail("CA file: %w", err)
			}
			ep.CaBundle = pem
		}
		switch {
		case httpSet:
			r.auth = &githttp.BasicAuth{Username: a.Username, Password: a.Password.Reveal()}
		case ep.User != "" || ep.Password != "":
			r.auth = &githttp.BasicAuth{Username: ep.User, Password: ep.Password}
		}
	case "ssh":
		if httpSet {
			return fail("username/password given for an SSH URL; use a key file")
		}
		if a.SSHKeyFile == "" {
			return fail("SSH needs a private key file (there is no ssh-agent fallback)")
		}
		if a.KnownHostsFile == "" {
			return fail("SSH needs a known_hosts file to check the server's host key")
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, a.SSHKeyPassphrase.Reveal())
		if err != nil {
			return fail("ssh key %s: %w", a.SSHKeyFile, scrub(err, []string{a.SSHKeyPassphrase.Reveal()}))
		}
		cb, algos, err := HostKeyCheck(a.KnownHostsFile, hostPort(ep))
		if err != nil {
			return fail("%w", err)
		}
		keys.HostKeyCallback = cb
		keys.HostKeyAlgorithms = algos
		r.auth = keys
	case "git":
		if sshSet || httpSet {
			return fail("git:// has no authentication; credentials given")
		}
	case "file":
		if sshSet || httpSet {
			return fail("file:// has no authentication; credentials given")
		}
		// The git binary takes git's own ref locks, so a push from here and a
		// person's `git push` to the same directory exclude each other. The
		// in-process server does not (its locks are not git's), so it is
		// only used to read when git is missing.
		if _, err := exec.LookPath("git-upload-pack"); err == nil {
			r.gitFound = true
		} else if _, err := exec.LookPath("git"); err == nil {
			r.gitFound = true
		} else {
			r.inProc = true
		}
	default:
		return fail("unsupported scheme %q (want https, ssh, git or file)", ep.Protocol)
	}
	return r, nil
}

// HostKeyCheck returns an SSH host key callback that accepts only keys listed
// for hostport in the known_hosts file, and the host key algorithms to offer
// (those of the listed keys, so that a server with several key types is asked
// for one we can check). A missing file or a host without an entry is an
// error here, not at connect time.
func HostKeyCheck(knownHostsFile, hostport string) (ssh.HostKeyCallback, []string, error) {
	if _, err := os.Stat(knownHostsFile); err != nil {
		return nil, nil, fmt.Errorf("known_hosts: %w", err)
	}
	cb, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts %s: %w", knownHostsFile, err)
	}
	db, err := gitssh.NewKnownHostsDb(knownHostsFile)
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts %s: %w", knownHostsFile, err)
	}
	algos := db.HostKeyAlgorithms(hostport)
	if len(algos) == 0 {
		return nil, nil, fmt.Errorf("known_hosts %s: no key for %s", knownHostsFile, hostport)
	}
	return cb, algos, nil
}

func hostPort(ep *transport.Endpoint) string {
	port := ep.Port
	if port == 0 {
		port = 22
	}
	h := ep.Host
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		h = "[" + h + "]"
	}
	return fmt.Sprintf("%s:%d", h, port)
}

// transport picks the transport for this remote without touching go-git's
// global protocol table.
func (r *remote) transport(forPush bool) (transport.Transport, error) {
	if r.inProc {
		if forPush {
			return nil, errors.New("pushing to a file:// remote needs the git binary")
		}
		return server.DefaultServer, nil
	}
	return client.NewClient(r.ep)
}

// redactURL drops any password, query and fragment from a URL for use in
// logs and errors. scp-like addresses (git@host:path) and paths cannot
// carry a password and are returned as they are.
func redactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL]" // do not echo what may hold a secret
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "redacted")
	}
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// redactedError keeps errors.Is working through the cause while hiding its
// text (which may contain credentials) behind a scrubbed copy. It has no
// Unwrap on purpose: unwrapping would hand out the unscrubbed text.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string        { return e.msg }
func (e *redactedError) Is(target error) bool { return errors.Is(e.cause, target) }

// scrub returns err with every secret replaced by [redacted].
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, cause: err}
}

// wrap names the remote and the operation, scrubbing credentials.
func (r *remote) wrap(op string, err error) error {
	return fmt.Errorf("remote %s: %s: %w", r.name, op, scrub(err, r.secrets))
}
