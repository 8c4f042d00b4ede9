package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/encoding/jsonschema"

	"metalsync.dev/metalsync/schema"
)

// schemaKinds are the kinds of inventory file, in the order they are listed.
var schemaKinds = []string{schema.KindNode, schema.KindOwner, schema.KindDeployTemplate, schema.KindSite, schema.KindNodeStatus}

type schemaArgs struct {
	format string
	kind   string
}

func parseSchema(args []string, env *Env) (schemaArgs, int) {
	fs := newFlags("schema", env)
	var a schemaArgs
	fs.StringVar(&a.format, "format", "cue", "output format: cue or jsonschema")
	fs.StringVar(&a.kind, "kind", "", "only this kind: "+strings.Join(schemaKinds, ", ")+" (default all)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync schema [--format cue|jsonschema] [--kind KIND]\n\nPrints the schema every inventory file is validated against: the embedded\nCUE, or a JSON Schema generated from it for editors (see README.md,\n\"Editor support\").")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(env.Err, "metalsync schema: no arguments expected")
		return a, exitUsage
	}
	if a.format != "cue" && a.format != "jsonschema" {
		fmt.Fprintf(env.Err, "metalsync schema: unknown --format %q (cue or jsonschema)\n", a.format)
		return a, exitUsage
	}
	if a.kind != "" && !slices.Contains(schemaKinds, a.kind) {
		fmt.Fprintf(env.Err, "metalsync schema: unknown --kind %q (%s)\n", a.kind, strings.Join(schemaKinds, ", "))
		return a, exitUsage
	}
	return a, -1
}

func runSchema(_ context.Context, args []string, env *Env) int {
	a, code := parseSchema(args, env)
	if code >= 0 {
		return code
	}
	var out []byte
	var err error
	switch {
	case a.format == "jsonschema":
		out, err = jsonSchema(a.kind)
	case a.kind != "":
		out, err = cueDefinition(a.kind)
	default:
		out = schema.CUESource()
	}
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync schema: %v\n", err)
		return exitError
	}
	env.Out.Write(out)
	return exitOK
}

// cueDefinition is the CUE of one kind's definition, with the definitions
// it refers to kept as references.
func cueDefinition(kind string) ([]byte, error) {
	v, err := compileSchema()
	if err != nil {
		return nil, err
	}
	d := v.LookupPath(cue.ParsePath("#" + kind))
	src, err := format.Node(d.Source())
	if err != nil {
		return nil, fmt.Errorf("format #%s: %w", kind, err)
	}
	return append(src, '\n'), nil
}

func compileSchema() (cue.Value, error) {
	ctx := cuecontext.New()
	v := ctx.CompileBytes(schema.CUESource(), cue.Filename("schema.cue"))
	if err := v.Err(); err != nil {
		return cue.Value{}, fmt.Errorf("compile embedded schema: %w", err)
	}
	return v, nil
}

// jsonSchema is a JSON Schema (draft 2020-12) for one kind, or for every
// kind chosen by the file's `kind` when kind is "".
func jsonSchema(kind string) ([]byte, error) {
	v, err := compileSchema()
	if err != nil {
		return nil, err
	}
	kinds := schemaKinds
	if kind != "" {
		kinds = []string{kind}
	}
	defs := map[string]any{}
	roots := map[string]map[string]any{}
	for _, k := range kinds {
		s, err := generateDef(v, k, defs)
		if err != nil {
			return nil, err
		}
		roots[k] = s
	}
	// CUE's generator gives up on the comprehensions of #Step and writes
	// `true` (anything): write it from the table of #Steps instead.
	if _, ok := defs["Step"]; ok {
		step, err := stepSchema(v, defs)
		if err != nil {
			return nil, err
		}
		defs["Step"] = step
	}
	// The loader's Go rules, where JSON Schema can say them: an editor
	// then flags what validation refuses, such as an inline credential
	// source the CUE keeps only to give the migration hint.
	for k, r := range roots {
		defs[k] = r
	}
	if err := schema.RefineJSONSchema(defs); err != nil {
		return nil, err
	}
	if kind != "" {
		delete(defs, kind) // the document is its root
	}
	for _, d := range defs {
		if d, ok := d.(map[string]any); ok {
			inlineEmbedded(d, defs)
		}
	}
	doc := map[string]any{"$schema": "https://json-schema.org/draft/2020-12/schema"}
	if kind != "" {
		root := roots[kind]
		inlineEmbedded(root, defs)
		for k, val := range root {
			doc[k] = val
		}
	} else {
		var branches []any
		for _, k := range kinds {
			root := roots[k]
			inlineEmbedded(root, defs)
			defs[k] = root
			branches = append(branches, map[string]any{
				"if":   map[string]any{"properties": map[string]any{"kind": map[string]any{"const": k}}},
				"then": map[string]any{"$ref": "#/$defs/" + k},
			})
		}
		doc["type"] = "object"
		doc["required"] = []any{"kind"}
		doc["properties"] = map[string]any{"kind": map[string]any{"enum": toAny(kinds)}}
		doc["allOf"] = branches
	}
	if kind == schema.KindDeployTemplate || kind == "" {
		doc["$defs"] = defs
	} else {
		delete(defs, "Step")
		doc["$defs"] = reachableDefs(doc, defs)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode JSON Schema: %w", err)
	}
	return append(b, '\n'), nil
}

// generateDef runs CUE's JSON Schema generator on #name, moves the
// definitions it refers to into defs and returns the rest.
func generateDef(v cue.Value, name string, defs map[string]any) (map[string]any, error) {
	d := v.LookupPath(cue.ParsePath("#" + name))
	expr, err := jsonschema.Generate(d, nil)
	if err != nil {
		return nil, fmt.Errorf("JSON Schema of #%s: %w", name, err)
	}
	b, err := json.Marshal(v.Context().BuildExpr(expr))
	if err != nil {
		return nil, fmt.Errorf("JSON Schema of #%s: %w", name, err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("JSON Schema of #%s: %w", name, err)
	}
	if sub, ok := s["$defs"].(map[string]any); ok {
		for n, def := range sub {
			defs[n] = def
		}
	}
	delete(s, "$defs")
	delete(s, "$schema")
	openStructs(s)
	return s, nil
}

// openStructs rewrites `const: {}`, which CUE's generator writes for an
// open struct (`inventory?: {...}`), to what the CUE means: any object.
func openStructs(x any) {
	switch x := x.(type) {
	case map[string]any:
		for k, val := range x {
			if m, ok := val.(map[string]any); ok && len(m) == 1 {
				if c, ok := m["const"].(map[string]any); ok && len(c) == 0 {
					x[k] = map[string]any{"type": "object"}
					continue
				}
			}
			openStructs(val)
		}
	case []any:
		for _, e := range x {
			openStructs(e)
		}
	}
}

// stepSchema is #Step in JSON Schema: one of the known interface and
// step pairs of #Steps, each with the arguments it takes (required when
// written `args!`), and none for a step without `args`.
func stepSchema(v cue.Value, defs map[string]any) (map[string]any, error) {
	steps := v.LookupPath(cue.ParsePath("#Steps"))
	ifaces, err := steps.Fields(cue.Definitions(false))
	if err != nil {
		return nil, fmt.Errorf("#Steps: %w", err)
	}
	var arms []any
	for ifaces.Next() {
		iface := ifaces.Selector().Unquoted()
		names, err := ifaces.Value().Fields()
		if err != nil {
			return nil, fmt.Errorf("#Steps.%s: %w", iface, err)
		}
		for names.Next() {
			step := names.Selector().Unquoted()
			props := map[string]any{
				"interface": map[string]any{"const": iface},
				"step":      map[string]any{"const": step},
				"priority":  map[string]any{"type": "integer", "minimum": 0, "maximum": 1000},
			}
			required := []any{"interface", "priority", "step"}
			args, err := names.Value().Fields(cue.Optional(true))
			if err != nil {
				return nil, fmt.Errorf("#Steps.%s.%s: %w", iface, step, err)
			}
			for args.Next() {
				if args.Selector().Unquoted() != "args" {
					continue
				}
				_, ref := args.Value().ReferencePath()
				if len(ref.Selectors()) != 1 {
					return nil, fmt.Errorf("#Steps.%s.%s: args is not a definition", iface, step)
				}
				argsDef := strings.TrimPrefix(ref.String(), "#")
				if _, done := defs[argsDef]; !done {
					s, err := generateDef(v, argsDef, defs)
					if err != nil {
						return nil, err
					}
					defs[argsDef] = s
				}
				props["args"] = map[string]any{"$ref": "#/$defs/" + argsDef}
				if args.Selector().ConstraintType() == cue.RequiredConstraint {
					required = append([]any{"args"}, required...)
				}
			}
			arms = append(arms, map[string]any{
				"type":                 "object",
				"additionalProperties": false,
				"properties":           props,
				"required":             required,
			})
		}
	}
	return map[string]any{"oneOf": arms}, nil
}

// inlineEmbedded merges a closed struct's embedded definition (#Node
// embeds #Envelope) into it. CUE's generator writes the embedding as a
// sibling $ref, and in JSON Schema two closed objects side by side
// (additionalProperties: false on both) accept nothing: each rejects the
// other's fields.
func inlineEmbedded(s map[string]any, defs map[string]any) {
	ref, ok := s["$ref"].(string)
	if !ok || s["additionalProperties"] != false {
		return
	}
	base, ok := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	if !ok || base["additionalProperties"] != false {
		return
	}
	props, _ := s["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
	}
	baseProps, _ := base["properties"].(map[string]any)
	for k, p := range baseProps {
		if mine, ok := props[k]; ok {
			props[k] = map[string]any{"allOf": []any{p, mine}}
		} else {
			props[k] = p
		}
	}
	s["properties"] = props
	req, _ := s["required"].([]any)
	baseReq, _ := base["required"].([]any)
	for _, r := range baseReq {
		if !slices.Contains(req, r) {
			req = append(req, r)
		}
	}
	if len(req) > 0 {
		slices.SortFunc(req, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
		s["required"] = req
	}
	delete(s, "$ref")
}

// reachableDefs keeps the definitions doc refers to, directly or not.
func reachableDefs(doc map[string]any, defs map[string]any) map[string]any {
	keep := map[string]any{}
	var walk func(x any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, val := range x {
				if k == "$defs" {
					continue
				}
				if ref, ok := val.(string); ok && k == "$ref" {
					name := strings.TrimPrefix(ref, "#/$defs/")
					if _, seen := keep[name]; !seen && defs[name] != nil {
						keep[name] = defs[name]
						walk(defs[name])
					}
				}
				walk(val)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	return keep
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
