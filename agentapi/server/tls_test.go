package server

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, caKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca.PEM(), again.PEM()) {
		t.Fatal("a reloaded CA has another certificate")
	}

	// A certificate issued by the reloaded CA verifies against the first
	// one's PEM, as an agent booted before a daemon restart checks it.
	cert, err := again.ServerCert([]string{"192.0.2.10", "agent.example.net", "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM())
	leaf := cert.Leaf
	if leaf.NotBefore.After(time.Now().Add(-23 * time.Hour)) {
		t.Fatalf("NotBefore %v: not backdated a day", leaf.NotBefore)
	}
	for _, host := range []string{"192.0.2.10", "agent.example.net", "2001:db8::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, CurrentTime: time.Now().Add(-12 * time.Hour)}); err != nil {
			t.Errorf("verify for %s (clock 12h slow): %v", host, err)
		}
	}
	if len(leaf.IPAddresses) != 2 || len(leaf.DNSNames) != 1 {
		t.Fatalf("SANs: IPs %v, DNS %v", leaf.IPAddresses, leaf.DNSNames)
	}
	if _, err := again.ServerCert(nil); err == nil {
		t.Fatal("ServerCert without hosts: no error")
	}
}

func TestCARepair(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, dir string)
		wantErr string // "" when the CA loads
		samePEM bool
	}{
		{name: "certificate lost before it was written", break_: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, caCertFile)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "key lost", wantErr: "exists without", break_: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, caKeyFile)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "key readable by others", wantErr: "want 0600", break_: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, caKeyFile), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "certificate of another key", wantErr: "not a CA certificate of the key", break_: func(t *testing.T, dir string) {
			other := t.TempDir()
			if _, err := LoadOrCreateCA(other); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(other, caCertFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, caCertFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "garbage key", wantErr: "no PEM private key", break_: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, caKeyFile), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := LoadOrCreateCA(dir)
			if err != nil {
				t.Fatal(err)
			}
			tt.break_(t, dir)
			ca, err := LoadOrCreateCA(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Same key: certificates it issues verify with either PEM.
			cert, err := ca.ServerCert([]string{"127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(first.PEM())
			if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
				t.Fatalf("verify against the first certificate: %v", err)
			}
		})
	}
}
