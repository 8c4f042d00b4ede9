package qemumachine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/sim/qemumachine"
	"metalsync.dev/metalsync/sim/qemumachine/qemutest"
)

// TestMachineVMUEFIBootOrder checks that OVMF honours a runtime bootindex
// change at the next reset, with and without Secure Boot. Nothing here is
// UEFI-bootable, so OVMF reports each boot option it fails to load, in
// the order it tries them: the first names the device put first. About
// 10-20 s per boot under TCG, so opt-in: METALSYNC_E2E_UEFI=1.
func TestMachineVMUEFIBootOrder(t *testing.T) {
	if os.Getenv("METALSYNC_E2E_UEFI") != "1" {
		t.Skip("set METALSYNC_E2E_UEFI=1 to run the UEFI boot order test (about 80 s)")
	}
	for _, fw := range []qemumachine.Firmware{qemumachine.UEFI, qemumachine.UEFISecureBoot} {
		t.Run(fw.String(), func(t *testing.T) {
			dir := t.TempDir()
			disk := qemutest.DiskImage(t, filepath.Join(dir, "os.raw"), qemutest.DiskMarker, qemumachine.Halt)
			iso := qemutest.BootISO(t, dir, qemutest.CDMarker)
			m := qemutest.Start(t, qemumachine.Config{Dir: dir, Firmware: fw, Disks: []qemumachine.Disk{{Path: disk}}, MAC: "52:54:00:12:34:58"})
			ctx, cancel := context.WithTimeout(context.Background(), 3*qemutest.BootTimeout)
			defer cancel()
			if err := m.InsertMedia(ctx, iso); err != nil {
				t.Fatal(err)
			}
			for _, tt := range []struct {
				first qemumachine.BootDevice
				want  string // in OVMF's boot option name
			}{
				{qemumachine.BootCD, `"UEFI QEMU DVD-ROM`},
				{qemumachine.BootDisk, `"UEFI Misc Device"`}, // virtio-blk
				{qemumachine.BootPXE, `"UEFI PXEv4`},
			} {
				if err := m.SetBootOrder(ctx, tt.first); err != nil {
					t.Fatal(err)
				}
				from := len(m.Console())
				start := time.Now()
				if err := m.Reset(ctx); err != nil {
					t.Fatal(err)
				}
				i, err := m.WaitConsole(ctx, "BdsDxe: failed to load", from)
				if err != nil {
					t.Fatal(err)
				}
				line := m.Console()[i]
				t.Logf("%s first: %v to %q", tt.first, time.Since(start).Round(time.Millisecond), line[strings.Index(line, "BdsDxe"):])
				if !strings.Contains(line, tt.want) {
					t.Errorf("%s first: OVMF tried %q first, want %s", tt.first, line, tt.want)
				}
				if err := m.PowerOff(ctx, true); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
