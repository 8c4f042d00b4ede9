package schema

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
)

// checkShape walks the data against the definition and reports every
// unknown field and every missing required field. CUE's own errors are not
// exhaustive here: an unknown field hides missing ones and vice versa
// (LIBRARIES.md note 5), and a review wants all problems at once.
func checkShape(file string, def, data cue.Value, skip map[string]bool) Diagnostics {
	var out Diagnostics
	var walk func(def, data cue.Value, path []string)
	walk = func(def, data cue.Value, path []string) {
		switch data.IncompleteKind() {
		case cue.StructKind:
			if def.IncompleteKind()&cue.StructKind == 0 {
				return // a type conflict; CUE reports it
			}
			present := map[string]bool{}
			it, err := data.Fields(cue.Optional(true))
			if err != nil {
				return
			}
			for it.Next() {
				sel := it.Selector()
				name := sel.Unquoted()
				present[name] = true
				p := append(slices.Clip(path), name)
				if skip[strings.Join(p, ".")] {
					continue
				}
				if !def.Allows(sel) {
					allowed := allowedFields(def, nil)
					hint := ""
					if m := closest(name, allowed); m != "" {
						hint = fmt.Sprintf("did you mean %q?", m)
					} else if len(allowed) > 0 {
						hint = "allowed here: " + strings.Join(allowed, ", ")
					}
					pos := it.Value().Pos()
					d := Diagnostic{File: file, Field: strings.Join(p, "."), Severity: SevError, Code: CodeUnknownField, Message: fmt.Sprintf("unknown field %q", name), Hint: hint}
					if pos.IsValid() {
						d.Line, d.Col = pos.Line(), pos.Column()
					}
					out = append(out, d)
					continue
				}
				walk(def.LookupPath(cue.MakePath(sel)), it.Value(), p)
			}
			dit, err := def.Fields(cue.Optional(true))
			if err != nil {
				return
			}
			for dit.Next() {
				sel := dit.Selector()
				if sel.IsDefinition() || dit.IsOptional() || sel.ConstraintType() == cue.PatternConstraint {
					continue
				}
				name := sel.Unquoted()
				if present[name] {
					continue
				}
				if _, hasDefault := dit.Value().Default(); hasDefault {
					continue
				}
				if dit.Value().IsConcrete() && dit.Value().Kind() != cue.StructKind {
					continue // a fixed value the envelope fills in
				}
				p := append(slices.Clip(path), name)
				pos := nearestPos(data, nil)
				d := Diagnostic{File: file, Field: strings.Join(p, "."), Severity: SevError, Code: CodeSchema, Message: fmt.Sprintf("missing required field %q", name), Hint: requiredHint(p)}
				if pos.IsValid() {
					d.Line, d.Col = pos.Line(), pos.Column()
				}
				out = append(out, d)
			}
		case cue.ListKind:
			elem := def.LookupPath(cue.MakePath(cue.AnyIndex))
			it, err := data.List()
			if err != nil {
				return
			}
			for i := 0; it.Next(); i++ {
				e := elem
				if !e.Exists() {
					e = def.LookupPath(cue.MakePath(cue.Index(i)))
				}
				if e.Exists() {
					walk(e, it.Value(), append(slices.Clip(path), strconv.Itoa(i)))
				}
			}
		}
	}
	walk(def, data, nil)
	return out
}
