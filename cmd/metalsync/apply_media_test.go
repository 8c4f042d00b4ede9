package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"metalsync.dev/metalsync/sim/redfishsim"
)

// TestApplyServesBootMedia: `apply --media-listen` serves each DHCP-less
// node's boot media; the (simulated) BMC downloads it from there when the
// executor inserts it, and the status records the image's SHA-256.
func TestApplyServesBootMedia(t *testing.T) {
	sim, err := redfishsim.New(redfishsim.Config{Username: "admin", Password: "pw-apply-media",
		Systems: []redfishsim.SystemConfig{{ID: "n1", MACs: []string{"52:54:00:00:00:01"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	l, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	repo := t.TempDir()
	files := map[string]string{
		"metalsync.yaml": "apiVersion: metalsync.dev/v1alpha1\nkind: Site\nmetadata: {name: test}\nspec:\n" +
			"  credentials: {sets: {bmc: {env: {username: BMC_USER, password: BMC_PASS}}}}\n" +
			"  bmcNetworks: [{cidr: 127.0.0.0/8, allowPlainHTTP: true}]\n",
		"owners/ops.yaml": "apiVersion: metalsync.dev/v1alpha1\nkind: Owner\nmetadata: {name: ops}\nspec:\n  members: [{email: ops@example.net}]\n",
		"nodes/rack1/n1.yaml": `apiVersion: metalsync.dev/v1alpha1
kind: Node
metadata: {name: n1}
spec:
  bmc:
    address: ` + l.BMCURL("n1") + `
    credentialsRef: {set: bmc}
  owner: ops
  power: "off"
  provision: {state: available}
  network:
    links:
      - {name: eno1, type: phy, mac: "52:54:00:00:00:01", addresses: ["192.0.2.10/24"]}
    routes:
      - {to: 0.0.0.0/0, via: 192.0.2.1}
`,
	}
	for p, c := range files {
		full := filepath.Join(repo, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(c), 0o644)
	}
	t.Setenv("BMC_USER", "admin")
	t.Setenv("BMC_PASS", "pw-apply-media")
	t.Setenv("METALSYNC_CACHE", "off")
	var out, errb bytes.Buffer
	code := Main([]string{"apply", "--auto-approve", "--simulate-agent", "--media-listen", "127.0.0.1:0", repo},
		Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != 0 {
		t.Fatalf("apply exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	inserted := false
	for _, r := range sim.RequestsFor("n1") {
		if strings.Contains(r.Body, "/media/") && strings.Contains(r.Body, "n1") {
			inserted = true
		}
	}
	if !inserted {
		t.Errorf("the BMC was never given media from the media server; requests: %+v", sim.RequestsFor("n1"))
	}
	st, err := os.ReadFile(filepath.Join(repo, "status", "rack1", "n1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The media was ejected at the end of cleaning: status no longer
	// names a publication (its agent token is dead).
	if strings.Contains(string(st), "\n  media:") || !strings.Contains(string(st), "provisionState: available") {
		t.Errorf("status still names the ejected media, or lacks the state:\n%s", st)
	}
	if strings.Contains(errb.String()+out.String()+string(st), "pw-apply-media") {
		t.Error("the BMC password leaked")
	}
}
