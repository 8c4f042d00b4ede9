package schema

import "testing"

func TestLiteralSecret(t *testing.T) {
	tests := []struct {
		path, value string
		want        bool
	}{
		{"spec.bmc.password", "hunter2", true},
		{"spec.bmc.Password", "hunter2", true},
		{"spec.bmc.password", "", false},
		{"spec.bmc.address", "redfish+https://admin:pw@10.0.0.1/redfish/v1", true},
		{"spec.bmc.address", "redfish+https://10.0.0.1/redfish/v1", false},
		{"spec.network.links", `[{"url":"https://u:p@x.example/"}]`, true},
		{"spec.labels.db-password", "x", true},
		{"spec.labels.password-ref", "vault/x", false},
		{"spec.labels.rack", "rack1", false},
		{"metadata.annotations.apiToken", "abc", true},
		{"spec.bmc.credentialsRef.env.password", "BMC_PASSWORD", false},
		{"spec.credentials.sets.rack1.env.password", "RACK1_PASSWORD", false},
		{"spec.credentials.sets.rack1.password", "x", true},
		{"status.inspect.token", "abc", false},
		{"status.lastError", "https://u:p@x/", false},
		{"spec.power", "on", false},
	}
	for _, tt := range tests {
		if got := LiteralSecret(tt.path, tt.value); got != tt.want {
			t.Errorf("LiteralSecret(%q, %q) = %v, want %v", tt.path, tt.value, got, tt.want)
		}
	}
}
