package qemumachine

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBootSectorMatchesAppendixA(t *testing.T) {
	got, err := BootSector("METALSYNC-IMAGE-BOOTED-FROM-DISK", Halt)
	if err != nil {
		t.Fatal(err)
	}
	// AGENT.md Appendix A: the code, then the message at 0x7C16.
	code, _ := hex.DecodeString("31C08ED8FCBE167CBAF803AC84C07403EEEBF8F4EBFD")
	want := append(code, "\r\nMETALSYNC-IMAGE-BOOTED-FROM-DISK\r\n\x00"...)
	if !bytes.Equal(got[:len(want)], want) || got[510] != 0x55 || got[511] != 0xAA || len(got) != 512 {
		t.Errorf("boot sector:\n%x\nwant prefix\n%x", got, want)
	}
}

func TestBootSector(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		then    AfterMessage
		wantErr bool
		msgAt   int // offset of "\r\n"+msg
	}{
		{name: "power off", msg: "X", then: PowerOff, msgAt: 0x1D},
		{name: "too long", msg: strings.Repeat("x", 490), wantErr: true},
		{name: "NUL", msg: "a\x00b", wantErr: true},
		{name: "unknown after", msg: "x", then: AfterMessage(9), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BootSector(tt.msg, tt.then)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if at := 0x7C00 + tt.msgAt; int(got[6])|int(got[7])<<8 != at {
				t.Errorf("mov si points at %#x, want %#x", int(got[6])|int(got[7])<<8, at)
			}
			if !bytes.HasPrefix(got[tt.msgAt:], []byte("\r\n"+tt.msg+"\r\n\x00")) {
				t.Errorf("message not at %#x: %q", tt.msgAt, got[tt.msgAt:tt.msgAt+8])
			}
		})
	}
}

func TestBootOrder(t *testing.T) {
	tests := []struct {
		first BootDevice
		disks int
		nic   bool
		want  map[string]int
	}{
		{BootDisk, 2, true, map[string]int{"disk0": 0, "disk1": 1, "cd0": 2, "net0": 3}},
		{BootCD, 2, true, map[string]int{"cd0": 0, "disk0": 1, "disk1": 2, "net0": 3}},
		{BootPXE, 1, true, map[string]int{"net0": 0, "disk0": 1, "cd0": 2}},
		{BootCD, 0, false, map[string]int{"cd0": 0}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, bootOrder(tt.first, tt.disks, tt.nic)); diff != "" {
			t.Errorf("bootOrder(%s, %d, %v) (-want +got):\n%s", tt.first, tt.disks, tt.nic, diff)
		}
	}
}

func TestArgs(t *testing.T) {
	f := files{qmpSock: "/s/qmp", serialSock: "/s/serial", disks: []string{"/d/a,b.raw"}, ovmfCode: "/o/code.fd", ovmfVars: "/d/vars.fd"}
	tests := []struct {
		name   string
		cfg    Config
		want   []string // each must appear, in this order
		absent []string
	}{
		{
			name: "bios",
			cfg:  Config{MemoryMiB: 1024, CPUs: 1, Disks: []Disk{{Serial: "S1"}}},
			want: []string{"-accel tcg", "-machine pc", "-m 1024", "-nodefaults", "-no-shutdown", "-S",
				"-device virtio-blk-pci,drive=disk0drv,id=disk0,bootindex=0,serial=S1",
				"-drive if=none,id=disk0drv,file=/d/a,,b.raw,format=raw",
				"-device ide-cd,bus=ide.0,drive=cd0drv,id=cd0,bootindex=1"},
			absent: []string{"pflash", "-netdev"},
		},
		{
			name: "secure boot with a NIC",
			cfg: Config{Firmware: UEFISecureBoot, MemoryMiB: 512, CPUs: 2, MAC: "52:54:00:00:00:01",
				Forwards: []Forward{{Guest: netip.MustParseAddrPort("10.0.2.100:8443"), HostPort: 9443}}},
			want: []string{"-machine q35,smm=on", "-smp 2",
				"-drive if=pflash,format=raw,unit=0,readonly=on,file=/o/code.fd",
				"-global driver=cfi.pflash01,property=secure,value=on",
				"guestfwd=tcp:10.0.2.100:8443-cmd:/bin/bash -c \"exec 3<>/dev/tcp/127.0.0.1/9443",
				"restrict=on",
				"virtio-net-pci,netdev=net0drv,mac=52:54:00:00:00:01,id=net0,bootindex=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := f
			if len(tt.cfg.Disks) == 0 {
				fs.disks = nil
			}
			line := strings.Join(args(tt.cfg, fs), " ")
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("command line lacks %q:\n%s", w, line)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(line, a) {
					t.Errorf("command line has %q:\n%s", a, line)
				}
			}
		})
	}
}

func TestConfigRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{}},
		{"bad mac", Config{Dir: "/x", MAC: "nope"}},
		{"forward to the gateway", Config{Dir: "/x", MAC: "52:54:00:00:00:01", Forwards: []Forward{{Guest: netip.MustParseAddrPort("10.0.2.2:80"), HostPort: 80}}}},
		{"forward off the slirp net", Config{Dir: "/x", MAC: "52:54:00:00:00:01", Forwards: []Forward{{Guest: netip.MustParseAddrPort("192.168.1.1:80"), HostPort: 80}}}},
		{"forward without a NIC", Config{Dir: "/x", Forwards: []Forward{{Guest: netip.MustParseAddrPort("10.0.2.100:80"), HostPort: 80}}}},
		{"negative disk", Config{Dir: "/x", Disks: []Disk{{Size: -1}}}},
		{"firmware", Config{Dir: "/x", Firmware: Firmware(7)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.setDefaults(); err == nil {
				t.Error("accepted")
			}
		})
	}
}
