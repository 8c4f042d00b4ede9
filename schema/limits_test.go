package schema

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"cuelang.org/go/cue/ast"
	cueyaml "cuelang.org/go/encoding/yaml"
)

// aliasBomb is a file of aliases of aliases: anchor i is a list of width
// aliases of anchor i-1, so that it expands to width^i values. The issue's
// 260 KB example took `validate` past 3 GB.
func aliasBomb(size int) string {
	const width = 16
	var b strings.Builder
	b.WriteString("apiVersion: metalsync.dev/v1alpha1\nkind: Node\nmetadata: {name: x}\nspec:\n  a0: &a0 [lol]\n")
	for i := 1; b.Len() < size; i++ {
		fmt.Fprintf(&b, "  a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), width), ", "))
	}
	return b.String()
}

// deepFlow nests flow sequences n levels deep: the 20 KB file of
// 9,990 levels took 7.7 s and 831 MB.
func deepFlow(n int) string {
	return "apiVersion: metalsync.dev/v1alpha1\nkind: Node\nmetadata: {name: x}\nspec: " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n"
}

// deepBlock nests block mappings n levels deep.
func deepBlock(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: metalsync.dev/v1alpha1\nkind: Node\nmetadata: {name: x}\nspec:\n")
	for i := range n {
		fmt.Fprintf(&b, "%sk%d:\n", strings.Repeat(" ", i+1), i)
	}
	fmt.Fprintf(&b, "%sleaf\n", strings.Repeat(" ", n+1))
	return b.String()
}

// deepAlias is shallow everywhere, but an anchor 40 deep aliased 40 deep.
func deepAlias() string {
	return "apiVersion: metalsync.dev/v1alpha1\nkind: Node\nmetadata: {name: x}\nspec:\n  a: &a " +
		strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n  b: " + strings.Repeat("[", 30) + "*a" + strings.Repeat("]", 30) + "\n"
}

// wide is a file just under the size limit made of one-character values:
// the most values a file can hold.
func wide() string {
	var b strings.Builder
	b.WriteString("apiVersion: metalsync.dev/v1alpha1\nkind: Node\nmetadata: {name: x}\nspec: [0")
	for b.Len() < maxFileSize-4 {
		b.WriteString(",0")
	}
	b.WriteString("]\n")
	return b.String()
}

// TestLimits loads each pathological file as a node of the example and
// checks that it is refused, positioned, by the pre-scan, with little
// memory: the bytes the pre-scan allocates are counted (a count, not a
// time). The durations are logged for the README's figures.
func TestLimits(t *testing.T) {
	tests := []struct {
		name, data string
		want       string // the one diagnostic, first line
		maxAlloc   int64  // bytes the pre-scan may allocate
	}{
		{"alias bomb 260 KB", aliasBomb(260 << 10), `nodes/x/x.yaml: file is 266344 bytes; inventory files are limited to 262144`, 64 << 10},
		{"alias bomb 250 KB", aliasBomb(250 << 10), `nodes/x/x.yaml:9:62: spec.a4.10: aliases expand the file to more than 100000 values`, 8 << 20},
		{"flow nesting 9990 levels", deepFlow(9990), `nodes/x/x.yaml:4:70: spec.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0: nested more than 64 levels deep`, 32 << 20},
		{"block nesting 100 levels", deepBlock(100), `nodes/x/x.yaml:68:65: spec.k0.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12.k13.k14.k15.k16.k17.k18.k19.k20.k21.k22.k23.k24.k25.k26.k27.k28.k29.k30.k31.k32.k33.k34.k35.k36.k37.k38.k39.k40.k41.k42.k43.k44.k45.k46.k47.k48.k49.k50.k51.k52.k53.k54.k55.k56.k57.k58.k59.k60.k61.k62: nested more than 64 levels deep`, 8 << 20},
		{"alias nests too deep", deepAlias(), `nodes/x/x.yaml:6:36: spec.b.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0: alias *a nests the file more than 64 levels deep`, 1 << 20},
		{"merge of 5000 keys", mergeBomb(5000), `nodes/x/x.yaml:6:16: spec.b.<<: merge keys (<<) make the file cost more than 1000000 key comparisons`, 16 << 20},
		{"largest file of values", wide(), `nodes/x/x.yaml:4:199986: spec.99989: file has more than 100000 values`, 48 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.data)
			if len(data) > maxFileSize { // refused before the pre-scan
				data = nil
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			ds := prescan("nodes/x/x.yaml", data)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := int64(after.TotalAlloc - before.TotalAlloc)
			t.Logf("%d bytes: pre-scan %v, %.1f MiB allocated", len(data), took, float64(alloc)/(1<<20))
			if alloc > tt.maxAlloc {
				t.Errorf("pre-scan allocated %d bytes, want at most %d", alloc, tt.maxAlloc)
			}

			fsys := example(t)
			fsys["nodes/x/x.yaml"] = &fstest.MapFile{Data: []byte(tt.data)}
			_, diags := Load(fsys)
			var got []string
			for _, d := range diags {
				got = append(got, strings.SplitN(d.String(), "\n", 2)[0])
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			if len(ds) != 1 && data != nil {
				t.Errorf("pre-scan: got %d diagnostics, want 1", len(ds))
			}
		})
	}
}

// TestPrescanAccepts: files within the limits pass the pre-scan untouched,
// aliases included, and a syntax error is left to CUE's decoder.
func TestPrescanAccepts(t *testing.T) {
	tests := []struct{ name, data string }{
		{"aliases", "a: &a {x: 1, y: [1, 2]}\nb: *a\nc: {<<: *a, z: 3}\n"},
		{"64 levels", strings.Repeat("[", 64) + strings.Repeat("]", 64)},
		{"anchor at the limit", "a: &a " + strings.Repeat("[", 30) + strings.Repeat("]", 30) + "\nb: " + strings.Repeat("[", 33) + "*a" + strings.Repeat("]", 33) + "\n"},
		{"syntax error", "a: [1\n"},
		{"recursive alias", "a: &a [*a]\n"},
		{"same key in different mappings", "a: {x: 1}\nb: {x: 1}\n"},
		{"documents", "a: 1\n---\na: 2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ds := prescan("f.yaml", []byte(tt.data)); len(ds) != 0 {
				t.Errorf("got %s", ds)
			}
		})
	}
}

// FuzzLimits: the pre-scan never panics, and whatever it accepts CUE's
// decoder turns into a syntax tree within the limits: no more values and
// no deeper than the pre-scan allows.
func FuzzLimits(f *testing.F) {
	f.Add([]byte(aliasBomb(600)))
	f.Add([]byte(deepFlow(70)))
	f.Add([]byte(deepBlock(70)))
	f.Add([]byte(deepAlias()))
	f.Add([]byte("a: &a [1, 2]\nb: {<<: *a}\nc: [*a, *a]\n"))
	f.Add([]byte("a: &a {x: 1}\nb: {<<: [*a, *a], y: *a}\n"))
	f.Add([]byte(mergeBomb(50)))
	f.Add([]byte("a: 1\na: 2\n"))
	f.Add([]byte("? [a]\n: 1\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return // the limits are about structure; keep runs fast
		}
		if ds := prescan("f.yaml", data); len(ds) != 0 {
			for _, d := range ds {
				if d.Line == 0 || d.Message == "" {
					t.Fatalf("diagnostic without position or message: %#v", d)
				}
			}
			return
		}
		af, err := cueyaml.Extract("f.yaml", data)
		if err != nil {
			return
		}
		values, depth := astExtent(af.Decls, 1)
		if values > maxValues || depth > maxDepth {
			t.Fatalf("pre-scan accepted a file of %d values, %d deep", values, depth)
		}
	})
}

// astExtent counts the values of a CUE syntax tree and its depth, the
// declarations being at depth d.
func astExtent(decls []ast.Decl, d int) (values, depth int) {
	depth = d
	for _, decl := range decls {
		if f, ok := decl.(*ast.Field); ok {
			v, dd := exprExtent(f.Value, d)
			values += v
			depth = max(depth, dd)
		}
	}
	return values, depth
}

func exprExtent(x ast.Expr, d int) (values, depth int) {
	switch x := x.(type) {
	case *ast.StructLit:
		v, dd := astExtent(x.Elts, d+1)
		return v + 1, dd
	case *ast.ListLit:
		values, depth = 1, d+1
		for _, e := range x.Elts {
			v, dd := exprExtent(e, d+1)
			values += v
			depth = max(depth, dd)
		}
		return values, depth
	}
	return 1, d
}

// mergeBomb merges a mapping of n keys into another, twice: CUE's decoder
// compares every merged key with the keys already there.
func mergeBomb(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: metalsync.dev/v1alpha1\nkind: Node\nmetadata: {name: x}\nspec:\n  a: &a {")
	for i := range n {
		fmt.Fprintf(&b, "k%d: 0, ", i)
	}
	b.WriteString("z: 0}\n  b: {<<: [*a, *a]}\n")
	return b.String()
}
