package gitreview

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"

	"metalsync.dev/metalsync/rights"
	"metalsync.dev/metalsync/schema"
)

// checkSignature verifies c's SSH signature against the signing keys of
// its author's member entries in inv (the revision before c). It returns
// why the author's e-mail cannot be trusted, or "": a member with a
// signingKey must sign with it, and when the site requires signatures
// every author must.
func checkSignature(c *object.Commit, inv *schema.Inventory) (Signature, string) {
	var keys []string
	for _, m := range rights.Members(inv, c.Author.Email) {
		if m.SigningKey != "" {
			keys = append(keys, m.SigningKey)
		}
	}
	required := inv != nil && inv.Site != nil && inv.Site.Spec.Git != nil && inv.Site.Spec.Git.RequireSignatures
	sig := Signature{Signed: c.PGPSignature != ""}
	switch {
	case len(keys) == 0 && !required:
		if sig.Signed {
			sig.Problem = "not verified: the author has no signingKey"
		}
		return sig, ""
	case len(keys) == 0:
		sig.Problem = "the site requires signed commits and " + c.Author.Email + " has no signingKey in owners/"
		return sig, sig.Problem
	case !sig.Signed:
		sig.Problem = "unsigned, but " + c.Author.Email + " has a signingKey"
		return sig, sig.Problem
	}
	payload, err := signedPayload(c)
	if err != nil {
		sig.Problem = err.Error()
		return sig, sig.Problem
	}
	fp, err := VerifySSH(payload, []byte(c.PGPSignature), keys)
	if err != nil {
		sig.Problem = err.Error()
		return sig, sig.Problem
	}
	sig.Verified, sig.Key = true, fp
	return sig, ""
}

// signedPayload is the commit object as git signed it: without its
// gpgsig header.
func signedPayload(c *object.Commit) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(o); err != nil {
		return nil, fmt.Errorf("encode commit %s: %w", c.Hash, err)
	}
	r, err := o.Reader()
	if err != nil {
		return nil, fmt.Errorf("encode commit %s: %w", c.Hash, err)
	}
	defer r.Close()
	return io.ReadAll(r)
}

// VerifySSH verifies an armored SSHSIG signature (git's gpg.format=ssh)
// of payload in the "git" namespace against authorized_keys-style public
// keys, and returns the SHA256 fingerprint of the key that verified it.
func VerifySSH(payload, armored []byte, authorized []string) (string, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(armored), []byte("-----BEGIN SSH SIGNATURE-----")) {
		return "", fmt.Errorf("signature is not an SSH signature (only gpg.format=ssh is supported)")
	}
	sig, err := sshsig.Unarmor(armored)
	if err != nil {
		return "", fmt.Errorf("parse SSH signature: %w", err)
	}
	var problems []string
	for _, k := range authorized {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			problems = append(problems, "signingKey is not an SSH public key")
			continue
		}
		if err := sshsig.Verify(bytes.NewReader(payload), sig, pub, sig.HashAlgorithm, SignatureNamespace); err != nil {
			problems = append(problems, ssh.FingerprintSHA256(pub)+": "+err.Error())
			continue
		}
		return ssh.FingerprintSHA256(pub), nil
	}
	return "", fmt.Errorf("signature by %s does not verify with the author's signingKey (%s)", ssh.FingerprintSHA256(sig.PublicKey), strings.Join(problems, "; "))
}
