package gitsource_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"metalsync.dev/metalsync/repo/gitsource"
)

// sshServer is a throwaway SSH server on loopback: it completes handshakes
// (any client key) and reports each one, then refuses every command.
func sshServer(t *testing.T, hostKey ssh.Signer) (addr string, handshakes <-chan struct{}) {
	t.Helper()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil },
	}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	hs := make(chan struct{}, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				hs <- struct{}{}
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					ch, reqs, err := nc.Accept()
					if err != nil {
						return
					}
					for r := range reqs {
						_ = r.Reply(r.Type == "exec", nil)
						if r.Type == "exec" {
							_, _ = ch.Stderr().Write([]byte("no git here\n"))
							_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{1}))
							ch.Close()
						}
					}
				}
			}()
		}
	}()
	return l.Addr().String(), hs
}

func newSigner(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, pem.EncodeToMemory(block)
}

func TestSSHHostKeyChecked(t *testing.T) {
	dir := t.TempDir()
	realHost, _ := newSigner(t)
	otherHost, _ := newSigner(t)
	_, clientPEM := newSigner(t)
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, clientPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, handshakes := sshServer(t, realHost)
	_, port, _ := net.SplitHostPort(addr)

	tests := []struct {
		name      string
		known     ssh.PublicKey
		wantShake bool
		wantErr   string
	}{
		{"wrong host key refused", otherHost.PublicKey(), false, "key mismatch"},
		{"right host key accepted", realHost.PublicKey(), true, "no git here"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, tc.known) + "\n"
			if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
				t.Fatal(err)
			}
			src, err := gitsource.New(gitsource.Config{
				URL:  "ssh://git@127.0.0.1:" + port + "/inv.git",
				Auth: gitsource.Auth{SSHKeyFile: keyFile, KnownHostsFile: kh},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = src.Fetch(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("fetch error = %v, want one containing %q", err, tc.wantErr)
			}
			var keyErr *knownhosts.KeyError
			if gotKeyErr := errors.As(err, &keyErr); gotKeyErr == tc.wantShake {
				t.Errorf("host key error = %v, want %v", gotKeyErr, !tc.wantShake)
			}
			select {
			case <-handshakes:
				if !tc.wantShake {
					t.Error("handshake completed with an unknown host key")
				}
			default:
				if tc.wantShake {
					t.Error("no handshake with the known host key")
				}
			}
		})
	}
}

func TestSSHUnknownHostRefusedUpFront(t *testing.T) {
	dir := t.TempDir()
	host, _ := newSigner(t)
	_, clientPEM := newSigner(t)
	keyFile := filepath.Join(dir, "id")
	kh := filepath.Join(dir, "known_hosts")
	_ = os.WriteFile(keyFile, clientPEM, 0o600)
	_ = os.WriteFile(kh, []byte(knownhosts.Line([]string{"other.example.com"}, host.PublicKey())+"\n"), 0o600)
	_, err := gitsource.New(gitsource.Config{
		URL:  "ssh://git@git.example.com/inv.git",
		Auth: gitsource.Auth{SSHKeyFile: keyFile, KnownHostsFile: kh},
	})
	if err == nil || !strings.Contains(err.Error(), "no key for git.example.com:22") {
		t.Fatalf("New() = %v, want a missing host key error", err)
	}
}
