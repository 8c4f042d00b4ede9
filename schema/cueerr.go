package schema

import (
	"fmt"
	"metalsync.dev/metalsync/internal/spelling"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
)

// mapCUEErrors turns CUE's errors for one file into diagnostics positioned
// in that file. CUE reports some errors against the schema (a missing
// field has no position in the data); those go to the nearest YAML key
// that exists.
func mapCUEErrors(err error, file string, data, def cue.Value, reported map[string]bool) Diagnostics {
	errs := cueerrors.Errors(err)
	// A failed disjunction comes as one "empty disjunction" error followed
	// by one conflict per alternative; fold them into one message.
	disj := map[string][]string{}
	var order []string
	var out Diagnostics
	add := func(pos token.Pos, field, code, msg, hint string) {
		d := Diagnostic{File: file, Field: field, Severity: SevError, Code: code, Message: msg, Hint: hint}
		if pos.IsValid() {
			d.Line, d.Col = pos.Line(), pos.Column()
		}
		out = append(out, d)
	}
	for _, e := range errs {
		if strings.Contains(fmt.Sprint(e.Msg()), "empty disjunction") {
			f := fieldOf(e)
			if _, ok := disj[f]; !ok {
				disj[f] = nil
				order = append(order, f)
			}
		}
	}
	for _, e := range errs {
		path := dataPath(e)
		field := strings.Join(path, ".")
		if reported[field] {
			continue
		}
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		switch {
		case strings.Contains(format, "empty disjunction"):
			continue
		case strings.HasPrefix(format, "conflicting values") && isStepName(path):
			// An interface with one step has no disjunction to fail.
			if !isDisj(disj, field) {
				disj[field] = nil
				order = append(order, field)
			}
			continue
		case strings.HasPrefix(format, "conflicting values") && isDisj(disj, field):
			got := valueText(data, path)
			for _, a := range args {
				s := fmt.Sprint(a)
				if s != got && !slices.Contains(disj[field], s) && !strings.HasPrefix(s, "(") {
					disj[field] = append(disj[field], s)
				}
			}
			continue
		case strings.Contains(format, "field not allowed"):
			name := path[len(path)-1]
			parent := path[:len(path)-1]
			allowed := allowedFields(def, parent)
			hint := ""
			if m := closest(name, allowed); m != "" {
				hint = fmt.Sprintf("did you mean %q?", m)
			} else if len(allowed) > 0 {
				hint = "allowed here: " + strings.Join(allowed, ", ")
			}
			add(posIn(e, file, data, path), field, CodeUnknownField, fmt.Sprintf("unknown field %q", name), hint)
		case strings.HasPrefix(format, "incomplete value") || strings.Contains(format, "required"):
			if valueExists(data, path) {
				add(posIn(e, file, data, path), field, CodeSchema, "value is not concrete: "+msg, "")
				continue
			}
			add(nearestPos(data, path), field, CodeSchema, fmt.Sprintf("missing required field %q", path[len(path)-1]), requiredHint(path))
		default:
			add(posIn(e, file, data, path), field, CodeSchema, friendly(data, path, msg), patternHint(path))
		}
	}
	for _, field := range order {
		if nestedDisj(order, field) {
			continue // the deeper alternative says more
		}
		path := strings.Split(field, ".")
		if field == "" {
			path = nil
		}
		if d, ok := stepDiag(data, path); ok {
			add(nearestPos(data, path), field, CodeTemplate, d.Message, d.Hint)
			continue
		}
		got := valueText(data, path)
		alts := literalAlternatives(disj[field], kindOf(data, path))
		msg := fmt.Sprintf("%s is not allowed here", gotText(data, path))
		if len(alts) > 0 {
			sep := ","
			if len(alts) > 2 {
				sep = ";" // the alternatives have commas of their own
			}
			msg = fmt.Sprintf("want %s%s got %s", wantText(alts), sep, gotText(data, path))
		}
		hint := ""
		var plain []string
		for _, a := range alts {
			plain = append(plain, strings.Trim(a, `"`))
		}
		if m := closest(strings.Trim(got, `"`), plain); m != "" {
			hint = fmt.Sprintf("did you mean %q?", m)
		}
		if h := patternHint(path); h != "" && hint == "" {
			hint = h
		}
		add(nearestPos(data, path), field, CodeSchema, msg, hint)
	}
	return out
}

// nestedDisj reports whether a failed disjunction inside field explains
// field's own failure (a list of settings fails because one value does).
func nestedDisj(order []string, field string) bool {
	for _, f := range order {
		if f != field && (field == "" || strings.HasPrefix(f, field+".")) {
			return true
		}
	}
	return false
}

// kindNames are how CUE names the alternatives that are types.
var kindNames = map[string]bool{"bool": true, "int": true, "float": true, "number": true, "string": true,
	"bytes": true, "list": true, "struct": true, "null": true}

// literalAlternatives drops from a failed disjunction's alternatives the
// kind of the rejected value and, when literal values are allowed, the
// kinds CUE lists next to them; literals come first, sorted.
func literalAlternatives(alts []string, got string) []string {
	var lits, kinds []string
	for _, a := range alts {
		switch {
		case a == got:
		case kindNames[a]:
			kinds = append(kinds, a)
		default:
			lits = append(lits, a)
		}
	}
	slices.Sort(lits)
	slices.Sort(kinds)
	if len(lits) > 0 {
		return lits
	}
	return kinds
}

func kindOf(v cue.Value, path []string) string {
	p, ok := selectors(v, path)
	if !ok {
		return ""
	}
	return v.LookupPath(p).IncompleteKind().String()
}

func isDisj(disj map[string][]string, field string) bool {
	_, ok := disj[field]
	return ok
}

func fieldOf(e cueerrors.Error) string { return strings.Join(dataPath(e), ".") }

// dataPath is the error's path without the leading #Definition.
func dataPath(e cueerrors.Error) []string {
	p := e.Path()
	if len(p) > 0 && strings.HasPrefix(p[0], "#") {
		p = p[1:]
	}
	return p
}

// posIn returns the error's position in the user's file, or the nearest
// existing key of the path.
func posIn(e cueerrors.Error, file string, data cue.Value, path []string) token.Pos {
	for _, p := range append([]token.Pos{e.Position()}, e.InputPositions()...) {
		if p.IsValid() && p.Filename() == file {
			return p
		}
	}
	return nearestPos(data, path)
}

// selectors turns an error path into a cue.Path over the data value; list
// indices are numeric elements under a list.
func selectors(v cue.Value, path []string) (cue.Path, bool) {
	sels := make([]cue.Selector, 0, len(path))
	cur := v
	for _, p := range path {
		if cur.IncompleteKind() == cue.ListKind {
			i, err := strconv.Atoi(p)
			if err != nil {
				return cue.Path{}, false
			}
			sels = append(sels, cue.Index(i))
		} else {
			sels = append(sels, cue.Str(p))
		}
		cur = v.LookupPath(cue.MakePath(sels...))
		if !cur.Exists() {
			return cue.Path{}, false
		}
	}
	return cue.MakePath(sels...), true
}

func valueExists(v cue.Value, path []string) bool {
	_, ok := selectors(v, path)
	return ok
}

// nearestPos is the position of the deepest existing key along path.
func nearestPos(v cue.Value, path []string) token.Pos {
	for i := len(path); i >= 0; i-- {
		if p, ok := selectors(v, path[:i]); ok {
			if pos := v.LookupPath(p).Pos(); pos.IsValid() {
				return pos
			}
		}
	}
	return token.NoPos
}

// valueText renders the user's value at path as CUE writes it ("actve", 12).
func valueText(v cue.Value, path []string) string {
	p, ok := selectors(v, path)
	if !ok {
		return "the value"
	}
	return fmt.Sprint(v.LookupPath(p))
}

// allowedFields lists the field names the schema allows at parent.
func allowedFields(def cue.Value, parent []string) []string {
	sels := make([]cue.Selector, 0, len(parent))
	for _, p := range parent {
		if _, err := strconv.Atoi(p); err == nil {
			sels = append(sels, cue.AnyIndex)
		} else {
			sels = append(sels, cue.Str(p))
		}
	}
	d := def.LookupPath(cue.MakePath(sels...))
	if !d.Exists() {
		return nil
	}
	it, err := d.Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	var names []string
	for it.Next() {
		s := it.Selector()
		if s.IsDefinition() || s.PkgPath() != "" {
			continue
		}
		n := strings.TrimRight(s.String(), "?!")
		names = append(names, strings.Trim(n, `"`))
	}
	slices.Sort(names)
	return names
}

// closest returns the candidate within a small edit distance of s.
func closest(s string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		d := spelling.Distance(strings.ToLower(s), strings.ToLower(c))
		limit := max(1, min(3, len(c)/3))
		if d <= limit && d < len(s) && (best == "" || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

// patternHints explain the fields whose schema is a regular expression,
// which CUE would otherwise report as the bare expression.
var patternHints = map[string]string{
	"mac":             `a MAC address like "52:54:00:12:34:56"; quote it`,
	"addresses":       `addresses in CIDR form, like "192.0.2.10/24" or "2001:db8::10/64"`,
	"to":              `a destination in CIDR form: "0.0.0.0/0" and "::/0" for default routes`,
	"via":             `a gateway IP address, like "192.0.2.1" or "2001:db8::1"`,
	"servers":         `DNS server IP addresses`,
	"name":            `lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 characters`,
	"owner":           `the metadata.name of a file in owners/`,
	"lessee":          `the metadata.name of a file in owners/`,
	"checksum":        `"sha256:" followed by 64 hex digits, or "sha512:" followed by 128`,
	"url":             `an http://, https:// or file:// URL`,
	"email":           `an e-mail address, as in the commit author`,
	"traits":          `upper-case trait names like CUSTOM_GPU or HW_CPU_X86_AVX2`,
	"step":            `a lower_snake_case step name, like apply_configuration`,
	"apiVersion":      `apiVersion: metalsync.dev/v1alpha1`,
	"pollInterval":    `a Go-style duration like "30s" or "5m"`,
	"powerInterval":   `a Go-style duration like "30s" or "5m"`,
	"ttl":             `a Go-style duration like "30s" or "5m"`,
	"imageCacheSize":  `a whole number of MiB, GiB or TiB, like "50GiB"`,
	"deployTemplates": `the metadata.name of files in templates/`,
	"settings":        `BIOS settings: a map {NAME: VALUE}, or a list of {name: NAME, value: VALUE}`,
	"device":          `cd, disk, pxe or bios`,
	"raid_level":      `a RAID level: 0, 1, 5, 6 or 10 (as a number, a string or RAID1-style)`,
	"size_gib":        `a whole number of GiB, or MAX for all of the drives`,
	"size_gb":         `a whole number of GiB, or MAX for all of the drives`,
	"args":            "this step's arguments; see #Steps in `metalsync schema` and the templates in inventory-example/",
}

// argHints replace patternHints for fields of step arguments whose name
// means something else elsewhere.
var argHints = map[string]string{
	"url": `an http:// or https:// URL the BMC downloads the image from`,
}

func patternHint(path []string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if _, err := strconv.Atoi(path[i]); err == nil {
			continue
		}
		if h, ok := argHints[path[i]]; ok && slices.Contains(path[:i], "args") {
			return h
		}
		return patternHints[path[i]]
	}
	return ""
}

// friendly rewrites CUE's message as "want X, got Y": CUE names the two
// sides of a conflict in either order, so the side the user wrote is found
// from the data. A regular-expression mismatch loses its expression, which
// means little to an operator (the hint explains the format).
func friendly(data cue.Value, path []string, msg string) string {
	if len(path) == 1 && path[0] == "apiVersion" {
		return "this version of metalsync reads apiVersion " + APIVersion
	}
	if i := strings.Index(msg, "(mismatched types "); i >= 0 {
		var a, b string
		if _, err := fmt.Sscanf(msg[i:], "(mismatched types %s and %s", &a, &b); err == nil {
			b = strings.TrimSuffix(b, ")")
			got := kindOf(data, path)
			switch got {
			case a:
				return fmt.Sprintf("want %s, got %s", b, gotText(data, path))
			case b:
				return fmt.Sprintf("want %s, got %s", a, gotText(data, path))
			}
		}
	}
	if i := strings.Index(msg, " (out of bound =~"); i >= 0 && patternHint(path) != "" {
		return strings.TrimPrefix(msg[:i], "invalid value ") + " has the wrong format"
	}
	return msg
}

// wantText lists what a field accepts: "bool", "\"off\" or \"on\"",
// "one of 0, 1, 5".
func wantText(alts []string) string {
	switch len(alts) {
	case 1:
		return alts[0]
	case 2:
		return alts[0] + " or " + alts[1]
	}
	return "one of " + strings.Join(alts, ", ")
}

// gotText names the kind and value the user wrote: `string "yes"`, `int 5`;
// a long value (a struct, a long list) by its kind only.
func gotText(data cue.Value, path []string) string {
	kind := kindOf(data, path)
	if kind == "" {
		return "the value"
	}
	v := valueText(data, path)
	if len(v) > 40 || strings.Contains(v, "\n") {
		return kind
	}
	return kind + " " + v
}

func requiredHint(path []string) string {
	switch strings.Join(path, ".") {
	case "spec.owner":
		return "every node has an owner: the metadata.name of a file in owners/"
	case "spec.bmc.credentialsRef":
		return "name a credential set of metalsync.yaml: credentialsRef: {set: NAME}"
	case "spec.provision", "spec.provision.state":
		return "provision: {state: manageable | available | active}"
	case "apiVersion":
		return "apiVersion: metalsync.dev/v1alpha1"
	}
	if h := patternHint(path); h != "" {
		return h
	}
	return "see `metalsync schema` (or inventory-example/) for the expected shape"
}

func article(kind string) string {
	if strings.ContainsAny(kind[:1], "aeiou") {
		return "an"
	}
	return "a"
}
