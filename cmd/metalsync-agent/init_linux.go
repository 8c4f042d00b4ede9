package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"metalsync.dev/metalsync/agent/boot"
	"metalsync.dev/metalsync/agent/client"
	"metalsync.dev/metalsync/agent/media"
	"metalsync.dev/metalsync/agent/netsetup"
	"metalsync.dev/metalsync/internal/backoff"
)

// mediaDir is where the config-2 volume is mounted.
const mediaDir = "/run/metalsync/media"

// retry spaces the attempts of PID 1 after a failure: it never exits, as
// the kernel panics when init dies.
var retry = backoff.Policy{Base: 5 * time.Second, Max: 2 * time.Minute}

// runInit is PID 1. It never returns.
func runInit(d deps) {
	ctx := context.Background()
	// Mount first: /dev/console lives on devtmpfs.
	mountErr := boot.MountAll(slog.New(slog.DiscardHandler))
	console := openConsole()
	logs := client.NewLogBuffer(1 << 20)
	log := slog.New(slog.NewTextHandler(io.MultiWriter(console, logs), nil))
	fmt.Fprintf(console, "metalsync-agent: %s starting\n", d.version)
	if mountErr != nil {
		log.Error("mounts incomplete", "err", mountErr)
	}
	protect(log, "boot", func() { startBoot(ctx, log) })
	st := &bootState{}
	for attempt := 0; ; attempt++ {
		var err error
		protect(log, "agent", func() { err = agentOnce(ctx, log, logs, console, d, st) })
		if err == nil {
			err = errors.New("agent loop ended")
		}
		wait := retry.Jittered(attempt)
		log.Error("agent failed; starting over", "err", err, "attempt", attempt+1, "wait", wait)
		time.Sleep(wait)
	}
}

// protect runs f, turning a panic into a log line: PID 1 must not die.
func protect(log *slog.Logger, what string, f func()) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic", "in", what, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	f()
}

// openConsole opens /dev/console (the kernel's console=ttyS0) and makes it
// stdout and stderr too, so a runtime crash report reaches it.
func openConsole() io.Writer {
	f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return os.Stderr
	}
	unix.Dup3(int(f.Fd()), 1, 0)
	unix.Dup3(int(f.Fd()), 2, 0)
	return f
}

// startBoot does what is needed once per boot: reaping, the modprobe
// helper, the module list, hotplug and coldplug. Failures are logged: a
// missing driver shows up later as missing media or NIC.
func startBoot(ctx context.Context, log *slog.Logger) {
	go boot.Reap(ctx, 5*time.Second, log)
	self, err := os.Executable()
	if err != nil {
		self = "/init"
	}
	if err := boot.InstallModprobe(self, "/sbin/modprobe"); err != nil {
		log.Warn("kernel module requests will fail", "err", err)
	}
	dir, err := boot.ModulesDir()
	if err != nil {
		log.Error("no kernel modules", "err", err)
		return
	}
	mods, err := boot.ReadModules(dir)
	if err != nil {
		log.Error("no kernel modules", "err", err)
		return
	}
	l := boot.NewLoader(mods, log)
	if err := l.Hotplug(ctx); err != nil {
		log.Warn("no hotplug", "err", err)
	}
	if err := l.LoadList(boot.ModulesList); err != nil {
		log.Warn("module list", "err", err)
	}
	start := time.Now()
	n, err := l.Coldplug(ctx, "/sys/devices")
	if err != nil {
		log.Warn("coldplug", "err", err)
	}
	log.Info("coldplug done", "devices", n, "took", time.Since(start).Round(time.Millisecond))
}

// agentOnce finds the media, sets up the network and serves the daemon.
func agentOnce(ctx context.Context, log *slog.Logger, logs *client.LogBuffer, console io.Writer, d deps, st *bootState) error {
	mctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	dev, err := media.Find(mctx, func() ([]string, error) { return media.Candidates("/dev") }, media.Label, 250*time.Millisecond)
	cancel()
	if err != nil {
		return err
	}
	log.Info("media found", "device", dev)
	if err := unix.Unmount(mediaDir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		log.Warn("unmount old media", "err", err)
	}
	if err := media.Mount(dev, mediaDir); err != nil {
		return err
	}
	cfg, err := media.Load(os.DirFS(mediaDir))
	if err != nil {
		return err
	}
	log.Info("config read", "config", cfg)
	if cfg.Network == nil {
		log.Warn("no network_data.json on the media: leaving the network as the kernel set it")
	} else {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := netsetup.Setup(nctx, cfg.Network, netsetup.Options{Log: log})
		cancel()
		switch {
		case errors.Is(err, netsetup.ErrTentative):
			log.Warn("continuing with tentative IPv6 addresses", "err", err)
		case err != nil:
			return err
		}
	}
	return serve(ctx, cfg, logs, log, console, d, st)
}
