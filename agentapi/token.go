package agentapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// tokenLabel separates agent tokens from any other use of the site key.
const tokenLabel = "metalsync-agent-token\x00"

// Token derives the bearer token of node's agent for one publication of
// its media (epoch). The key is the site's secret; the epoch is not
// secret and sits in status, so a restarted daemon derives the same token
// without storing it.
func Token(key []byte, node, epoch string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(tokenLabel))
	m.Write([]byte(node))
	m.Write([]byte{0})
	m.Write([]byte(epoch))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckToken reports whether got is node's token for epoch, comparing in
// constant time. An empty epoch never matches: a node without published
// media has no token.
func CheckToken(key []byte, node, epoch, got string) bool {
	if epoch == "" {
		return false
	}
	want := Token(key, node, epoch)
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
