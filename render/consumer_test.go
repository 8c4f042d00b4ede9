package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"

	"metalsync.dev/metalsync/test/tools"
)

var testModTime = time.Date(2026, 3, 14, 15, 9, 26, 530000000, time.UTC)

// TestMediaConsumers renders every topology in both formats, reads each
// image back with xorriso, hands the extracted tree to Debian's cloud-init
// readers and renderers, and compares everything with a golden txtar
// (METALSYNC_UPDATE=1 rewrites them). Rendering twice must give the same
// bytes.
func TestMediaConsumers(t *testing.T) {
	xorriso := tools.Require(t, "xorriso")
	python := tools.RequireFile(t, "/usr/bin/python3")
	for _, topo := range topologies() {
		for _, f := range []Format{ConfigDrive, NoCloud} {
			t.Run(topo.name+"/"+string(f), func(t *testing.T) {
				dir := t.TempDir()
				iso := filepath.Join(dir, "media.iso")
				var first, second bytes.Buffer
				n, err := Write(&first, f, topo.node, testModTime)
				if err != nil {
					t.Fatal(err)
				}
				if n != int64(first.Len()) {
					t.Errorf("Write returned %d bytes, wrote %d", n, first.Len())
				}
				if _, err := Write(&second, f, topo.node, testModTime); err != nil {
					t.Fatal(err)
				}
				sum1, sum2 := sha256.Sum256(first.Bytes()), sha256.Sum256(second.Bytes())
				if sum1 != sum2 {
					t.Fatalf("same inputs, different images: %x != %x", sum1, sum2)
				}
				if err := os.WriteFile(iso, first.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}

				ar := &txtar.Archive{Comment: []byte(fmt.Sprintf("%s media of topology %s, read back by xorriso and cloud-init.\n", f, topo.name))}
				add := func(name string, data []byte) {
					ar.Files = append(ar.Files, txtar.File{Name: name, Data: data})
				}
				add("image", fmt.Appendf(nil, "size %d\nsha256 %s\n", first.Len(), hex.EncodeToString(sum1[:])))

				pvd := run(t, xorriso, "-indev", iso, "-pvd_info")
				add("pvd", []byte(grepLines(pvd, `^(Volume Id|Creation Time|Modif\. Time|Expir\. Time|Eff\. Time|System Id|App Id) *:`)))
				if want := "Volume Id    : " + f.Label() + "\n"; !strings.Contains(pvd, want) {
					t.Errorf("pvd_info lacks %q:\n%s", want, pvd)
				}

				// File names, sizes and dates as xorriso reads them.
				lsdl := run(t, xorriso, "-indev", iso, "-find", "/", "-exec", "lsdl")
				add("xorriso-lsdl", []byte(grepLines(lsdl, `^[d-]`)))

				tree := filepath.Join(dir, "tree")
				run(t, xorriso, "-osirrox", "on", "-indev", iso, "-extract", "/", tree)
				makeWritable(t, tree)
				files, listing := readTree(t, tree)
				add("listing", []byte(listing))
				wantFiles, err := Files(f, topo.node)
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]string{}
				for _, wf := range wantFiles {
					want[wf.Path] = string(wf.Data)
				}
				if diff := cmp.Diff(want, files); diff != "" {
					t.Errorf("files read back by xorriso differ (-want +got):\n%s", diff)
				}
				for _, wf := range wantFiles {
					add("media/"+wf.Path, wf.Data)
				}

				out := filepath.Join(dir, "out")
				macs, _ := json.Marshal(topo.knownMACs)
				summary := run(t, python, "testdata/cloudinit_driver.py", string(f), tree, out, string(macs))
				add("cloud-init/summary.json", []byte(summary))
				rendered, _ := readTree(t, out)
				var names []string
				for name := range rendered {
					names = append(names, name)
				}
				sort.Strings(names)
				for _, name := range names {
					add("cloud-init/"+name, []byte(rendered[name]))
				}
				checkSummary(t, topo, summary)
				checkRenderedNetwork(t, f, topo, rendered)
				tools.Golden(t, filepath.Join("testdata", "golden", topo.name+"."+string(f)+".txtar"), txtar.Format(ar))
			})
		}
	}
}

// checkSummary checks what cloud-init read against the inputs, so that a
// wrong golden file cannot be accepted by accident.
func checkSummary(t *testing.T, topo topology, summary string) {
	t.Helper()
	var got struct {
		InstanceID string            `json:"instance-id"`
		Hostname   string            `json:"hostname"`
		PublicKeys []string          `json:"public-keys"`
		Meta       map[string]string `json:"meta"`
		UserData   string            `json:"user-data"`
		Network    bool              `json:"network"`
	}
	if err := json.Unmarshal([]byte(summary), &got); err != nil {
		t.Fatalf("cloud-init summary: %v", err)
	}
	n := topo.node
	wantMeta := map[string]string{}
	if n.Agent != nil {
		wantMeta = map[string]string{MetaAgentURL: n.Agent.URL, MetaAgentToken: n.Agent.Token}
	}
	keys := append([]string(nil), n.PublicKeys...)
	sort.Strings(keys)
	if keys == nil {
		keys = []string{}
	}
	want := struct {
		InstanceID, Hostname string
		PublicKeys           []string
		Meta                 map[string]string
		UserData             string
		Network              bool
	}{InstanceID(n.Name), n.Name, keys, wantMeta, string(n.UserData), hasNetwork(n.Network)}
	gotv := want
	gotv.InstanceID, gotv.Hostname, gotv.PublicKeys, gotv.Meta, gotv.UserData, gotv.Network = got.InstanceID, got.Hostname, got.PublicKeys, got.Meta, got.UserData, got.Network
	if diff := cmp.Diff(want, gotv); diff != "" {
		t.Errorf("cloud-init read (-want +got):\n%s", diff)
	}
}

// TestCloudInitDriverFailsOnWarning proves the driver turns a cloud-init
// warning into a failure: without this the consumer test could not fail.
func TestCloudInitDriverFailsOnWarning(t *testing.T) {
	python := tools.RequireFile(t, "/usr/bin/python3")
	dir := t.TempDir()
	latest := filepath.Join(dir, "openstack", "latest")
	if err := os.MkdirAll(latest, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(latest, "meta_data.json"), []byte(`{"uuid": "x"}`), 0o644)
	// An unknown link type is only a warning to cloud-init.
	os.WriteFile(filepath.Join(latest, "network_data.json"), []byte(`{"links": [{"id": "x", "type": "infiniband-weird", "ethernet_mac_address": "52:54:00:00:00:01"}], "networks": [], "services": []}`), 0o644)
	cmd := exec.Command(python, "testdata/cloudinit_driver.py", "configdrive", dir, filepath.Join(dir, "out"), `{"52:54:00:00:00:01": "ens3"}`)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("driver: got %v, want exit status 3; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Unknown network_data link type") {
		t.Errorf("driver stderr lacks the warning:\n%s", stderr.String())
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func grepLines(s, re string) string {
	rx := regexp.MustCompile(re)
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if rx.MatchString(l) {
			b.WriteString(l)
		}
	}
	return b.String()
}

// makeWritable undoes xorriso's read-only modes so TempDir can clean up.
func makeWritable(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	})
}

// readTree returns the files under root by slash path, and a listing with
// sizes.
func readTree(t *testing.T, root string) (map[string]string, string) {
	t.Helper()
	files := map[string]string{}
	var listing strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		files[rel] = string(b)
		fmt.Fprintf(&listing, "%6d %s\n", len(b), rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, listing.String()
}
