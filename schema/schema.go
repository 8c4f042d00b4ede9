// Package schema reads an inventory repository: it validates every file
// against the embedded CUE definitions, decodes it into Go types and checks
// the rules that span files. Problems come back as positioned diagnostics
// (file:line:col, field, message, hint), all of them at once.
//
// There is one parser: YAML is read by CUE's YAML loader, validated with
// concrete values required, and decoded from the same CUE value, so a value
// means the same thing in validation and in use (`on` stays a string).
package schema

import (
	_ "embed"
	"fmt"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

//go:embed cue/schema.cue
var schemaSource []byte

// compiled is the schema compiled in one cue.Context. A cue.Context is not
// safe for concurrent use and grows with every value built in it, so each
// loader goroutine compiles its own and drops it after a bounded number of
// files (LIBRARIES.md note 6).
type compiled struct {
	ctx  *cue.Context
	defs map[string]cue.Value // by kind
}

func compile() (*compiled, error) {
	ctx := cuecontext.New()
	v := ctx.CompileBytes(schemaSource, cue.Filename("schema.cue"))
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("compile embedded schema: %w", err)
	}
	c := &compiled{ctx: ctx, defs: map[string]cue.Value{}}
	for _, k := range []string{KindNode, KindOwner, KindDeployTemplate, KindSite, KindNodeStatus} {
		d := v.LookupPath(cue.ParsePath("#" + k))
		if err := d.Err(); err != nil {
			return nil, fmt.Errorf("embedded schema: #%s: %w", k, err)
		}
		c.defs[k] = d
	}
	return c, nil
}
