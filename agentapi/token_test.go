package agentapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	// The reference value is computed independently of Token's code.
	m := hmac.New(sha256.New, key)
	m.Write([]byte("metalsync-agent-token\x00r1-n07\x00e1"))
	ref := base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	if got := Token(key, "r1-n07", "e1"); got != ref {
		t.Fatalf("Token = %q, want %q", got, ref)
	}
	if strings.ContainsAny(ref, "=+/") {
		t.Fatalf("token %q is not unpadded base64url", ref)
	}

	tests := []struct {
		name             string
		key              []byte
		node, epoch, got string
		want             bool
	}{
		{"match", key, "r1-n07", "e1", ref, true},
		{"other epoch", key, "r1-n07", "e2", ref, false},
		{"other node", key, "r1-n08", "e1", ref, false},
		// "r1-n0" + "7\x00e1" must not collide with "r1-n07" + "e1".
		{"shifted boundary", key, "r1-n0", "7\x00e1", ref, false},
		{"other key", []byte(strings.Repeat("x", 32)), "r1-n07", "e1", ref, false},
		{"empty token", key, "r1-n07", "e1", "", false},
		{"prefix", key, "r1-n07", "e1", ref[:10], false},
		{"no epoch", key, "r1-n07", "", Token(key, "r1-n07", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CheckToken(tt.key, tt.node, tt.epoch, tt.got); got != tt.want {
				t.Errorf("CheckToken = %v, want %v", got, tt.want)
			}
		})
	}
}
