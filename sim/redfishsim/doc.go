// Package redfishsim simulates many Redfish BMCs in one process, for tests,
// benchmarks and demos (`metalsync sim`). It is a real HTTP service, not a
// mock: clients (gofish, the metalsync redfish driver, curl) talk to it
// over TCP and it keeps state the way a BMC does.
//
// # Starting it in a test
//
//	sim, err := redfishsim.New(redfishsim.Config{
//		Systems:  redfishsim.Systems(3, redfishsim.SystemConfig{PoweredOn: true}),
//		Username: "admin", Password: "secret",
//		Clock:    clock, // a Clock the test moves, or nil for the wall clock
//	})
//	defer sim.Close()
//	ts := httptest.NewServer(sim) // every system, path-based
//	defer ts.Close()
//	// ts.URL + "/redfish/v1/Systems/sys-0001"
//
// Or serve one system as its own BMC (its own service root and sessions):
//
//	h, _ := sim.BMC("sys-0002")
//	bmc := httptest.NewServer(h)
//
// Listen and StartBMCs do the same on real listeners (StartBMCs: one per
// system, on [::1] or 127.0.0.x ports) and count open connections.
//
// # What is simulated
//
// The JSON follows the DMTF public mockups (DSP2043): service root,
// SessionService (POST Sessions answers X-Auth-Token and Location, DELETE
// logs out; basic auth is accepted too), and per system id:
//
//	/redfish/v1/Systems/<id>                 PowerState, Boot override (PATCH, with AllowableValues),
//	                                         ProcessorSummary, MemorySummary, Actions/ComputerSystem.Reset
//	/redfish/v1/Systems/<id>/Processors/CPU1, /Memory/DIMM1..8, /EthernetInterfaces/NIC.1..2 (MACs)
//	/redfish/v1/Systems/<id>/Storage/1       4 drives; POST .../Volumes creates a RAID volume, DELETE removes it
//	/redfish/v1/Systems/<id>/Bios            Attributes; PATCH Bios/Settings stages, applied at the next power-on
//	/redfish/v1/Managers/<id>/VirtualMedia/{CD1,RemovableDisk1}  (under /Systems/<id> with MediaOnSystem)
//	/redfish/v1/Chassis/<id>
//	/redfish/v1/UpdateService                SimpleUpdate answers 202 and a task monitor
//
// Power changes take SystemConfig.PowerOnDelay / PowerOffDelay on the
// simulator's Clock; until then PowerState reads the old state (or
// PoweringOn/PoweringOff with ReportTransitional). A completed power-on
// applies staged BIOS settings and uses up a "Once" boot override;
// SystemState.LastBoot tells what it booted from.
//
// Virtual media insert (the InsertMedia action, or a PATCH of Image and
// Inserted: SystemConfig.Media picks which a BMC offers) fetches the image
// first, HEAD then a ranged GET, with the system's HTTP client; when that
// fails the BMC answers 4xx/5xx with a Redfish error and stays empty.
//
// Resources carry ETags (header and @odata.etag) computed from what a
// client can change; PATCH and DELETE honour If-Match (412 on mismatch),
// and SystemConfig.RequireIfMatch answers 428 without one. Actions ignore
// If-Match, as most BMCs do.
//
// # A real (emulated) host behind a BMC
//
// SystemConfig.Machine puts a Machine (a QEMU guest: *qemumachine.Machine)
// behind a system:
//
//	m, _ := qemumachine.Start(ctx, qemumachine.Config{Dir: dir, Disks: ...})
//	sim, _ := redfishsim.New(redfishsim.Config{Systems: []redfishsim.SystemConfig{{ID: "vm-1", Machine: m}}})
//
// Reset types drive it (On/ForceOn: power on; ForceOff: stop;
// GracefulShutdown: ACPI power button, ignored by a guest without ACPI;
// ForceRestart and GracefulRestart: reset; PowerCycle: off then on;
// PushPowerButton: button or on), PowerState reads back from it (a guest
// that powers itself off reads Off), and each power-on first sets the
// machine's boot order from the override (Cd, Pxe, else the disk); a Once
// override is used up by that boot and the order goes back to the disk.
// Inserting into CD1 downloads the whole image into the machine's Dir and
// hands that file to the machine (a hot insert of a URL hung guests);
// ejecting removes it. RemovableDisk1 stays simulated. Server.System
// reports the power state the BMC last read from the machine.
//
// # Faults and latency
//
// SystemConfig.Profile sets latency (ProfileIDRAC9: about 150 ms median
// with a tail; ProfileSlow: about 600 ms). Faults (5xx rate, hung
// requests, connection resets, power changes that never happen, rejected
// credentials) are set at start in SystemConfig.Faults and changed at run
// time with SetFaults. Session limits (MaxSessions) answer 503.
// SystemConfig.Sections makes linked sections answer 404 or 501,
// SystemConfig.RedirectToUUID moves a system to its UUID URL and redirects
// its name there, Config.SessionLifetime ends sessions after a fixed time.
// The shared listener is a service managing several systems: its
// SimpleUpdate refuses a request without Targets.
//
// # Assertions
//
// Every request is counted per system (Counts, cheap: atomics) and, unless
// Config.DisableLog, logged with method, path, system, status, time and
// body (Requests, RequestsFor). System returns a system's state.
package redfishsim
