// Command gen writes a generated inventory repository for benchmarks:
//
//	go run ./test/bench/gen -nodes 10000 -o /tmp/inv10k
package main

import (
	"flag"
	"fmt"
	"os"

	"metalsync.dev/metalsync/test/inventorygen"
)

func main() {
	n := flag.Int("nodes", 1000, "number of nodes")
	perRack := flag.Int("per-rack", 40, "nodes per rack directory")
	driver := flag.String("driver", "redfish", "BMC driver of the nodes: redfish, ipmi or fake")
	out := flag.String("o", "", "output directory (required)")
	status := flag.Bool("status", false, "also write status files, as if every node had settled")
	drift := flag.Float64("drift", 0, "with -status: share of nodes (0-1) observed powered off, so that they plan a change")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "gen: -o DIR is required")
		os.Exit(64)
	}
	if err := inventorygen.Write(*out, inventorygen.Options{Nodes: *n, PerRack: *perRack, Driver: *driver, Status: *status, Drift: *drift}); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
