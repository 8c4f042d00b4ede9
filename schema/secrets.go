package schema

import (
	"slices"
	"strconv"
	"strings"
	"unicode"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
)

// secretField is a literal credential found in a file. msg and hint say
// what it is without repeating its value.
type secretField struct {
	field     string
	pos       token.Pos
	msg, hint string
}

const (
	secretMsg  = "literal credential in the inventory"
	secretHint = "never write secrets into the repository; BMC credentials come from a credential set of metalsync.yaml (env variables, a file on the daemon's host, or an age-encrypted file), which a node names with credentialsRef: {set: NAME}"
	labelHint  = "labels and annotations are copied into plans and status commits; keep credentials out of them (BMC credentials come from credential sets of metalsync.yaml), or rename the key if its value is not a secret"
	urlHint    = "metalsync copies URLs into plans, status commits and boot media; serve the file without credentials (restrict the server by network) instead"
)

// secretKeys are field names that hold a credential anywhere in a resource
// (but in labels, annotations and credentialsRef.env, which name
// variables). "token" is not one: status has an inspection token, which
// is a one-time correlation id, not a credential.
var secretKeys = map[string]bool{
	"password": true, "passwd": true, "pass": true, "secret": true,
	"privatekey": true, "private_key": true, "apikey": true, "api_key": true,
}

// labelSecretWords are the words of a label or annotation key that name a
// credential; labelRefWords are words that make the key name a reference
// to one instead (secret-name, tokenFile, vault.example/secret-path).
var (
	labelSecretWords = map[string]bool{
		"password": true, "passwords": true, "passwd": true, "token": true, "tokens": true,
		"secret": true, "secrets": true, "apikey": true, "apikeys": true,
	}
	labelRefWords = map[string]bool{
		"ref": true, "reference": true, "path": true, "file": true, "name": true,
		"id": true, "arn": true, "url": true, "uri": true,
	}
)

// findLiteralSecrets finds literal credentials: keys named like
// credentials holding values, label and annotation keys naming one, and
// user information in any URL. It walks the YAML syntax tree, which is far
// cheaper than the CUE value. A top-level status field is not looked at:
// the daemon writes it.
func findLiteralSecrets(f *ast.File) []secretField {
	var out []secretField
	var walkExpr func(x ast.Expr, path []string)
	walkDecls := func(decls []ast.Decl, path []string) {
		for _, d := range decls {
			fd, ok := d.(*ast.Field)
			if !ok {
				continue
			}
			name, _, err := ast.LabelName(fd.Label)
			if err != nil {
				continue
			}
			p := append(slices.Clip(path), name)
			switch strings.Join(path, ".") {
			case "spec.labels", "metadata.annotations", "metadata.labels":
				if labelNamesSecret(name) && !isEmptyString(fd.Value) {
					out = append(out, secretField{field: strings.Join(p, "."), pos: fd.Label.Pos(), msg: secretMsg, hint: labelHint})
					continue
				}
			}
			switch strings.Join(p, ".") {
			case "spec.bmc.credentialsRef.env", "status":
				continue
			}
			if len(p) == 5 && p[4] == "env" && strings.Join(p[:3], ".") == "spec.credentials.sets" {
				continue // a site credential set names variables
			}
			_, isStruct := fd.Value.(*ast.StructLit)
			if secretKeys[strings.ToLower(name)] && !isStruct {
				switch strings.Join(path, ".") {
				case "spec.labels", "metadata.annotations", "metadata.labels":
				default:
					out = append(out, secretField{field: strings.Join(p, "."), pos: fd.Label.Pos(), msg: secretMsg, hint: secretHint})
					continue
				}
			}
			walkExpr(fd.Value, p)
		}
	}
	walkExpr = func(x ast.Expr, path []string) {
		switch x := x.(type) {
		case *ast.StructLit:
			walkDecls(x.Elts, path)
		case *ast.ListLit:
			for i, e := range x.Elts {
				walkExpr(e, append(slices.Clip(path), strconv.Itoa(i)))
			}
		case *ast.BasicLit:
			if x.Kind != token.STRING {
				return
			}
			s, err := literal.Unquote(x.Value)
			if err != nil {
				return
			}
			if what := urlCredentials(s); what != "" {
				out = append(out, secretField{field: strings.Join(path, "."), pos: x.Pos(), msg: secretMsg + ": a URL with " + what, hint: urlHint})
			}
		}
	}
	walkDecls(f.Decls, nil)
	return out
}

func isEmptyString(x ast.Expr) bool {
	lit, ok := x.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return false
	}
	s, err := literal.Unquote(lit.Value)
	return err == nil && s == ""
}

// labelNamesSecret reports whether a label or annotation key names a
// credential: one of its words (split at punctuation and camelCase) is
// password, token, secret or apikey (also "api key"), and none says the
// value is a reference to one.
func labelNamesSecret(key string) bool {
	words := splitWords(key)
	found := false
	for i, w := range words {
		if labelRefWords[w] {
			return false
		}
		if labelSecretWords[w] || w == "api" && i+1 < len(words) && (words[i+1] == "key" || words[i+1] == "keys") {
			found = true
		}
	}
	return found
}

// splitWords splits a key into lower-case words at every character that
// is not a letter or digit, and before an upper-case letter that follows a
// lower-case one.
func splitWords(s string) []string {
	var words []string
	var cur []rune
	prevLower := false
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	for _, r := range s {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			prevLower = false
			continue
		case unicode.IsUpper(r) && prevLower:
			flush()
		}
		cur = append(cur, r)
		prevLower = unicode.IsLower(r)
	}
	flush()
	return words
}

// urlCredentials looks at every URL in s (scheme://authority) and says
// what credentials one carries: a password (user:password@) in any
// scheme, a user name (user@) in any scheme but the ssh ones, where a user
// name (git@) is no secret: in an HTTP URL a user name alone is how tokens
// are written (https://TOKEN@host).
func urlCredentials(s string) string {
	for rest := s; ; {
		i := strings.Index(rest, "://")
		if i < 0 {
			return ""
		}
		j := i
		for j > 0 && isSchemeChar(rest[j-1]) {
			j--
		}
		scheme := strings.ToLower(rest[j:i])
		auth := rest[i+3:]
		if k := strings.IndexAny(auth, "/?#"); k >= 0 {
			auth = auth[:k]
		}
		rest = rest[i+3:]
		at := strings.LastIndexByte(auth, '@')
		if scheme == "" || !isLetter(scheme[0]) || at < 0 {
			continue
		}
		if strings.Contains(auth[:at], ":") {
			return "a password (user:password@)"
		}
		switch scheme {
		case "ssh", "git+ssh", "ssh+git", "sftp":
			continue
		}
		return "a user name (user@), which is how tokens are written in URLs"
	}
}

func isSchemeChar(c byte) bool {
	return isLetter(c) || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// LiteralSecret reports whether value, at the dotted field path of a
// resource (as in "spec.bmc.password"), is a literal credential by the
// rules the loader refuses: a key named like a credential, a label or
// annotation naming one, a URL with user information. A refused commit
// stays in Git, so whatever shows a file's history redacts such values.
func LiteralSecret(path, value string) bool {
	if value == "" {
		return false
	}
	p := strings.Split(path, ".")
	parent, last := strings.Join(p[:len(p)-1], "."), p[len(p)-1]
	switch {
	case p[0] == "status":
		return false // the daemon writes it
	case parent == "spec.labels" || parent == "metadata.annotations" || parent == "metadata.labels":
		return labelNamesSecret(last)
	case strings.HasPrefix(path, "spec.bmc.credentialsRef.env."),
		len(p) >= 5 && p[4] == "env" && strings.Join(p[:3], ".") == "spec.credentials.sets":
		return false // names variables
	}
	return secretKeys[strings.ToLower(last)] || urlCredentials(value) != ""
}
