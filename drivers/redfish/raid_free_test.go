package redfish_test

import (
	"testing"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/sim/redfishsim"
)

// TestCreateVolumeWithoutDrives: a logical disk that names no drives (as
// Ironic's RAID config may) takes the controller's free drives; once all
// are used, the next one fails with a clear error.
func TestCreateVolumeWithoutDrives(t *testing.T) {
	_, l := newSim(t, redfishsim.Systems(1, redfishsim.SystemConfig{}))
	b := openSim(t, simConfig(t, l, "sys-0001"))
	defer b.Close(t.Context())
	v, err := b.CreateVolume(t.Context(), drivers.VolumeSpec{Name: "data", RAIDLevel: "RAID6"})
	if err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	if len(v.Drives) != 4 {
		t.Errorf("volume has drives %v, want all 4 of the simulator's", v.Drives)
	}
	_, err = b.CreateVolume(t.Context(), drivers.VolumeSpec{Name: "more", RAIDLevel: "RAID0"})
	if err == nil {
		t.Fatal("second volume without free drives succeeded")
	}
	if want := `redfish: create volume "more": no drives named, and no RAID controller has free drives`; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}
