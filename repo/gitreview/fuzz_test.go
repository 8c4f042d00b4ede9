package gitreview

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// testKey is a fixed ed25519 key, so seeds are the same on every run.
func testKey(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

func sign(t testing.TB, signer ssh.Signer, payload []byte, namespace string) []byte {
	t.Helper()
	sig, err := sshsig.Sign(bytes.NewReader(payload), signer, sshsig.HashSHA512, namespace)
	if err != nil {
		t.Fatal(err)
	}
	return sshsig.Armor(sig)
}

func TestVerifySSH(t *testing.T) {
	signer, pub := testKey(t)
	payload := []byte("tree 0000\nauthor a <a@example.net> 0 +0000\n\nmsg\n")
	tests := []struct {
		name    string
		payload []byte
		sig     []byte
		keys    []string
		wantErr string
	}{
		{"good", payload, sign(t, signer, payload, "git"), []string{pub}, ""},
		{"other payload", []byte("tampered"), sign(t, signer, payload, "git"), []string{pub}, "does not verify"},
		{"other namespace", payload, sign(t, signer, payload, "file"), []string{pub}, "does not verify"},
		{"not a key", payload, sign(t, signer, payload, "git"), []string{"ssh-ed25519 notbase64"}, "not an SSH public key"},
		{"pgp", payload, []byte("-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"), []string{pub}, "only gpg.format=ssh"},
		{"garbage", payload, []byte("-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"), []string{pub}, "parse SSH signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifySSH(tt.payload, tt.sig, tt.keys)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("VerifySSH: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("VerifySSH error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzVerifySSH: signatures come from whoever pushes; parsing one never
// panics, and only the real signature verifies.
func FuzzVerifySSH(f *testing.F) {
	signer, pub := testKey(f)
	payload := []byte("commit payload\n")
	good := sign(f, signer, payload, "git")
	f.Add(payload, good)
	f.Add(payload, []byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, p, sig []byte) {
		// Any armoring of the real signature may verify; nothing verifies
		// a payload that was never signed.
		if _, err := VerifySSH(p, sig, []string{pub}); err == nil && !bytes.Equal(p, payload) {
			t.Fatalf("signature verified for a payload that was never signed: %q", p)
		}
	})
}
