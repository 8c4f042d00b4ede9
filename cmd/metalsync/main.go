// Command metalsync manages bare-metal servers declaratively from a Git
// repository of YAML files. See README.md.
package main

import (
	"os"
)

func main() {
	os.Exit(Main(os.Args[1:], Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
