package schema

import (
	"regexp"
	"strings"
	"testing"
)

// The patterns RefineJSONSchema writes use only what ECMA-262 and RE2
// share, so Go's regexp reads them as an editor does.
var (
	secretLabelRE = regexp.MustCompile(secretLabelPattern())
	secretKeyRE   = regexp.MustCompile(secretKeyPattern())
)

func TestSecretLabelPattern(t *testing.T) {
	tests := []struct {
		key  string
		want bool // the JSON Schema refuses a non-empty value
	}{
		{"password", true},
		{"Password", true},
		{"PASSWORD", true},
		{"api-token", true},
		{"X_API_TOKEN", true},
		{"API_KEY", true},
		{"api.keys", true},
		{"example.net/secret", true},
		{"db-password-2", true},
		{"vault.example.net/tokens", true},
		// Reference words anywhere make the key a reference.
		{"secret-name", false},
		{"token.file", false},
		{"ID/password", false},
		{"vault.example.net/secretPath", false},
		{"url-token", false},
		// Words that merely contain a credential word.
		{"tokenizer", false},
		{"passwords2", false},
		{"site", false},
		{"apikeyring", false},
		// The loader refuses these, but their shape is left to it.
		{"example.net/ipmiPassword", false},
		{"pässword-token", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := secretLabelRE.MatchString(tt.key); got != tt.want {
				t.Errorf("pattern matches %q: %v, want %v", tt.key, got, tt.want)
			}
			if tt.want && !labelNamesSecret(tt.key) {
				t.Errorf("the loader accepts %q, which the pattern refuses", tt.key)
			}
		})
	}
}

func TestSecretKeyPattern(t *testing.T) {
	for _, key := range []string{"password", "Password", "PASSWD", "Private_Key", "apikey", "secret", "pass", "passwords", "mypassword", "api-key", "token"} {
		if got, want := secretKeyRE.MatchString(key), secretKeys[strings.ToLower(key)]; got != want {
			t.Errorf("pattern matches %q: %v, the loader refuses it: %v", key, got, want)
		}
	}
}

func TestNotWordPattern(t *testing.T) {
	re := regexp.MustCompile("^" + notWordPattern([]string{"id", "ref", "reference"}, lowerDigits) + "$")
	for w, want := range map[string]bool{
		"id": false, "ref": false, "reference": false, "": false, "ID": false, "a-b": false,
		"i": true, "ids": true, "re": true, "refer": true, "references": true, "x": true, "2": true, "idref": true,
	} {
		if got := re.MatchString(w); got != want {
			t.Errorf("%q: %v, want %v", w, got, want)
		}
	}
}

// FuzzSecretLabelPattern: the JSON Schema never refuses a label key the
// loader accepts, nor a credential key it does not refuse.
func FuzzSecretLabelPattern(f *testing.F) {
	for _, s := range []string{"password", "api-token", "secret-name", "ID/password", "x.API_KEY", "tokenizer", "Api.Key", "a/b/Secret-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if secretLabelRE.MatchString(key) && !labelNamesSecret(key) {
			t.Errorf("the pattern refuses label %q, the loader does not", key)
		}
		if secretKeyRE.MatchString(key) && !secretKeys[strings.ToLower(key)] {
			t.Errorf("the pattern refuses key %q, the loader does not", key)
		}
	})
}
