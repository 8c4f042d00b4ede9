package boot

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Reap collects orphans re-parented to PID 1 until ctx ends. A blind
// wait(-1) would steal the exit status of children os/exec is about to
// Wait for (mdadm run by the disk steps), so it reaps only a zombie child
// it has already seen as a zombie one interval ago: os/exec waits for its
// own children at once.
func Reap(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	var prev map[int]bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		prev = reapStale("/proc", os.Getpid(), prev, log)
	}
}

// reapStale reaps the zombie children of self found in prev too, and
// returns the zombies found now.
func reapStale(proc string, self int, prev map[int]bool, log *slog.Logger) map[int]bool {
	now := map[int]bool{}
	for _, pid := range zombieChildren(proc, self) {
		if !prev[pid] {
			now[pid] = true
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
			log.Debug("reaped orphan", "pid", pid, "status", ws.ExitStatus())
		}
	}
	return now
}

// zombieChildren lists the zombie processes whose parent is self, from
// /proc/<pid>/stat ("pid (comm) S ppid ...").
func zombieChildren(proc string, self int) []int {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "stat"))
		if err != nil {
			continue
		}
		// comm may hold spaces and parentheses: fields follow the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 2 || string(f[0]) != "Z" {
			continue
		}
		if ppid, err := strconv.Atoi(string(f[1])); err == nil && ppid == self {
			out = append(out, pid)
		}
	}
	return out
}
