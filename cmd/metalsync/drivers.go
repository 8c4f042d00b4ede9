package main

import (
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/fake"
	"metalsync.dev/metalsync/drivers/ipmi"
	"metalsync.dev/metalsync/drivers/redfish"
)

// defaultRegistry is every driver compiled into metalsync, by the driver
// part of the BMC URL scheme.
func defaultRegistry() drivers.Registry {
	return drivers.Registry{
		"fake":    fakeEntry(),
		"ipmi":    {Open: ipmi.Open, Capabilities: ipmi.Capabilities()},
		"redfish": redfishEntry(),
	}
}

// redfishEntry opens Redfish BMCs on one pool that keeps a session per BMC
// across opens; Registry.Close logs out of them.
func redfishEntry() drivers.Entry {
	p := redfish.NewPool(redfish.PoolOptions{})
	return drivers.Entry{Open: p.Open, Capabilities: redfish.Capabilities(), Close: p.Close}
}

// fakeEntry opens simulated BMCs. Each process gets its own fleet; a
// system is created, powered off, the first time a fake:// node is opened.
func fakeEntry() drivers.Entry {
	f := fake.NewFleet()
	f.AutoCreate = true
	return f.Entry()
}
