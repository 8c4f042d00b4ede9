package hw

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/agentapi"
)

// writeTree creates files (path → content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func fakeRoots(t *testing.T) Roots {
	root := t.TempDir()
	r := Roots{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc"), Dev: filepath.Join(root, "dev")}
	vpd := "\x00\x80\x00\x14" + "  S3Z8NB0K123456     "
	writeTree(t, root, map[string]string{
		"proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n\n" +
			"processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n\n",
		"proc/meminfo": "MemTotal:       24576000 kB\nMemFree:        1000 kB\n",
		// SATA SSD behind libata: SCSI fields, VPD serial, NAA wwid.
		"sys/block/sda/size":                           "937703088\n",
		"sys/block/sda/removable":                      "0\n",
		"sys/block/sda/queue/rotational":               "0\n",
		"sys/block/sda/device/model":                   "Samsung SSD 860 \n",
		"sys/block/sda/device/vendor":                  "ATA     \n",
		"sys/block/sda/device/vpd_pg80":                vpd,
		"sys/block/sda/device/wwid":                    "naa.5002538E4095A4B2\n",
		"sys/block/sda/device/scsi_device/0:0:0:0/dev": "",
		"sys/block/sda/sda1/start":                     "2048\n",
		"sys/block/sda/sda1/size":                      "1048576\n",
		"sys/block/sda/sda2/start":                     "1050624\n",
		"sys/block/sda/sda2/size":                      "2097152\n",
		// virtio disk: serial in the block dir, rotational by default.
		"sys/block/vda/size":             "20971520\n",
		"sys/block/vda/serial":           "disk-0001\n",
		"sys/block/vda/queue/rotational": "1\n",
		// NVMe: serial and eui wwid on the controller/namespace.
		"sys/block/nvme0n1/size":             "7814037168\n",
		"sys/block/nvme0n1/device/model":     "INTEL SSDPE2KX040T8                     \n",
		"sys/block/nvme0n1/device/serial":    "PHLJ9123456784P0DGN \n",
		"sys/block/nvme0n1/wwid":             "eui.01000000000000005cd2e4a1b2c3d4e5\n",
		"sys/block/nvme0n1/queue/rotational": "0\n",
		// Not disks.
		"sys/block/loop0/size": "1000\n",
		"sys/block/sr0/size":   "1000\n",
		"sys/block/md127/size": "1000\n",
		"sys/block/dm-0/size":  "1000\n",
		"sys/block/zram0/size": "1000\n",
		"sys/block/ram0/size":  "1000\n",
		"sys/block/sdz/size":   "0\n", // empty card reader
		// Odd content: garbage size → size 0 → skipped, no panic.
		"sys/block/sdy/size": "lots\n",
		// BMC virtual media presented as a USB disk.
		"sys/block/sdb/size":      "68000\n",
		"sys/block/sdb/removable": "1\n",
		// NICs.
		"sys/class/net/lo/address":                  "00:00:00:00:00:00\n",
		"sys/class/net/eno1/address":                "3C:EC:EF:01:02:03\n",
		"sys/class/net/eno1/carrier":                "1\n",
		"sys/class/net/eno1/operstate":              "up\n",
		"sys/class/net/eno1/speed":                  "10000\n",
		"sys/class/net/eno1/device/vendor":          "0x8086\n",
		"sys/class/net/eno2/address":                "3c:ec:ef:01:02:04\n",
		"sys/class/net/eno2/operstate":              "down\n",
		"sys/class/net/eno2/speed":                  "-1\n",
		"sys/class/net/eno2/device/vendor":          "0x8086\n",
		"sys/class/net/bond0/address":               "3c:ec:ef:01:02:03\n",
		"sys/class/net/bond0/operstate":             "up\n",
		"sys/firmware/efi/efivars/" + SecureBootVar: "\x06\x00\x00\x00\x01",
	})
	// The boot media device node holds an ISO 9660 PVD labelled config-2.
	iso := make([]byte, 16*2048+2048)
	pvd := iso[16*2048:]
	pvd[0] = 1
	copy(pvd[1:6], "CD001")
	copy(pvd[40:72], "config-2                        ")
	writeTree(t, root, map[string]string{"dev/sdb": string(iso)})
	return r
}

func TestInventory(t *testing.T) {
	r := fakeRoots(t)
	got, err := Inventory(r)
	if err != nil {
		t.Fatal(err)
	}
	want := agentapi.Inventory{
		CPUs:       2,
		CPUModel:   "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz",
		MemoryMiB:  24000,
		BootMode:   "uefi",
		SecureBoot: true,
		Disks: []agentapi.Disk{
			{Name: "/dev/nvme0n1", SizeBytes: 7814037168 * 512, Model: "INTEL SSDPE2KX040T8", Serial: "PHLJ9123456784P0DGN", WWN: "eui.01000000000000005cd2e4a1b2c3d4e5"},
			{Name: "/dev/sda", SizeBytes: 937703088 * 512, Model: "Samsung SSD 860", Vendor: "ATA", Serial: "S3Z8NB0K123456", WWN: "0x5002538e4095a4b2", HCTL: "0:0:0:0"},
			{Name: "/dev/vda", SizeBytes: 20971520 * 512, Serial: "disk-0001", Rotational: true},
		},
		NICs: []agentapi.NIC{
			{Name: "eno1", MAC: "3c:ec:ef:01:02:03", Link: true, SpeedMbps: 10000},
			{Name: "eno2", MAC: "3c:ec:ef:01:02:04"},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("inventory (-want +got):\n%s", d)
	}
}

func TestDisksPartitions(t *testing.T) {
	r := fakeRoots(t)
	disks, err := Disks(r)
	if err != nil {
		t.Fatal(err)
	}
	var sda Disk
	for _, d := range disks {
		if d.Dev == "sda" {
			sda = d
		}
	}
	want := []Partition{
		{Dev: "sda1", Path: filepath.Join(r.Dev, "sda1"), StartSector: 2048, Sectors: 1048576},
		{Dev: "sda2", Path: filepath.Join(r.Dev, "sda2"), StartSector: 1050624, Sectors: 2097152},
	}
	if d := cmp.Diff(want, sda.Partitions); d != "" {
		t.Errorf("partitions (-want +got):\n%s", d)
	}
	if sda.Path != filepath.Join(r.Dev, "sda") {
		t.Errorf("path = %q", sda.Path)
	}
}

func TestInventoryBIOSAndMissingProc(t *testing.T) {
	root := t.TempDir()
	r := Roots{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc"), Dev: filepath.Join(root, "dev")}
	writeTree(t, root, map[string]string{"sys/block/vda/size": "100\n", "sys/class/net/.keep": ""})
	inv, err := Inventory(r)
	if err == nil {
		t.Fatal("want an error naming the missing cpu info")
	}
	if inv.BootMode != "bios" || len(inv.Disks) != 1 {
		t.Errorf("partial inventory = %+v", inv)
	}
}

func TestVPDSerialOddContent(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]string{
		"empty":       "",
		"short":       "\x00\x80",
		"wrong page":  "\x00\x83\x00\x04abcd",
		"long length": "\x00\x80\xff\xffabc",
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
			got := vpdSerial(p)
			if name == "long length" && got != "abc" {
				t.Errorf("serial = %q, want abc", got)
			}
			if name != "long length" && got != "" {
				t.Errorf("serial = %q, want empty", got)
			}
		})
	}
}
