package schema

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// The JSON Schema editors use (`metalsync schema --format jsonschema`) is
// generated from the embedded CUE. The loader refuses more than the CUE
// says: some rules are Go code so that their diagnostics can say exactly
// what to write instead. RefineJSONSchema adds to the generated schema the
// rules JSON Schema can express, so an editor flags those files too. Where
// a rule is only partly expressible, the JSON Schema says less than the
// loader, never more: it must not flag a file the loader accepts.

// legacyCredentialFields are the inline credential sources of
// #CredentialsRef. The CUE keeps them only so that validation can quote
// them in its migration hint (legacyHint).
var legacyCredentialFields = []string{"env", "file", "ageFile"}

// urlUserinfo matches a URL whose authority carries user information:
// urlCredentials refuses every one in the schemes these fields take.
const urlUserinfo = `^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@`

// LabelsDef is the definition RefineJSONSchema adds for labels and
// annotations.
const LabelsDef = "Labels"

// RefineJSONSchema adds the loader's Go rules to defs, the definitions of
// a JSON Schema generated from the embedded CUE (named without their #,
// each kind's root under its kind). A definition absent from defs is
// skipped, as a schema of one kind holds only what it refers to; one that
// is present but shaped unlike the CUE is an error, so that a change of
// the CUE cannot silently drop a rule. It may add LabelsDef to defs.
func RefineJSONSchema(defs map[string]any) error {
	steps := []struct {
		def  string
		path []string
		edit func(map[string]any) error
	}{
		// A node names a credential set; the inline sources are refused
		// (checkCredentials), and so is naming none.
		{"CredentialsRef", nil, func(s map[string]any) error {
			props, err := child(s, "properties")
			if err != nil {
				return err
			}
			for _, f := range legacyCredentialFields {
				if _, ok := props[f]; !ok {
					return fmt.Errorf("no property %s", f)
				}
				delete(props, f)
			}
			s["required"] = []any{"set"}
			s["description"] = "A node names one of the site's credential sets (spec.credentials.sets of " + SiteFile + ")."
			return nil
		}},
		// A site's credential set has exactly one source, names none of
		// the daemon's own variables, and its files are relative paths
		// (checkCredentialSet).
		{"CredentialSet", nil, func(s map[string]any) error {
			s["oneOf"] = requiredOneOf(legacyCredentialFields)
			for _, v := range []string{"username", "password"} {
				p, err := child(s, "properties", "env", "properties", v)
				if err != nil {
					return err
				}
				addNot(p, map[string]any{"pattern": "^" + regexp.QuoteMeta(ReservedEnvPrefix)})
			}
			for _, f := range []string{"file", "ageFile"} {
				p, err := child(s, "properties", f)
				if err != nil {
					return err
				}
				// Absolute, with backslashes, or climbing out at once.
				addNot(p, map[string]any{"pattern": `^/|\\|^\.\.(/|$)`})
			}
			return nil
		}},
		// A BMC network is exactly one of cidr and host (checkSiteCredentials).
		{"BMCNetwork", nil, func(s map[string]any) error {
			s["oneOf"] = requiredOneOf([]string{"cidr", "host"})
			return nil
		}},
		// No user information in URLs (findLiteralSecrets).
		{"BMC", []string{"properties", "address"}, refuseUserinfo},
		{"Image", []string{"properties", "url"}, refuseUserinfo},
		{"FirmwareArgs", []string{"properties", "url"}, refuseUserinfo},
		{"Site", []string{"properties", "spec", "properties", "media", "properties", "baseURLs", "items"}, refuseUserinfo},
		{"Site", []string{"properties", "spec", "properties", "agent", "properties", "url"}, refuseUserinfo},
		// No literal credentials under credential-like keys: BIOS settings
		// are an open map, so a key like "password" would pass the CUE.
		{"BIOSArgs", []string{"properties", "settings", "anyOf", "0"}, func(s map[string]any) error {
			if s["type"] != "object" {
				return fmt.Errorf("the map form is not first")
			}
			s["propertyNames"] = map[string]any{"not": map[string]any{"pattern": secretKeyPattern()}}
			return nil
		}},
		// Labels and annotations whose key names a credential are empty.
		{"Envelope", []string{"properties", "metadata", "properties", "annotations"}, refuseSecretLabels(defs)},
		{"Node", []string{"properties", "spec", "properties", "labels"}, refuseSecretLabels(defs)},
	}
	for _, st := range steps {
		d, ok := defs[st.def].(map[string]any)
		if !ok {
			continue
		}
		s, err := child(d, st.path...)
		if err == nil {
			err = st.edit(s)
		}
		if err != nil {
			return fmt.Errorf("JSON Schema of #%s %s: %w", st.def, strings.Join(st.path, "."), err)
		}
	}
	return nil
}

// child walks from s along path (property names, and indexes of lists).
func child(s map[string]any, path ...string) (map[string]any, error) {
	var cur any = s
	for _, p := range path {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			i := slices.Index([]string{"0", "1", "2", "3"}, p)
			if i < 0 || i >= len(c) {
				return nil, fmt.Errorf("no item %s", p)
			}
			cur = c[i]
		}
		if cur == nil {
			return nil, fmt.Errorf("no %s", p)
		}
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object schema")
	}
	return m, nil
}

// addNot adds sub as a schema s must not match, beside any it has.
func addNot(s map[string]any, sub map[string]any) {
	if _, ok := s["not"]; !ok {
		s["not"] = sub
		return
	}
	all, _ := s["allOf"].([]any)
	s["allOf"] = append(all, map[string]any{"not": sub})
}

func requiredOneOf(fields []string) []any {
	var out []any
	for _, f := range fields {
		out = append(out, map[string]any{"required": []any{f}})
	}
	return out
}

func refuseUserinfo(s map[string]any) error {
	if s["type"] != "string" {
		return fmt.Errorf("not a string")
	}
	addNot(s, map[string]any{"pattern": urlUserinfo})
	return nil
}

// refuseSecretLabels makes s, the schema of labels or annotations, refer
// to defs' Labels: string values, empty under a key naming a credential.
// The pattern is long, so it is written once.
func refuseSecretLabels(defs map[string]any) func(map[string]any) error {
	return func(s map[string]any) error {
		if s["type"] != "object" {
			return fmt.Errorf("not an object")
		}
		labels := maps.Clone(s)
		labels["patternProperties"] = map[string]any{secretLabelPattern(): map[string]any{"maxLength": 0}}
		labels["description"] = "Copied into plans and status commits: a key naming a credential (password, token, secret, apikey) holds no value."
		defs[LabelsDef] = labels
		clear(s)
		s["$ref"] = "#/$defs/" + LabelsDef
		return nil
	}
}

// secretKeyPattern matches the keys of secretKeys in any case. JSON Schema
// patterns are ECMA-262, which has no (?i): each letter is a class.
func secretKeyPattern() string {
	var alts []string
	for _, k := range slices.Sorted(maps.Keys(secretKeys)) {
		var b strings.Builder
		for _, r := range k {
			if u, l := strings.ToUpper(string(r)), strings.ToLower(string(r)); u != l {
				b.WriteString("[" + u + l + "]")
			} else {
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		alts = append(alts, b.String())
	}
	return "^(" + strings.Join(alts, "|") + ")$"
}

// secretLabelPattern matches label and annotation keys labelNamesSecret
// reports, of one shape: ASCII words separated by ASCII punctuation, one of
// them a credential word written lower-case, Capitalized or UPPER-case, the
// others lower- or upper-case words that are no reference word. Keys of
// other shapes (camelCase, non-ASCII) are left to the loader, as the
// pattern language has no lookahead to exclude reference words there.
func secretLabelPattern() string {
	// ASCII characters other than letters and digits: splitWords splits
	// at them.
	const sep = `[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]`
	ref := slices.Sorted(maps.Keys(labelRefWords))
	other := "(" + notWordPattern(ref, lowerDigits) + "|" + notWordPattern(upperAll(ref), upperDigits) + ")"
	var secret []string
	for _, w := range slices.Sorted(maps.Keys(labelSecretWords)) {
		secret = append(secret, w, strings.ToUpper(w[:1])+w[1:], strings.ToUpper(w))
	}
	// "api key" in two words, as labelNamesSecret reads it.
	for _, k := range []string{"key", "keys"} {
		secret = append(secret, "api"+sep+"+"+k, "Api"+sep+"+"+strings.ToUpper(k[:1])+k[1:], "API"+sep+"+"+strings.ToUpper(k))
	}
	return "^" + sep + "*(" + other + sep + "+)*(" + strings.Join(secret, "|") + ")(" + sep + "+" + other + ")*" + sep + "*$"
}

// notWordPattern matches the non-empty words over alphabet that are none
// of words, through the trie of words: after a prefix, a character no
// word continues with may be followed by anything, and the prefix itself
// matches unless it is a word.
func notWordPattern(words []string, alphabet string) string {
	class := byteClass([]byte(alphabet))
	var rest func(prefix string) string
	rest = func(prefix string) string {
		var next []byte
		for _, w := range words {
			if len(w) > len(prefix) && strings.HasPrefix(w, prefix) && !slices.Contains(next, w[len(prefix)]) {
				next = append(next, w[len(prefix)])
			}
		}
		slices.Sort(next)
		var others []byte
		for i := range len(alphabet) {
			if !slices.Contains(next, alphabet[i]) {
				others = append(others, alphabet[i])
			}
		}
		arms := []string{byteClass(others) + class + "*"}
		for _, c := range next {
			p := prefix + string(c)
			if slices.Contains(words, p) {
				arms = append(arms, string(c)+rest(p))
			} else {
				arms = append(arms, string(c)+rest(p)+"?")
			}
		}
		return "(" + strings.Join(arms, "|") + ")"
	}
	return rest("")
}

// byteClass is a character class of bs (letters and digits), in ranges.
func byteClass(bs []byte) string {
	bs = slices.Clone(bs)
	slices.Sort(bs)
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < len(bs); {
		j := i
		for j+1 < len(bs) && bs[j+1] == bs[j]+1 {
			j++
		}
		b.WriteByte(bs[i])
		if j > i+1 {
			b.WriteByte('-')
		}
		if j > i {
			b.WriteByte(bs[j])
		}
		i = j + 1
	}
	b.WriteByte(']')
	return b.String()
}

const (
	lowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789"
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

func upperAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToUpper(s)
	}
	return out
}
