package redfishsim

import "testing"

// TestConfiguredMACs: a system reports the MACs it was given (as Redfish
// writes them, upper case) and generates the rest.
func TestConfiguredMACs(t *testing.T) {
	s := newTestSim(t, Config{Username: "admin", Password: "password",
		Systems: []SystemConfig{{ID: "n1", MACs: []string{"b8:ce:f6:01:01:10"}}}})
	base := s.url + "/redfish/v1/Systems/n1/EthernetInterfaces/"
	if got := do(t, "GET", base+"NIC.1", nil, nil).body["MACAddress"]; got != "B8:CE:F6:01:01:10" {
		t.Errorf("NIC.1 MAC = %v, want the configured one", got)
	}
	if got := do(t, "GET", base+"NIC.2", nil, nil).body["MACAddress"]; got == "" || got == "B8:CE:F6:01:01:10" {
		t.Errorf("NIC.2 MAC = %v, want a generated one", got)
	}
}
