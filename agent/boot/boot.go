// Package boot does the deploy agent's PID 1 duties: it mounts the
// kernel's pseudo file systems, reaps orphaned processes, and loads
// kernel modules (coldplug, hotplug, a fixed list, and the kernel's own
// request_module calls, for which the agent binary acts as modprobe).
package boot

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ModulesList is the file of modules loaded at every boot, one a line.
const ModulesList = "/etc/modules-load.list"

type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	// optional mounts are made only where the kernel offers them.
	optional bool
}

var mounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", false},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", false},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", false},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", false},
	{"securityfs", "/sys/kernel/security", "securityfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", true},
	{"efivarfs", "/sys/firmware/efi/efivars", "efivarfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", true},
}

// MountAll mounts proc, sysfs, devtmpfs, /run, and securityfs and efivarfs
// when the kernel has them (efivarfs only on UEFI boots). What is already
// mounted is left alone.
func MountAll(log *slog.Logger) error {
	for _, m := range mounts {
		if m.optional {
			// The mount point exists only when sysfs offers the feature.
			if _, err := os.Stat(m.target); err != nil {
				continue
			}
		} else if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.target, err)
		}
		err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
		switch {
		case err == nil:
			log.Debug("mounted", "fs", m.fstype, "on", m.target)
		case errors.Is(err, unix.EBUSY):
		case m.optional:
			log.Warn("optional mount failed", "fs", m.fstype, "on", m.target, "err", err)
		default:
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// KernelRelease is uname -r.
func KernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// ModulesDir is /lib/modules/<release>.
func ModulesDir() (string, error) {
	r, err := KernelRelease()
	if err != nil {
		return "", err
	}
	return filepath.Join("/lib/modules", r), nil
}

// InstallModprobe makes the kernel call self for request_module(): it
// links link (/sbin/modprobe) to self and writes link to
// /proc/sys/kernel/modprobe. The kernel passes the path it runs as
// argv[0], so the binary knows by its name to act as modprobe.
func InstallModprobe(self, link string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("modprobe helper: %w", err)
	}
	if err := os.Symlink(self, link); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("modprobe helper: %w", err)
	}
	if err := os.WriteFile("/proc/sys/kernel/modprobe", []byte(link+"\n"), 0o644); err != nil {
		return fmt.Errorf("modprobe helper: %w", err)
	}
	return nil
}

// IsModprobe reports whether args (os.Args) ask for modprobe: by the
// program's name, or "modprobe" as the first argument.
func IsModprobe(args []string) bool {
	return len(args) > 0 && filepath.Base(args[0]) == "modprobe" ||
		len(args) > 1 && args[1] == "modprobe"
}

// ParseModprobeArgs takes the arguments after the program name (and after
// a "modprobe" first argument) and returns the names to load and whether
// to be quiet. It accepts what the kernel passes (-q -- NAME) and the
// common -q, -v, -b, -s flags; other flags are errors.
func ParseModprobeArgs(args []string) (names []string, quiet bool, err error) {
	if len(args) > 0 && args[0] == "modprobe" {
		args = args[1:]
	}
	flags := true
	for _, a := range args {
		switch {
		case flags && a == "--":
			flags = false
		case flags && strings.HasPrefix(a, "-") && len(a) > 1:
			for _, c := range a[1:] {
				switch c {
				case 'q':
					quiet = true
				case 'v', 'b', 's':
				default:
					return nil, false, fmt.Errorf("modprobe: unsupported option %q", a)
				}
			}
		default:
			names = append(names, a)
		}
	}
	if len(names) == 0 {
		return nil, false, errors.New("modprobe: no module named")
	}
	return names, quiet, nil
}

// Modprobe runs the modprobe personality with args (os.Args[1:]) and
// returns the exit code. It logs to stderr unless quiet: the kernel's
// request_module() has no one reading it.
func Modprobe(args []string) int {
	names, quiet, err := ParseModprobeArgs(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := ModulesDir()
	if err == nil {
		var mods *Modules
		if mods, err = ReadModules(dir); err == nil {
			l := NewLoader(mods, nil)
			for _, n := range names {
				if lerr := l.Load(n); lerr != nil {
					err = lerr
					break
				}
			}
		}
	}
	if err != nil {
		if !quiet {
			fmt.Fprintln(os.Stderr, "modprobe:", err)
		}
		return 1
	}
	return 0
}
