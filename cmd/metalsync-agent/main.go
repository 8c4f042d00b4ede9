// Command metalsync-agent is the deploy agent: PID 1 of the ramdisk a
// node boots from its per-node virtual media. It mounts the kernel file
// systems, loads drivers, finds its config-2 media, configures the static
// network, and then runs the commands the metalsync daemon hands out,
// forever. Run as any other PID (with --config-dir) it reads the media
// files from a directory and touches neither mounts nor network, for
// local runs and tests.
//
// Invoked as modprobe (the kernel's request_module() helper, through the
// /sbin/modprobe link the agent makes) it loads a module and exits.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"metalsync.dev/metalsync/agent/boot"
	"metalsync.dev/metalsync/agent/client"
	"metalsync.dev/metalsync/agent/steps"
)

// version is set with -ldflags '-X main.version=...'.
var version = "dev"

func main() {
	if boot.IsModprobe(os.Args) {
		os.Exit(boot.Modprobe(os.Args[1:]))
	}
	d := deps{version: version, newRunner: func(f *client.Client, l logger) client.Runner {
		return steps.New(steps.Config{Fetch: f, Log: l})
	}}
	if os.Getpid() == 1 {
		runInit(d) // never returns
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr, d))
}

// Main is the agent outside PID 1: flags, then one run until ctx ends or
// a fatal error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, d deps) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	if opts.showVersion {
		fmt.Fprintln(stdout, d.version)
		return 0
	}
	if err := runLocal(ctx, opts, stdout, d); err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "metalsync-agent:", err)
		return 1
	}
	return 0
}
