package boot

import (
	"log/slog"
	"strconv"

	"golang.org/x/sys/unix"
)

func waitExitedNoReap(pid int) error {
	var info unix.Siginfo
	return unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func itoa(i int) string { return strconv.Itoa(i) }
