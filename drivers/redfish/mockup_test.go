package redfish_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/redfish"
	"metalsync.dev/metalsync/sim/mockupserver"
)

const (
	mockUser = "operator"
	mockPass = "mock-pw-123"
)

// serveMockup serves one mockup with credentials enforced.
func serveMockup(t *testing.T, name string, opts mockupserver.Options) (*mockupserver.Server, *httptest.Server) {
	t.Helper()
	if opts.Username == "" && !opts.NoSessions {
		opts.Username, opts.Password = mockUser, mockPass
	}
	m, err := mockupserver.Open(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(m)
	t.Cleanup(ts.Close)
	return m, ts
}

func mockConfig(t *testing.T, base string) drivers.Config {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return drivers.Config{Endpoint: u, Username: mockUser, Password: mockPass}
}

func openMock(t *testing.T, cfg drivers.Config) *redfish.BMC {
	t.Helper()
	b, err := redfish.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b.(*redfish.BMC)
}

func TestInventoryMockups(t *testing.T) {
	towerDisk := func(id string, nvme bool) drivers.Disk {
		if nvme {
			return drivers.Disk{ID: id, Model: "NVMe 1000", SizeBytes: 1125899906842624, Media: "SSD", Protocol: "NVMe"}
		}
		return drivers.Disk{ID: id, Model: "SAS 18000", SizeBytes: 20266198323167230, Media: "HDD", Protocol: "SAS", Rotational: true}
	}
	towerCPU := drivers.CPU{Model: "Intel(R) Xeon(R) Gold 5218 2.3GHz", Cores: 16, Threads: 32, Arch: "x86-64"}
	localDisk := func(id, serial string) drivers.Disk {
		return drivers.Disk{ID: id, Model: "C123", Serial: serial, SizeBytes: 899527000064, Media: "HDD", Protocol: "SAS", Rotational: true}
	}
	const uuid = "38947555-7742-3448-3784-823347823834"
	tests := []struct {
		mockup string
		want   drivers.Inventory
	}{
		{"public-rackmount1", drivers.Inventory{
			System:    drivers.SystemInfo{Manufacturer: "Contoso", Model: "3500", Serial: "437XR1138R2", UUID: uuid, BIOSVersion: "P79 v1.45 (12/06/2017)"},
			CPUs:      []drivers.CPU{{Model: "Multi-Core Intel(R) Xeon(R) processor 7xxx Series", Cores: 8, Threads: 16, Arch: "x86-64"}},
			MemoryMiB: 96 * 1024,
			// SimpleStorage: the two present devices of four bays.
			Disks: []drivers.Disk{
				{ID: "1/SATA Bay 1", Model: "3000GT8", SizeBytes: 8000000000000},
				{ID: "1/SATA Bay 2", Model: "3000GT7", SizeBytes: 4000000000000},
			},
			// VLAN1 is a virtual interface: not hardware. The second NIC
			// reports its current MAC, not the permanent one.
			NICs: []drivers.NIC{
				{ID: "12446A3B0411", MAC: "12:44:6a:3b:04:11", SpeedMbps: 1000, LinkStatus: "LinkUp"},
				{ID: "12446A3B8890", MAC: "aa:bb:cc:dd:ee:00", SpeedMbps: 1000, LinkStatus: "LinkUp"},
				{ID: "ToManager", MAC: "aa:bb:cc:dd:ee:fe", SpeedMbps: 100},
			},
			Firmware: []drivers.Firmware{{Component: "BMC", Version: "1.45.455b66-rev4"}, {Component: "SS", Version: "2.50"}, {Component: "BIOS", Version: "P79 v1.45"}},
		}},
		{"public-tower", drivers.Inventory{
			System:    drivers.SystemInfo{Manufacturer: "Contoso", Model: "3500", Serial: "437XR1238R2", UUID: uuid, BIOSVersion: "P79 v1.95 (12/06/2019)"},
			CPUs:      []drivers.CPU{towerCPU, towerCPU, towerCPU, towerCPU, towerCPU, towerCPU, towerCPU, towerCPU},
			MemoryMiB: 1024 * 1024,
			// Drives have no Id: their URL names them. Absent bays are left
			// out, and each drive is listed once.
			Disks: []drivers.Disk{
				towerDisk("M.2-1", true), towerDisk("M.2-2", true),
				towerDisk("Disk-1-0", false), towerDisk("Disk-1-1", false), towerDisk("Disk-1-2", false), towerDisk("Disk-1-3", false),
				towerDisk("Disk-2-0", true), towerDisk("Disk-2-1", true), towerDisk("Disk-2-2", true), towerDisk("Disk-2-3", true),
			},
			NICs: []drivers.NIC{
				{ID: "1", MAC: "fb:aa:1d:4e:d0:7a", SpeedMbps: 10000},
				{ID: "2", MAC: "fb:aa:1d:4e:d0:7c", SpeedMbps: 10000},
			},
			Firmware: []drivers.Firmware{{Component: "BMC", Version: "1.45.455b66-rev4"}, {Component: "BIOS", Version: "P79 v1.45"}},
		}},
		{"public-localstorage", drivers.Inventory{
			System:    drivers.SystemInfo{Manufacturer: "Contoso", Model: "3500RX", Serial: "437XR1138R2", UUID: uuid, BIOSVersion: "P79 v1.33 (02/28/2015)"},
			CPUs:      []drivers.CPU{{Model: "Multi-Core Intel(R) Xeon(R) processor 7xxx Series", Cores: 8, Threads: 16, Arch: "x86-64"}},
			MemoryMiB: 96 * 1024,
			Disks: []drivers.Disk{
				localDisk("35D38F11ACEF7BD3", "1234567"), localDisk("3F5A8C54207B7233", "1234569"),
				localDisk("32ADF365C6C1B7BD", "1234570"), localDisk("3D58ECBC375FD9F2", "1234568"),
			},
			NICs: []drivers.NIC{
				{ID: "1", MAC: "12:44:6a:3b:04:11", SpeedMbps: 1000, LinkStatus: "LinkUp"},
				{ID: "2", MAC: "aa:bb:cc:dd:ee:00", SpeedMbps: 1000, LinkStatus: "LinkUp"},
			},
			// No UpdateService: the BIOS version of the system and the
			// manager's firmware.
			Firmware: []drivers.Firmware{{Component: "BIOS", Version: "P79 v1.33 (02/28/2015)"}, {Component: "BMC", Version: "1.00"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.mockup, func(t *testing.T) {
			m, ts := serveMockup(t, tc.mockup, mockupserver.Options{})
			b := openMock(t, mockConfig(t, ts.URL))
			got, err := b.Inventory(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Inventory (-want +got):\n%s", diff)
			}
			for _, r := range m.Requests() {
				if r.Method != http.MethodGet && !(r.Method == http.MethodPost && r.Path == "/redfish/v1/SessionService/Sessions") {
					t.Errorf("inventory sent %s %s: it must only read", r.Method, r.Path)
				}
			}
		})
	}
}
