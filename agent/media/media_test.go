package media

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"metalsync.dev/metalsync/agentapi"
)

const token = "tok-very-secret-0123456789"

func testCA(t testing.TB) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func metaJSON(t testing.TB, name, u, tok, ca string) []byte {
	t.Helper()
	b, err := json.MarshalIndent(map[string]any{"uuid": "u", "name": name, "hostname": name,
		"meta": map[string]string{agentapi.MetaURL: u, agentapi.MetaToken: tok, agentapi.MetaCA: ca}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pad fills a fixed-size slot with spaces, as the daemon's overlay does.
func pad(b []byte, n int) []byte { return append(b, bytes.Repeat([]byte(" "), n-len(b))...) }

const netJSON = `{"links": [{"id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}],
 "networks": [{"id": "network0", "type": "ipv4", "link": "eno1", "ip_address": "10.0.2.15", "netmask": "255.255.255.0",
   "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"}]}], "services": []}`

func TestLoad(t *testing.T) {
	ca := testCA(t)
	meta := pad(metaJSON(t, "r1-n01", "https://10.0.2.100:8443", token, ca), 65536)
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		wantNet bool
		wantErr string
	}{
		{"both files, padded", fstest.MapFS{MetaDataPath: {Data: meta}, NetworkDataPath: {Data: pad([]byte(netJSON), 65536)}}, true, ""},
		{"no network data", fstest.MapFS{MetaDataPath: {Data: meta}}, false, ""},
		{"no meta data", fstest.MapFS{NetworkDataPath: {Data: []byte(netJSON)}}, false, "media: open openstack/latest/meta_data.json: file does not exist"},
		{"bad network data", fstest.MapFS{MetaDataPath: {Data: meta}, NetworkDataPath: {Data: []byte(`{"links": [{"id": "x", "type": "wifi"}], "networks": [], "services": []}`)}}, false, `openstack/latest/network_data.json: network data: link x: unknown type "wifi"`},
		{"oversized", fstest.MapFS{MetaDataPath: {Data: pad(nil, maxFile+1)}}, false, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.fsys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load = %v, %v; want error %q", c, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Node != "r1-n01" || c.URL != "https://10.0.2.100:8443" || c.Token.Reveal() != token || string(c.CA) != ca {
				t.Errorf("Load = %v", c)
			}
			if (c.Network != nil) != tt.wantNet {
				t.Errorf("Network = %v, want present %v", c.Network, tt.wantNet)
			}
		})
	}
}

func TestParseMetaDataRejects(t *testing.T) {
	ca := testCA(t)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"not json", []byte("{"), "unexpected EOF"},
		{"two objects", append(metaJSON(t, "n", "https://h:1", token, ca), "{}"...), "trailing data"},
		{"no name", metaJSON(t, "", "https://h:1", token, ca), "missing or invalid name"},
		{"http url", metaJSON(t, "n", "http://h:1", token, ca), "want an https URL"},
		{"url with password", metaJSON(t, "n", "https://u:"+token+"@h:1", token, ca), "want an https URL"},
		{"no token", metaJSON(t, "n", "https://h:1", "", ca), agentapi.MetaToken + ": missing"},
		{"no ca", metaJSON(t, "n", "https://h:1", token, ""), agentapi.MetaCA + ": no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseMetaData(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseMetaData = %v, %v; want error %q", c, err, tt.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
}

func TestConfigRedactsToken(t *testing.T) {
	c, err := ParseMetaData(metaJSON(t, "n", "https://h:1", token, testCA(t)))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "config", c, "token", c.Token)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "config", c, "token", c.Token)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", *c, *c, *c, c.Token), logs.String()} {
		if strings.Contains(s, token) {
			t.Errorf("token shows in %q", s)
		}
	}
}

// TestFindISO builds a real config-2 ISO with xorriso and finds it among
// devices that are missing, short, or carry another label.
func TestFindISO(t *testing.T) {
	xorriso, err := exec.LookPath("xorriso")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("xorriso is required in CI")
		}
		t.Skip("xorriso not installed")
	}
	dir := t.TempDir()
	iso := func(label string) string {
		stage := filepath.Join(dir, "stage-"+label)
		if err := os.MkdirAll(filepath.Join(stage, "openstack/latest"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stage, MetaDataPath), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, label+".iso")
		cmd := exec.Command(xorriso, "-as", "mkisofs", "-quiet", "-V", label, "-r", "-J", "-o", out, stage)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("xorriso: %v\n%s", err, b)
		}
		return out
	}
	want := iso(Label)
	other := iso("VMEDIA_BOOT_ISO")
	short := filepath.Join(dir, "short.img")
	if err := os.WriteFile(short, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if id, err := volumeIDOf(want); err != nil || id != Label {
		t.Fatalf("VolumeID = %q, %v; want %q", id, err, Label)
	}
	list := func() ([]string, error) {
		return []string{filepath.Join(dir, "sr0-missing"), short, other, want}, nil
	}
	got, err := Find(context.Background(), list, Label, time.Millisecond)
	if err != nil || got != want {
		t.Fatalf("Find = %q, %v; want %q", got, err, want)
	}
}

// TestFindWaits proves Find looks again: the media appears on the third
// listing, as a device does once its driver module loaded.
func TestFindWaits(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "sr0")
	pvd := make([]byte, 17*2048)
	copy(pvd[16*2048:], "\x01CD001\x01")
	copy(pvd[16*2048+40:], Label+strings.Repeat(" ", 32-len(Label)))
	if err := os.WriteFile(img, pvd, 0o644); err != nil {
		t.Fatal(err)
	}
	calls := 0
	list := func() ([]string, error) {
		calls++
		if calls < 3 {
			return nil, nil
		}
		return []string{img}, nil
	}
	got, err := Find(context.Background(), list, Label, time.Millisecond)
	if err != nil || got != img || calls != 3 {
		t.Fatalf("Find = %q, %v after %d listings; want %q after 3", got, err, calls, img)
	}
}

func TestFindGivesUpWithContext(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "sda")
	if err := os.WriteFile(short, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Find(ctx, func() ([]string, error) { return []string{short}, nil }, Label, time.Hour)
	if err == nil || !strings.Contains(err.Error(), "no volume labelled config-2; "+short+": read primary volume descriptor") {
		t.Fatalf("Find = %v", err)
	}
}

func TestCandidates(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"sr0", "sda", "sda1", "vda", "nvme0n1", "nvme0", "tty0", "loop0"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Candidates(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		names = append(names, filepath.Base(g))
	}
	if want := "nvme0n1 sda sda1 sr0 vda"; strings.Join(names, " ") != want {
		t.Errorf("Candidates = %v, want %s", names, want)
	}
}

// FuzzVolumeID and FuzzParseMetaData feed the untrusted media parsers.
func FuzzVolumeID(f *testing.F) {
	pvd := make([]byte, 17*2048)
	copy(pvd[16*2048:], "\x01CD001\x01")
	f.Add(pvd)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := VolumeID(bytes.NewReader(b))
		if err == nil && len(id) > 32 {
			t.Fatalf("volume id %q longer than 32 bytes", id)
		}
	})
}

func FuzzParseMetaData(f *testing.F) {
	f.Add(metaJSON(f, "n", "https://h:1", token, testCA(f)))
	f.Add([]byte(`{"name": "x", "meta": {}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseMetaData(b)
		if err == nil && (c.Node == "" || c.Token == "") {
			t.Fatalf("accepted %v", c)
		}
	})
}
