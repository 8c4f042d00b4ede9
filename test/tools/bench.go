package tools

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// BenchSizes returns the sizes a benchmark runs at: the comma-separated
// counts in the environment variable env ("1000,10000,50000"), or defaults
// so that `make bench` stays quick. A value that is not a positive count
// fails the benchmark.
func BenchSizes(tb testing.TB, env string, defaults ...int) []int {
	tb.Helper()
	spec := os.Getenv(env)
	if spec == "" {
		return defaults
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			tb.Fatalf("%s=%q: want positive counts like 1000,10000", env, spec)
		}
		out = append(out, n)
	}
	return out
}

// BenchSize is BenchSizes for a benchmark that runs at one size: the last
// count listed, else def.
func BenchSize(tb testing.TB, env string, def int) int {
	tb.Helper()
	sizes := BenchSizes(tb, env, def)
	return sizes[len(sizes)-1]
}
