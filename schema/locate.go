package schema

import (
	"io/fs"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"
	cueyaml "cuelang.org/go/encoding/yaml"
)

// locator finds the line and column of a field path in a file. Files are
// parsed again only when a rule fails, so a valid inventory pays nothing.
type locator struct {
	fsys  fs.FS
	files map[string]*ast.File
}

func newLocator(fsys fs.FS) *locator {
	return &locator{fsys: fsys, files: map[string]*ast.File{}}
}

// pos returns the position of the deepest key of path found in file.
func (l *locator) pos(file string, path ...string) token.Pos {
	f, ok := l.files[file]
	if !ok {
		if data, err := fs.ReadFile(l.fsys, file); err == nil {
			f, _ = cueyaml.Extract(file, data)
		}
		l.files[file] = f
	}
	if f == nil {
		return token.NoPos
	}
	best := token.NoPos
	var elts []ast.Decl = f.Decls
	var list []ast.Expr
	for _, p := range path {
		var next ast.Expr
		if list != nil {
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(list) {
				return best
			}
			next = list[i]
			best = next.Pos()
		} else {
			found := false
			for _, d := range elts {
				fd, ok := d.(*ast.Field)
				if !ok {
					continue
				}
				name, _, err := ast.LabelName(fd.Label)
				if err != nil || name != p {
					continue
				}
				next, best, found = fd.Value, fd.Label.Pos(), true
				break
			}
			if !found {
				return best
			}
		}
		elts, list = nil, nil
		switch x := next.(type) {
		case *ast.StructLit:
			elts = x.Elts
		case *ast.ListLit:
			list = x.Elts
		}
	}
	return best
}

// diag builds a positioned error diagnostic for field path in file.
func (l *locator) diag(file, code, msg, hint string, path ...string) Diagnostic {
	d := Diagnostic{File: file, Severity: SevError, Code: code, Message: msg, Hint: hint}
	if len(path) > 0 {
		d.Field = strings.Join(path, ".")
	}
	if p := l.pos(file, path...); p.IsValid() {
		d.Line, d.Col = p.Line(), p.Column()
	}
	return d
}
