package boot

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Hotplug loads drivers for devices that appear later (USB media behind a
// hub that enumerates after coldplug, disks behind a freshly loaded HBA):
// it listens to the kernel's uevents and loads the MODALIAS of each "add"
// until ctx ends. Start it before Coldplug so nothing falls between.
func (l *Loader) Hotplug(ctx context.Context) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return fmt.Errorf("uevent socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("uevent bind: %w", err)
	}
	// A non-blocking fd in an os.File uses the runtime poller, so Close
	// ends a pending Read.
	f := os.NewFile(uintptr(fd), "uevent")
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				if ctx.Err() == nil {
					l.log.Warn("uevents ended", "err", err)
				}
				return
			}
			if alias := ueventModalias(buf[:n]); alias != "" {
				if err := l.Load(alias); err != nil {
					l.log.Debug("no driver for hotplugged device", "modalias", alias, "err", err)
				}
			}
		}
	}()
	return nil
}

// ueventModalias returns the MODALIAS of an "add" uevent
// ("add@/devices/...\0ACTION=add\0...MODALIAS=...\0").
func ueventModalias(msg []byte) string {
	var action, alias string
	for _, f := range bytes.Split(msg, []byte{0}) {
		switch {
		case bytes.HasPrefix(f, []byte("ACTION=")):
			action = string(f[len("ACTION="):])
		case bytes.HasPrefix(f, []byte("MODALIAS=")):
			alias = string(f[len("MODALIAS="):])
		}
	}
	if action != "add" {
		return ""
	}
	return alias
}
