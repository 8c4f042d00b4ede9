package hints

import (
	"errors"
	"testing"

	"metalsync.dev/metalsync/agentapi"
)

const gib = int64(1) << 30

var disks = []agentapi.Disk{
	{Name: "/dev/sdb", SizeBytes: 100 * gib, Model: "Samsung SSD 860", Vendor: "ATA", Serial: "S3Z8", WWN: "0x5002538e4095a4b2", HCTL: "1:0:0:0"},
	{Name: "/dev/sda", SizeBytes: 500 * gib, Model: "ST500", Vendor: "SEAGATE", Serial: "ZA1", WWN: "0x5000c500a1b2c3d4", HCTL: "0:0:0:0", Rotational: true},
	{Name: "/dev/sdc", SizeBytes: 100 * gib, Model: "Samsung SSD 860", Vendor: "ATA", Serial: "S3Z9"},
	{Name: "/dev/sdd", SizeBytes: 2 * gib, Model: "USB DISK"},
	{Name: "/dev/nvme0n1", SizeBytes: 447*gib + 123456, Model: "INTEL SSD", Serial: "PHLJ"},
}

func TestChoose(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name    string
		hints   *agentapi.RootDeviceHints
		want    string
		wantErr bool
	}{
		{name: "no hints: smallest >= 4GiB, ties by name", want: "/dev/sdb"},
		{name: "empty hints are no hints", hints: &agentapi.RootDeviceHints{}, want: "/dev/sdb"},
		{name: "name with /dev", hints: &agentapi.RootDeviceHints{Name: "/dev/sda"}, want: "/dev/sda"},
		{name: "name without /dev", hints: &agentapi.RootDeviceHints{Name: "sdc"}, want: "/dev/sdc"},
		{name: "model: first in name order", hints: &agentapi.RootDeviceHints{Model: "Samsung SSD 860"}, want: "/dev/sdb"},
		{name: "model normalised: case and spaces", hints: &agentapi.RootDeviceHints{Model: "  samsung ssd 860 "}, want: "/dev/sdb"},
		{name: "model and serial", hints: &agentapi.RootDeviceHints{Model: "Samsung SSD 860", Serial: "S3Z9"}, want: "/dev/sdc"},
		{name: "vendor", hints: &agentapi.RootDeviceHints{Vendor: "seagate"}, want: "/dev/sda"},
		{name: "wwn", hints: &agentapi.RootDeviceHints{WWN: "0x5000c500a1b2c3d4"}, want: "/dev/sda"},
		{name: "hctl", hints: &agentapi.RootDeviceHints{HCTL: "1:0:0:0"}, want: "/dev/sdb"},
		{name: "size GiB exact", hints: &agentapi.RootDeviceHints{Size: 500}, want: "/dev/sda"},
		{name: "size not a GiB multiple never matches", hints: &agentapi.RootDeviceHints{Size: 447}, wantErr: true},
		{name: "rotational true", hints: &agentapi.RootDeviceHints{Rotational: &yes}, want: "/dev/sda"},
		{name: "rotational false", hints: &agentapi.RootDeviceHints{Rotational: &no}, want: "/dev/nvme0n1"},
		{name: "all hints must match", hints: &agentapi.RootDeviceHints{Vendor: "ATA", Size: 500}, wantErr: true},
		{name: "empty device value never matches", hints: &agentapi.RootDeviceHints{WWN: "0x1"}, wantErr: true},
		{name: "prefix is not equality", hints: &agentapi.RootDeviceHints{Model: "Samsung"}, wantErr: true},
		{name: "negative size", hints: &agentapi.RootDeviceHints{Size: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Choose(disks, tt.hints)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Choose = %s, want an error", got.Name)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tt.want {
				t.Errorf("Choose = %s, want %s", got.Name, tt.want)
			}
		})
	}
}

func TestChooseNoDiskBigEnough(t *testing.T) {
	_, err := Choose([]agentapi.Disk{{Name: "/dev/sda", SizeBytes: 4*gib - 512}}, nil)
	if !errors.Is(err, ErrNoMatch) {
		t.Fatalf("err = %v, want ErrNoMatch", err)
	}
}
