//go:build unix

package lease

import (
	"errors"
	"os"
	"strings"
	"syscall"
)

// localMachine names this process's machine and process namespace, so
// that a pid in a lease record is only ever checked where it means the same
// process: the host name, the kernel's boot id (a reboot starts pids over)
// and the pid namespace (containers share host names). "" where any of
// them cannot be read: then no lease is ever judged orphaned.
func localMachine() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return ""
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return host + "/" + strings.TrimSpace(string(boot)) + "/" + ns
}

// processGone reports whether no process pid exists (on this machine).
// A pid reused by another process reads as alive: the safe mistake.
func processGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}
