package schema

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Severity of a diagnostic.
type Severity string

// Severities.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Diagnostic is one problem found in an inventory, positioned in the file
// that has to change.
type Diagnostic struct {
	File     string   `json:"file"`
	Line     int      `json:"line,omitempty"`
	Col      int      `json:"col,omitempty"`
	Field    string   `json:"field,omitempty"`
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
}

// Diagnostic codes are stable: tools may match on them.
const (
	CodeYAML          = "yaml"
	CodeSchema        = "schema"
	CodeUnknownField  = "unknown-field"
	CodeLiteralSecret = "literal-secret"
	CodeKind          = "kind"
	CodeName          = "name"
	CodeDuplicate     = "duplicate"
	CodeReference     = "reference"
	CodeBMCAddress    = "bmc-address"
	CodeNetwork       = "network"
	CodeTemplate      = "template"
	CodeSite          = "site"
	CodeCredentials   = "credentials"
	CodeBMCNetwork    = "bmc-network"
)

// String formats the diagnostic as `file:line:col: field: message`, with
// the hint on an indented second line.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", d.Line, d.Col)
	}
	b.WriteString(": ")
	if d.Severity == SevWarning {
		b.WriteString("warning: ")
	}
	if d.Field != "" {
		b.WriteString(d.Field)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	if d.Hint != "" {
		b.WriteString("\n\thint: ")
		b.WriteString(d.Hint)
	}
	return b.String()
}

// Diagnostics is every problem of a load, sorted by file, line, column.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool { return ds.Errors() > 0 }

// Errors counts the diagnostics that are errors (not warnings).
func (ds Diagnostics) Errors() int {
	n := 0
	for _, d := range ds {
		if d.Severity == SevError {
			n++
		}
	}
	return n
}

// Err returns nil when there are no errors, or an error listing all of them.
func (ds Diagnostics) Err() error {
	if !ds.HasErrors() {
		return nil
	}
	return &InvalidError{Diagnostics: ds}
}

// String lists every diagnostic, one per line (plus hint lines).
func (ds Diagnostics) String() string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// MarshalJSON keeps an empty list as [] rather than null.
func (ds Diagnostics) MarshalJSON() ([]byte, error) {
	if ds == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]Diagnostic(ds))
}

func (ds Diagnostics) sort() {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Col, b.Col),
			cmp.Compare(a.Field, b.Field),
			cmp.Compare(a.Message, b.Message),
		)
	})
}

// dedupe drops exact repeats (CUE reports some conflicts once per
// disjunct); ds must be sorted.
func (ds Diagnostics) dedupe() Diagnostics {
	return slices.CompactFunc(ds, func(a, b Diagnostic) bool { return a == b })
}

// InvalidError is returned when an inventory has errors.
type InvalidError struct {
	Diagnostics Diagnostics
}

func (e *InvalidError) Error() string {
	n := e.Diagnostics.Errors()
	first := ""
	for _, d := range e.Diagnostics {
		if d.Severity == SevError {
			first = d.String()
			break
		}
	}
	if n == 1 {
		return "invalid inventory: " + first
	}
	return fmt.Sprintf("invalid inventory: %d errors, first: %s", n, first)
}
