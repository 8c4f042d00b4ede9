// Package qemumachine runs one emulated x86 machine with QEMU for tests
// and demos: the host a simulated BMC (sim/redfishsim) powers, boots and
// inserts virtual media into.
//
// The machine always runs under TCG (-accel tcg: /dev/kvm is broken on
// the project's machines), with no display and -no-shutdown. Power "off"
// is a stopped CPU in a live QEMU process: Start leaves it stopped (-S),
// PowerOn resets it to firmware and lets it run, PowerOff stops it (or
// presses the ACPI power button), and a guest that powers itself off is
// stopped by QEMU. Keeping the process means the CD, the QMP connection
// and the logs survive power changes, as a BMC's state does, and power-on
// costs a reset instead of a QEMU start.
//
//	m, err := qemumachine.Start(ctx, qemumachine.Config{
//		Dir:   dir, // console.log, qmp.log, qemu.log, created disks
//		Disks: []qemumachine.Disk{{Path: "os.raw"}, {Size: 8 << 30}},
//		MAC:   "52:54:00:12:34:56",
//		Forwards: []qemumachine.Forward{{Guest: netip.MustParseAddrPort("10.0.2.100:8443"), HostPort: 8443}},
//	})
//	defer m.Close()
//	m.InsertMedia(ctx, "agent.iso")
//	m.SetBootOrder(ctx, qemumachine.BootCD) // read by the firmware at the next power-on or reset
//	m.PowerOn(ctx)
//	m.WaitConsole(ctx, "METALSYNC-CD-BOOTED", 0)
//
// Devices: virtio disks disk0, disk1, ...; an IDE CD drive cd0 (on q35 on
// the AHCI bus); an optional virtio NIC net0 on slirp with restrict=on, so
// the guest reaches nothing but the host loopback ports of its Forwards.
// The boot order is set with qom-set of each device's bootindex; SeaBIOS
// and OVMF (with or without Secure Boot) both apply it at the next reset
// (TestMachineVMUEFIBootOrder).
//
// Every QMP command, answer and event is appended to qmp.log and the
// serial console to console.log: they are the artifacts of a failed test.
// BootSector builds the cheapest test OS, a boot sector that prints a
// marker; package qemutest builds disks and CDs from it.
package qemumachine
