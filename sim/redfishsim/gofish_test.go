package redfishsim

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

// TestGofishReadsEverything connects with gofish (session login) and reads
// every resource the simulator exposes, through gofish's own types.
func TestGofishReadsEverything(t *testing.T) {
	sim := newTestSim(t, Config{Systems: []SystemConfig{
		{ID: "sys-0001", PoweredOn: true, Media: MediaActions},
		{ID: "sys-0002", Media: MediaPatch},
	}})
	c, err := gofish.ConnectContext(context.Background(), gofish.ClientConfig{
		Endpoint: sim.url, Username: "admin", Password: "password", ReuseConnections: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	if sim.Sessions("") != 1 {
		t.Errorf("gofish did not log in with a session: %d sessions", sim.Sessions(""))
	}

	type nic struct{ ID, MAC string }
	type drive struct {
		ID    string
		Bytes int64
		Media string
	}
	type view struct {
		ID, Power, BootTarget, Serial, UUID string
		CPUs, Cores, Threads                int
		MemoryGiB                           float64
		DIMMs                               int
		NICs                                []nic
		Drives                              []drive
		Volumes                             int
		BIOS                                any
		Media                               []string
		MediaInsert                         []bool
		Chassis, Manager                    string
	}
	systems, err := c.Service.Systems()
	if err != nil {
		t.Fatal(err)
	}
	var got []view
	for _, s := range systems {
		v := view{ID: s.ID, Power: string(s.PowerState), BootTarget: string(s.Boot.BootSourceOverrideTarget),
			Serial: s.SerialNumber, UUID: s.UUID, MemoryGiB: *s.MemorySummary.TotalSystemMemoryGiB}
		procs, err := s.Processors()
		if err != nil {
			t.Fatal(err)
		}
		v.CPUs = len(procs)
		for _, p := range procs {
			v.Cores += int(*p.TotalCores)
			v.Threads += int(*p.TotalThreads)
		}
		mem, err := s.Memory()
		if err != nil {
			t.Fatal(err)
		}
		v.DIMMs = len(mem)
		nics, err := s.EthernetInterfaces()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nics {
			v.NICs = append(v.NICs, nic{n.ID, n.MACAddress})
		}
		storage, err := s.Storage()
		if err != nil || len(storage) != 1 {
			t.Fatalf("storage: %v, %d", err, len(storage))
		}
		drives, err := storage[0].Drives()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range drives {
			v.Drives = append(v.Drives, drive{d.ID, int64(*d.CapacityBytes), string(d.MediaType)})
		}
		vols, err := storage[0].Volumes()
		if err != nil {
			t.Fatal(err)
		}
		v.Volumes = len(vols)
		bios, err := s.Bios()
		if err != nil {
			t.Fatal(err)
		}
		v.BIOS = bios.Attributes["ProcHyperthreading"]
		chassis, err := s.Chassis()
		if err != nil || len(chassis) != 1 {
			t.Fatalf("chassis: %v", err)
		}
		v.Chassis = chassis[0].ID
		managers, err := s.ManagedBy()
		if err != nil || len(managers) != 1 {
			t.Fatalf("managers: %v", err)
		}
		v.Manager = managers[0].ID
		media, err := managers[0].VirtualMedia()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range media {
			v.Media = append(v.Media, m.ID)
			v.MediaInsert = append(v.MediaInsert, m.SupportsMediaInsert)
		}
		got = append(got, v)
	}
	nics := func(i int) []nic {
		return []nic{{"NIC.1", "02:5A:00:00:0" + string(rune('0'+i)) + ":01"}, {"NIC.2", "02:5A:00:00:0" + string(rune('0'+i)) + ":02"}}
	}
	drives := []drive{{"Disk.0", 480103981056, "SSD"}, {"Disk.1", 480103981056, "SSD"}, {"Disk.2", 4000787030016, "HDD"}, {"Disk.3", 4000787030016, "HDD"}}
	want := []view{
		{ID: "sys-0001", Power: "On", BootTarget: "None", Serial: "SIM0000001", UUID: sim.systems["sys-0001"].uuid(), CPUs: 2, Cores: 64, Threads: 128,
			MemoryGiB: 256, DIMMs: 8, NICs: nics(1), Drives: drives, BIOS: "Enabled",
			Media: []string{"CD1", "RemovableDisk1"}, MediaInsert: []bool{true, true}, Chassis: "sys-0001", Manager: "sys-0001"},
		{ID: "sys-0002", Power: "Off", BootTarget: "None", Serial: "SIM0000002", UUID: sim.systems["sys-0002"].uuid(), CPUs: 2, Cores: 64, Threads: 128,
			MemoryGiB: 256, DIMMs: 8, NICs: nics(2), Drives: drives, BIOS: "Enabled",
			Media: []string{"CD1", "RemovableDisk1"}, MediaInsert: []bool{false, false}, Chassis: "sys-0002", Manager: "sys-0002"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("what gofish reads (-want +got):\n%s", diff)
	}
	us, err := c.Service.UpdateService()
	if err != nil || us.ID != "UpdateService" {
		t.Errorf("update service: %v %v", us, err)
	}
}

// TestGofishActs drives the simulator through gofish's own calls, on a BMC
// view over IPv6 loopback, in both virtual media styles.
func TestGofishActs(t *testing.T) {
	img := newImageServer(t)
	for _, style := range []MediaStyle{MediaActions, MediaPatch} {
		t.Run(style.String(), func(t *testing.T) {
			sim := newTestSim(t, Config{Systems: Systems(1, SystemConfig{Media: style})})
			bmcs, err := sim.StartBMCs(BMCOptions{Host: "::1"})
			if err != nil {
				t.Skipf("no IPv6 loopback: %v", err)
			}
			defer bmcs.Close()
			c, err := gofish.ConnectContext(context.Background(), gofish.ClientConfig{
				Endpoint: bmcs.Listener("sys-0001").URL, Username: "admin", Password: "password", ReuseConnections: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Logout()
			systems, err := c.Service.Systems()
			if err != nil || len(systems) != 1 {
				t.Fatalf("systems: %v %d", err, len(systems))
			}
			s := systems[0]
			if err := s.SetBoot(&schemas.Boot{BootSourceOverrideTarget: schemas.CdBootSource, BootSourceOverrideEnabled: schemas.OnceBootSourceOverrideEnabled}); err != nil {
				t.Fatalf("SetBoot: %v", err)
			}
			bios, err := s.Bios()
			if err != nil {
				t.Fatal(err)
			}
			if err := bios.UpdateBiosAttributes(schemas.SettingsAttributes{"ProcTurboMode": "Disabled"}); err != nil {
				t.Fatalf("UpdateBiosAttributes: %v", err)
			}
			managers, _ := s.ManagedBy()
			media, err := managers[0].VirtualMedia()
			if err != nil {
				t.Fatal(err)
			}
			inserted := true
			if _, err := media[0].InsertMedia(&schemas.VirtualMediaInsertMediaParameters{Image: img.URL + "/ok.iso", Inserted: &inserted}); err != nil {
				t.Fatalf("InsertMedia: %v", err)
			}
			if _, err := s.Reset(schemas.OnResetType); err != nil {
				t.Fatalf("Reset: %v", err)
			}
			us, err := c.Service.UpdateService()
			if err != nil {
				t.Fatal(err)
			}
			tm, err := us.SimpleUpdate(&schemas.UpdateServiceSimpleUpdateParameters{ImageURI: img.URL + "/ok.iso"})
			if err != nil || tm == nil {
				t.Fatalf("SimpleUpdate: %v %v", tm, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := schemas.WaitForTaskMonitor(ctx, c, time.Millisecond, tm, nil)
			if err != nil || r.StatusCode != 200 {
				t.Fatalf("WaitForTaskMonitor: %v", err)
			}
			r.Body.Close()

			st, _ := sim.System("sys-0001")
			got := []any{st.PowerState, st.BootEnabled, st.LastBoot.Target, st.LastBoot.Image, st.BIOS["ProcTurboMode"], st.Updates}
			want := []any{"On", "Disabled", "Cd", img.URL + "/ok.iso", "Disabled", []string{img.URL + "/ok.iso"}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("state after gofish calls (-want +got):\n%s", diff)
			}
			// Re-read first: the PATCH fallback sends the ETag gofish saw,
			// which the insert made stale (412 otherwise, as on real BMCs).
			if media, err = managers[0].VirtualMedia(); err != nil {
				t.Fatal(err)
			}
			if _, err := media[0].EjectMedia(); err != nil {
				t.Errorf("EjectMedia: %v", err)
			}
			if st, _ := sim.System("sys-0001"); st.Media[0].Inserted {
				t.Error("still inserted after EjectMedia")
			}
		})
	}
}

func TestStartBMCs(t *testing.T) {
	sim := newTestSim(t, Config{Systems: Systems(3, SystemConfig{})})
	tests := []struct {
		name string
		opts BMCOptions
		ok   bool
	}{
		{"ipv4 ports", BMCOptions{}, true},
		{"spread ipv4", BMCOptions{Host: "127.0.0.10", SpreadIPs: true}, true},
		{"ipv6 ports", BMCOptions{Host: "::1"}, true},
		{"spread ipv6", BMCOptions{Host: "::1", SpreadIPs: true}, false},
		{"not loopback", BMCOptions{Host: "10.0.0.1"}, false},
		{"fixed port without spread", BMCOptions{Port: 8000}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bmcs, err := sim.StartBMCs(tt.opts)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok %v", err, tt.ok)
			}
			if err != nil {
				return
			}
			defer bmcs.Close()
			var urls []string
			for _, id := range sim.IDs() {
				l := bmcs.Listener(id)
				urls = append(urls, l.URL)
				r := do(t, "GET", l.URL+"/redfish/v1/Systems", nil, nil)
				if got := field(r.body, "Members", 0, "@odata.id"); got != "/redfish/v1/Systems/"+id || field(r.body, "Members@odata.count") != 1.0 {
					t.Errorf("%s: systems %v", id, r.body)
				}
			}
			if tt.opts.SpreadIPs && urls[2][:len("http://127.0.0.12:")] != "http://127.0.0.12:" {
				t.Errorf("third BMC at %s, want 127.0.0.12", urls[2])
			}
		})
	}
}

func TestListenCountsConnections(t *testing.T) {
	sim := newTestSim(t, Config{})
	l, err := sim.Listen("[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer l.Close()
	if r := do(t, "GET", l.SystemURL("sys-0002"), nil, nil); r.status != 200 {
		t.Fatalf("GET over [::1]: %d", r.status)
	}
	if _, peak := l.Conns(); peak < 1 {
		t.Errorf("peak connections %d", peak)
	}
	if got, want := l.BMCURL("sys-0002"), "redfish+"+l.URL+"/redfish/v1/Systems/sys-0002"; got != want {
		t.Errorf("BMCURL %s, want %s", got, want)
	}
}
