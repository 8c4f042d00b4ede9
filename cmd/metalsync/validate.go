package main

import (
	"context"
	"encoding/json"
	"fmt"

	"metalsync.dev/metalsync/schema"
)

type validateArgs struct {
	dir    string
	format string
}

func parseValidate(args []string, env *Env) (validateArgs, int) {
	fs := newFlags("validate", env)
	a := validateArgs{dir: "."}
	fs.StringVar(&a.format, "format", "text", "output format: text or json")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync validate [--format text|json] [DIR]\n\nChecks every file of the inventory repository in DIR (default .) against the\nschema and the cross-file rules. Exit status 1 when anything is invalid.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(env.Err, "metalsync validate: at most one directory")
		return a, exitUsage
	}
	if fs.NArg() == 1 {
		a.dir = fs.Arg(0)
	}
	if a.format != "text" && a.format != "json" {
		fmt.Fprintf(env.Err, "metalsync validate: unknown --format %q (text or json)\n", a.format)
		return a, exitUsage
	}
	return a, -1
}

// validateReport is the JSON form of `validate --format json`.
type validateReport struct {
	Valid       bool               `json:"valid"`
	Nodes       int                `json:"nodes"`
	Owners      int                `json:"owners"`
	Templates   int                `json:"templates"`
	Diagnostics schema.Diagnostics `json:"diagnostics"`
}

func runValidate(_ context.Context, args []string, env *Env) int {
	a, code := parseValidate(args, env)
	if code >= 0 {
		return code
	}
	inv, diags := loadInventory(a.dir, env)
	rep := validateReport{Valid: !diags.HasErrors(), Diagnostics: diags}
	if inv != nil {
		rep.Nodes, rep.Owners, rep.Templates = len(inv.Nodes), len(inv.Owners), len(inv.Templates)
	}
	if a.format == "json" {
		enc := json.NewEncoder(env.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(env.Err, "metalsync validate: %v\n", err)
			return exitError
		}
	} else {
		fmt.Fprint(env.Err, diags.String())
		if rep.Valid {
			fmt.Fprintf(env.Out, "%s, %s, %s: valid\n", plural(rep.Nodes, "node"), plural(rep.Owners, "owner"), plural(rep.Templates, "template"))
		} else {
			fmt.Fprintf(env.Err, "%s: invalid\n", plural(diags.Errors(), "error"))
		}
	}
	if !rep.Valid {
		return exitError
	}
	return exitOK
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
