package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/test/tools"
)

// TestSimForApply is the "try it by hand" path: `sim --for` on the example,
// then `apply` with the environment it printed against the directory it
// wrote; every node the example lets metalsync act on reaches its state
// and has a status file naming the copy's commit.
func TestSimForApply(t *testing.T) {
	tools.Require(t, "git")
	work := filepath.Join(t.TempDir(), "try")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var simErr tools.SyncBuffer
	simEnv := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: pw, Err: &simErr}, Getenv: func(k string) string {
		if k == "METALSYNC_CACHE" {
			return "off"
		}
		return ""
	}}
	done := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"sim", "--for", "../../inventory-example", "--out", work}, simEnv)
		pw.Close()
		done <- code
	}()

	vars := map[string]string{"METALSYNC_CACHE": "off"}
	var printed strings.Builder
	sc := bufio.NewScanner(pr)
	ready := false
	for !ready && sc.Scan() {
		line := sc.Text()
		printed.WriteString(line + "\n")
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "export "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = v
			}
		}
		ready = strings.HasPrefix(line, "ready")
	}
	if !ready {
		t.Fatalf("sim --for ended before it was ready (exit %d)\nstdout:\n%s\nstderr:\n%s", <-done, printed.String(), simErr.String())
	}
	go io.Copy(io.Discard, pr)
	for _, want := range []string{
		"metalsync apply --simulate-agent --auto-approve " + work,
		"metalsync serve --local " + work + " --simulate-agent",
	} {
		if !strings.Contains(printed.String(), want) {
			t.Errorf("sim --for output lacks %q:\n%s", want, printed.String())
		}
	}
	if vars["DEMO_BMC_USERNAME"] == "" || vars["DEMO_BMC_PASSWORD"] == "" {
		t.Fatalf("sim --for printed no credential exports:\n%s", printed.String())
	}

	var out, errb bytes.Buffer
	env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, Getenv: func(k string) string { return vars[k] }}
	if code := run(ctx, []string{"apply", "--simulate-agent", "--auto-approve", work}, env); code != 0 {
		t.Fatalf("apply exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}

	want, diags := schema.Load(os.DirFS("../../inventory-example"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got, diags := schema.Load(os.DirFS(work))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	acted := 0
	for _, n := range want.Nodes {
		if n.Spec.Quarantine != nil {
			continue
		}
		acted++
		st := got.Status[n.Name()]
		if st == nil {
			t.Errorf("%s: no status file after apply", n.Name())
			continue
		}
		if st.Status.ProvisionState != n.Spec.Provision.State {
			t.Errorf("%s: provision state %q after apply, want %q", n.Name(), st.Status.ProvisionState, n.Spec.Provision.State)
		}
	}
	if acted == 0 {
		t.Fatal("the example has no node metalsync may act on")
	}

	cancel()
	if code := <-done; code != 0 {
		t.Errorf("sim --for exit %d after cancel\nstderr:\n%s", code, simErr.String())
	}
}

// TestSimForUsage checks the flag combinations `sim --for` refuses.
func TestSimForUsage(t *testing.T) {
	tools.Require(t, "git")
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"for without out", []string{"sim", "--for", "../../inventory-example"}, exitUsage, "--for and --out go together"},
		{"out without for", []string{"sim", "--out", t.TempDir()}, exitUsage, "--for and --out go together"},
		{"systems and for", []string{"sim", "--systems", "2", "--for", "../../inventory-example", "--out", t.TempDir()}, exitUsage, "exclude each other"},
		{"out not empty", []string{"sim", "--for", "../../inventory-example", "--out", full}, exitError, "is not empty"},
		{"invalid inventory", []string{"sim", "--for", t.TempDir(), "--out", filepath.Join(t.TempDir(), "w")}, exitError, "is invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &Env{Stdio: Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, Getenv: func(k string) string {
				if k == "METALSYNC_CACHE" {
					return "off"
				}
				return ""
			}}
			if code := run(t.Context(), tc.args, env); code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", code, tc.code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errb.String())
			}
		})
	}
}

// TestWriteSimInventoryShapes checks the copy of inventories shaped unlike
// the example: site blocks (credentials, BMC networks, agent, listen, media
// base URLs) in flow or list form, node tls and ipmi settings in flow form,
// a fake:// node, which keeps its address. Each copy must load, point every
// simulated node at its simulator and leave status and .git behind.
func TestWriteSimInventoryShapes(t *testing.T) {
	const site = "apiVersion: metalsync.dev/v1alpha1\nkind: Site\nmetadata:\n  name: s\nspec:\n"
	for _, tc := range []struct {
		name string
		site string
	}{
		{"flow", site + "  media: {ttl: 1h}\n  listen: [\"[::]:9090\"]\n" +
			"  credentials: {sets: {a: {env: {username: A_USER, password: A_PASS}}}}\n" +
			"  bmcNetworks: [{cidr: 10.0.0.0/8}]\n  agent: {image: /x.iso, url: \"https://10.0.0.1:8443\"}\n"},
		{"lists", site + "  media:\n    baseURLs:\n      - http://10.0.0.1:8080\n    ttl: 1h\n  listen:\n    - \"[::]:9090\"\n" +
			"  credentials:\n    directory: /etc/bmc\n    sets:\n      a:\n        file: a.yaml\n" +
			"  bmcNetworks:\n    - host: 10.0.0.5\n    - cidr: 10.0.0.0/24\n      owners: [ops]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			files := map[string]string{
				schema.SiteFile:      tc.site,
				"owners/ops.yaml":    "apiVersion: metalsync.dev/v1alpha1\nkind: Owner\nmetadata:\n  name: ops\nspec:\n  admin: true\n",
				"nodes/n1.yaml":      testNode("n1", "redfish+https://10.0.0.5/redfish/v1/Systems/1", "    tls: {verify: false}\n", 1),
				"nodes/n2.yaml":      testNode("n2", "fake://n2", "", 2),
				"nodes/rack/n3.yaml": testNode("n3", "ipmi://10.0.0.7", "    ipmi: {cipherSuite: 3}\n", 3),
				"status/n1.yaml":     "apiVersion: metalsync.dev/v1alpha1\nkind: NodeStatus\nmetadata:\n  name: n1\nstatus:\n  provisionState: active\n",
				".git/HEAD":          "ref: refs/heads/main\n",
			}
			for p, s := range files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(src, p), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			inv, diags := schema.Load(os.DirFS(src))
			if diags.HasErrors() {
				t.Fatalf("source inventory:\n%s", diags)
			}
			fleet, err := startFleet(inv)
			if err != nil {
				t.Fatal(err)
			}
			defer fleet.close()
			dst := t.TempDir()
			if err := writeSimInventory(os.DirFS(src), inv, dst, fleet, func(s string) string { return s }); err != nil {
				t.Fatal(err)
			}
			got, diags := schema.Load(os.DirFS(dst))
			if diags.HasErrors() {
				t.Fatalf("written inventory:\n%s", diags)
			}
			if len(got.Nodes) != 3 {
				t.Fatalf("written inventory has %d nodes, want 3", len(got.Nodes))
			}
			for _, n := range got.Nodes {
				want, ok := fleet.addrs[n.Name()]
				if !ok {
					want = inv.Node(n.Name()).Spec.BMC.Address
				}
				if n.Spec.BMC.Address != want {
					t.Errorf("%s: address %q, want %q", n.Name(), n.Spec.BMC.Address, want)
				}
			}
			if _, ok := fleet.addrs["n2"]; ok {
				t.Errorf("fake node n2 got a simulator")
			}
			if len(got.Status) != 0 {
				t.Errorf("status copied: %v", got.Status)
			}
			if _, err := os.Stat(filepath.Join(dst, ".git")); err == nil {
				t.Errorf(".git copied")
			}
			if got.Site.Spec.Agent != nil {
				t.Errorf("agent block kept")
			}
		})
	}
}

func testNode(name, addr, bmc string, mac int) string {
	return fmt.Sprintf(`apiVersion: metalsync.dev/v1alpha1
kind: Node
metadata:
  name: %s
spec:
  bmc:
    address: %s
    credentialsRef: {set: a}
%s  owner: ops
  power: off
  provision:
    state: manageable
  network:
    links:
      - name: eno1
        type: phy
        mac: "b8:ce:f6:09:09:%02x"
`, name, addr, bmc, mac)
}
