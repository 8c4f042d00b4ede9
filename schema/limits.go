package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits on one inventory file, checked before CUE's YAML decoder sees it.
// A resource is a few kilobytes, a few hundred values and fewer than ten
// levels deep; the limits are far above that and far below what costs
// time or memory.
const (
	// maxFileSize is checked from the file's size before it is read. It
	// bounds the pre-scan: the YAML parser takes about 120 bytes of memory
	// and 1.5 µs per byte of a file of one-character values.
	maxFileSize = 256 << 10
	// maxDepth bounds the nesting of mappings and sequences, aliases
	// expanded.
	maxDepth = 64
	// maxValues bounds the values (scalars, mappings, sequences) of a file
	// once every alias is expanded: CUE's decoder copies an anchor's
	// value at each of its aliases, so a small file of aliases of aliases
	// expands exponentially.
	maxValues = 100_000
	// maxMergeWork bounds the key comparisons of YAML merge keys (<<):
	// CUE's decoder looks each merged key up in the mapping it merges
	// into, one by one, so a merge costs the product of the two mappings'
	// sizes.
	maxMergeWork = 1_000_000
)

// prescan checks a file's YAML against the limits and for duplicate keys,
// with the YAML parser CUE uses (go.yaml.in/yaml/v3) but without expanding
// aliases: its node tree holds each anchor once, and the expanded size and
// depth of each anchor are computed once. Time and memory are linear in
// the file's size. A file the parser refuses is left to CUE's decoder,
// which fails at the same place before expanding anything, and reports
// it as it always has.
func prescan(file string, data []byte) Diagnostics {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	s := &scanner{file: file, anchors: map[*yaml.Node]extent{}}
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s.ds // CUE reports the syntax error
		}
		s.node(&doc, 0, nil)
		if s.stop {
			break
		}
	}
	return s.ds
}

// extent is the size of a value once its aliases are expanded: how many
// values it holds, itself included, how deep it nests and, for a mapping,
// how many keys it has once merged.
type extent struct {
	values, depth, keys int
}

type scanner struct {
	file    string
	anchors map[*yaml.Node]extent // anchors whose extent is known
	values  int                   // values of the file so far, expanded
	merges  int                   // key comparisons of merge keys so far
	ds      Diagnostics
	stop    bool // a limit was exceeded: the rest of the file is not looked at
}

func (s *scanner) fail(n *yaml.Node, field []string, msg, hint string) {
	s.ds = append(s.ds, Diagnostic{File: s.file, Line: n.Line, Col: n.Column, Field: strings.Join(field, "."),
		Severity: SevError, Code: CodeYAML, Message: msg, Hint: hint})
}

// node checks n at the given depth and returns its extent. field is the
// path of n, for the diagnostics; it is only built as far as maxDepth.
func (s *scanner) node(n *yaml.Node, depth int, field []string) extent {
	if s.stop {
		return extent{}
	}
	if n.Kind == yaml.AliasNode {
		e, ok := s.anchors[n.Alias]
		if !ok { // an alias inside its own anchor: CUE reports it
			e = extent{values: 1}
		}
		s.count(n, field, e, depth)
		return e
	}
	var e extent
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			e = s.node(c, depth, field)
		}
		return e
	case yaml.MappingNode, yaml.SequenceNode:
		if depth+1 > maxDepth {
			s.fail(n, field, fmt.Sprintf("nested more than %d levels deep", maxDepth), "an inventory resource nests a few levels; check the file is what you meant to commit")
			s.stop = true
			return extent{}
		}
		s.values++
		if s.values > maxValues {
			s.tooMany(n, field)
			return extent{}
		}
		e = extent{values: 1, depth: 1}
		if n.Kind == yaml.MappingNode {
			s.duplicates(n, field)
			e.keys = len(n.Content) / 2
		}
		for i, c := range n.Content {
			f := field
			switch {
			case n.Kind == yaml.SequenceNode:
				f = append(field[:len(field):len(field)], fmt.Sprint(i))
			case i%2 == 1:
				f = append(field[:len(field):len(field)], keyName(n.Content[i-1]))
			}
			ce := s.node(c, depth+1, f)
			if s.stop {
				return extent{}
			}
			if n.Kind == yaml.MappingNode && i%2 == 1 && isMergeKey(n.Content[i-1]) {
				e.keys = s.merge(n, c, e.keys, f)
				if s.stop {
					return extent{}
				}
			}
			e.values = min(e.values+ce.values, maxValues+1)
			e.depth = max(e.depth, ce.depth+1)
		}
	default: // scalar
		s.values++
		if s.values > maxValues {
			s.tooMany(n, field)
			return extent{}
		}
		e = extent{values: 1}
	}
	if n.Anchor != "" {
		s.anchors[n] = e
	}
	return e
}

// merge counts the work of merging v (a mapping, an alias of one, or a
// sequence of those) into mapping m, which has keys keys so far, and
// returns the keys m has after it.
func (s *scanner) merge(m, v *yaml.Node, keys int, field []string) int {
	var maps []*yaml.Node
	if v.Kind == yaml.SequenceNode {
		maps = v.Content
	} else {
		maps = []*yaml.Node{v}
	}
	for _, mv := range maps {
		k := 0
		switch {
		case mv.Kind == yaml.AliasNode:
			k = s.anchors[mv.Alias].keys
		case mv.Kind == yaml.MappingNode:
			k = len(mv.Content) / 2
		}
		s.merges += keys * k
		keys += k
		if s.merges > maxMergeWork {
			s.fail(mv, field, fmt.Sprintf("merge keys (<<) make the file cost more than %d key comparisons", maxMergeWork), "write the keys out, or merge smaller mappings")
			s.stop = true
			return keys
		}
	}
	return keys
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// count adds an alias's expansion to the file.
func (s *scanner) count(n *yaml.Node, field []string, e extent, depth int) {
	if depth+e.depth > maxDepth {
		s.fail(n, field, fmt.Sprintf("alias *%s nests the file more than %d levels deep", n.Value, maxDepth), "write the values out, or use fewer levels of aliases")
		s.stop = true
		return
	}
	s.values += e.values
	if s.values > maxValues {
		s.fail(n, field, fmt.Sprintf("aliases expand the file to more than %d values", maxValues), "write the values out, or use fewer aliases of aliases")
		s.stop = true
	}
}

func (s *scanner) tooMany(n *yaml.Node, field []string) {
	s.fail(n, field, fmt.Sprintf("file has more than %d values", maxValues), "one resource per file; an inventory resource has a few hundred values")
	s.stop = true
}

// duplicates reports every key of mapping n that appeared before, with
// the position of the first occurrence. Keys compare by their text, as CUE
// turns them into labels.
func (s *scanner) duplicates(n *yaml.Node, field []string) {
	if len(n.Content) < 4 {
		return
	}
	first := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			continue // CUE refuses non-scalar keys
		}
		at := n.Content[i]
		if prev, ok := first[k.Value]; ok {
			s.fail(at, append(field[:len(field):len(field)], k.Value),
				fmt.Sprintf("duplicate key %q (first at line %d, column %d)", k.Value, prev.Line, prev.Column),
				"a key appears once per mapping; merge the two or delete one")
			continue
		}
		first[k.Value] = at
	}
}

// keyName is a mapping key's text for a field path.
func keyName(k *yaml.Node) string {
	if k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind == yaml.ScalarNode {
		return k.Value
	}
	return "?"
}
