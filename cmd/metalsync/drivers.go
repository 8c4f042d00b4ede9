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
		"redfish": {Open: redfish.NewPool(redfish.PoolOptions{}).Open, Capabilities: redfish.Capabilities()},
	}
}

// fakeEntry opens simulated BMCs. Each process gets its own fleet; a
// system is created, powered off, the first time a fake:// node is opened.
func fakeEntry() drivers.Entry {
	f := fake.NewFleet()
	f.AutoCreate = true
	return f.Entry()
}
