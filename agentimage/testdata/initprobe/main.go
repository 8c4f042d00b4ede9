// Command initprobe is a test /init: it says INITPROBE-OK on the serial
// port and the console, then powers the machine off.
package main

import (
	"os"
	"syscall"
)

var version = "none"

func main() {
	// devtmpfs is not mounted for an initramfs; /dev/console is in the
	// archive, /dev/ttyS0 is not.
	_ = syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	msg := []byte("\nINITPROBE-OK version=" + version + "\n")
	for _, p := range []string{"/dev/ttyS0", "/dev/console"} {
		if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			f.Write(msg)
			f.Close()
		}
	}
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
