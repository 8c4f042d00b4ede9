package mediaserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/agentimage"
	"metalsync.dev/metalsync/render"
)

// synthTemplate writes a template of size pseudo-random bytes (zeros
// when sparse) with the two slots at the given offsets, and its manifest.
func synthTemplate(t testing.TB, size, metaOff, netOff, slotLen int64, sparse bool) (string, []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.iso")
	var data []byte
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if sparse {
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	} else {
		data = make([]byte, size)
		r := rand.NewChaCha8([32]byte{7})
		r.Read(data)
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	h := sha256.New()
	f, _ = os.Open(p)
	io.Copy(h, f)
	f.Close()
	m := agentimage.Manifest{FormatVersion: agentimage.ManifestVersion, SHA256: hex.EncodeToString(h.Sum(nil)), Size: size,
		Slots: map[string]agentimage.Slot{
			agentimage.SlotMetaData:    {Offset: metaOff, Length: slotLen},
			agentimage.SlotNetworkData: {Offset: netOff, Length: slotLen},
		}}
	writeManifest(t, p, m)
	return p, data
}

func writeManifest(t testing.TB, iso string, m agentimage.Manifest) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(iso+".json", b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestViewReadAt: every read of a view equals the same range of the
// template with the padded documents copied over the slots.
func TestViewReadAt(t *testing.T) {
	const size, metaOff, netOff, slot = 64 << 10, 8 << 10, 20 << 10, 4 << 10
	p, data := synthTemplate(t, size, metaOff, netOff, slot, false)
	tpl, err := LoadTemplate(p)
	if err != nil {
		t.Fatal(err)
	}
	defer tpl.Close()
	md, nd := []byte(`{"name":"n1"}`), []byte(`{"links":[]}`)
	v, err := tpl.View(md, nd)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(data)
	for _, s := range []struct {
		off int
		doc []byte
	}{{metaOff, md}, {netOff, nd}} {
		copy(want[s.off:s.off+slot], append(bytes.Clone(s.doc), bytes.Repeat([]byte(" "), slot-len(s.doc))...))
	}
	tests := []struct {
		name    string
		off, n  int
		wantN   int
		wantEOF bool
	}{
		{name: "whole", off: 0, n: size, wantN: size},
		{name: "before slots", off: 0, n: metaOff, wantN: metaOff},
		{name: "into meta slot", off: metaOff - 10, n: 100, wantN: 100},
		{name: "inside slot", off: metaOff + 3, n: 7, wantN: 7},
		{name: "out of meta slot", off: metaOff + slot - 5, n: 20, wantN: 20},
		{name: "across both slots", off: metaOff - 1, n: netOff + slot - metaOff + 2, wantN: netOff + slot - metaOff + 2},
		{name: "tail short read", off: size - 10, n: 100, wantN: 10, wantEOF: true},
		{name: "at end", off: size, n: 10, wantN: 0, wantEOF: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, tt.n)
			n, err := v.ReadAt(buf, int64(tt.off))
			if n != tt.wantN || (err == io.EOF) != tt.wantEOF || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt = %d, %v; want %d, eof %v", n, err, tt.wantN, tt.wantEOF)
			}
			if !bytes.Equal(buf[:n], want[tt.off:tt.off+n]) {
				t.Error("bytes differ from the patched template")
			}
		})
	}
	if _, err := v.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("negative offset: no error")
	}
}

func TestTemplateRejects(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(m *agentimage.Manifest, iso string)
		wantIn string
	}{
		{name: "sha256 differs", edit: func(m *agentimage.Manifest, _ string) { m.SHA256 = strings.Repeat("0", 64) }, wantIn: "manifest says"},
		{name: "template changed", edit: func(_ *agentimage.Manifest, iso string) { os.WriteFile(iso, []byte("x"), 0o644) }, wantIn: "manifest says"},
		{name: "slot outside", edit: func(m *agentimage.Manifest, _ string) {
			m.Slots[agentimage.SlotNetworkData] = agentimage.Slot{Offset: m.Size - 10, Length: 4096}
		}, wantIn: "outside the image"},
		{name: "slots overlap", edit: func(m *agentimage.Manifest, _ string) {
			m.Slots[agentimage.SlotNetworkData] = agentimage.Slot{Offset: 8<<10 + 100, Length: 4096}
		}, wantIn: "overlap"},
		{name: "format version", edit: func(m *agentimage.Manifest, _ string) { m.FormatVersion = 99 }, wantIn: "format version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := synthTemplate(t, 64<<10, 8<<10, 20<<10, 4<<10, false)
			m, err := agentimage.ReadManifest(p + ".json")
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(&m, p)
			writeManifest(t, p, m)
			_, err = LoadTemplate(p)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("LoadTemplate error = %v, want one containing %q", err, tt.wantIn)
			}
		})
	}
}

func TestViewSlotFull(t *testing.T) {
	p, _ := synthTemplate(t, 64<<10, 8<<10, 20<<10, 4<<10, true)
	tpl, err := LoadTemplate(p)
	if err != nil {
		t.Fatal(err)
	}
	defer tpl.Close()
	if _, err := tpl.View([]byte("{}"), bytes.Repeat([]byte(" "), 4<<10+1)); !errors.Is(err, ErrSlotFull) {
		t.Fatalf("View with a too large network_data.json: %v, want ErrSlotFull", err)
	}
	if _, err := tpl.View(bytes.Repeat([]byte(" "), 4<<10), []byte("{}")); err != nil {
		t.Fatalf("View with a document of exactly the slot size: %v", err)
	}
}

// needTool skips the test when a tool is missing, except in CI.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (CI=true): %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

// xorrisoTemplate builds a small real template the way agentimage does
// (same slot files, xorriso options for El Torito BIOS + UEFI), without
// the Debian packages.
func xorrisoTemplate(t *testing.T) string {
	t.Helper()
	needTool(t, "xorriso")
	dir := t.TempDir()
	stage := filepath.Join(dir, "stage")
	files := map[string][]byte{
		"isolinux/isolinux.bin":        bytes.Repeat([]byte{0x90}, 4096),
		"boot/efiboot.img":             bytes.Repeat([]byte{0xe5}, 64<<10),
		".disk/info":                   []byte("test\n"),
		"vmlinuz":                      bytes.Repeat([]byte("kernel"), 50000),
		agentimage.SlotMetaData[1:]:    agentimage.SlotFile(agentimage.SlotMetaData),
		agentimage.SlotNetworkData[1:]: agentimage.SlotFile(agentimage.SlotNetworkData),
	}
	for name, b := range files {
		p := filepath.Join(stage, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := filepath.Join(dir, "agent.iso")
	cmd := exec.Command("xorriso", "-as", "mkisofs", "-o", iso, "-V", "config-2", "-r", "-J",
		"-c", "isolinux/boot.cat", "-b", "isolinux/isolinux.bin", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
		"-eltorito-alt-boot", "-e", "boot/efiboot.img", "-no-emul-boot", stage)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	slots, err := agentimage.LocateSlots(context.Background(), iso)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(iso)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	writeManifest(t, iso, agentimage.Manifest{FormatVersion: agentimage.ManifestVersion, SHA256: hex.EncodeToString(h[:]), Size: int64(len(b)), Slots: slots})
	return iso
}

func xorrisoOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("xorriso", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// elTorito is xorriso's El Torito report without its banner lines.
func elTorito(t *testing.T, iso string) string {
	var keep []string
	for _, l := range strings.Split(xorrisoOut(t, "-indev", iso, "-report_el_torito", "plain"), "\n") {
		if strings.HasPrefix(l, "El Torito") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		t.Fatalf("%s: no El Torito report", iso)
	}
	return strings.Join(keep, "\n")
}

// TestPublisherTemplate: with a template, Publish serves a view whose
// config-2 files, as xorriso extracts them, are the node's documents
// (an empty network for DHCP), with the El Torito boot entries untouched,
// the ETag its SHA-256 and Range working.
func TestPublisherTemplate(t *testing.T) {
	iso := xorrisoTemplate(t)
	tpl, err := LoadTemplate(iso)
	if err != nil {
		t.Fatal(err)
	}
	defer tpl.Close()
	tmplTorito := elTorito(t, iso)
	yes := true
	tests := []struct {
		name    string
		dhcp    *bool
		wantNet string
	}{
		{name: "static", wantNet: ""},
		{name: "dhcp", dhcp: &yes, wantNet: `{"links":[],"networks":[],"services":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, "127.0.0.1", nil)
			agent := &render.Agent{URL: "https://192.0.2.1:9443", Token: "tok-secret", CA: "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n"}
			p, err := NewPublisher(e.srv, nil, PublisherOptions{Template: tpl, Agent: func(string, string) (*render.Agent, error) { return agent, nil }})
			if err != nil {
				t.Fatal(err)
			}
			node := testNode(tt.dhcp)
			url, sha, err := p.Publish(context.Background(), node, "e1")
			if err != nil {
				t.Fatal(err)
			}
			resp, body := e.get(t, "GET", url, nil)
			if resp.StatusCode != 200 || sum(body) != sha || resp.Header.Get("ETag") != `"`+sha+`"` {
				t.Fatalf("download: status %d sha %s etag %s, want 200 %s", resp.StatusCode, sum(body), resp.Header.Get("ETag"), sha)
			}
			resp, part := e.get(t, "GET", url, map[string]string{"Range": "bytes=1000-300000"})
			if resp.StatusCode != 206 || !bytes.Equal(part, body[1000:300001]) {
				t.Fatalf("range: status %d, %d bytes; want 206 and the view's bytes", resp.StatusCode, len(part))
			}
			view := filepath.Join(t.TempDir(), "view.iso")
			if err := os.WriteFile(view, body, 0o644); err != nil {
				t.Fatal(err)
			}
			if got := elTorito(t, view); got != tmplTorito {
				t.Errorf("El Torito entries changed (-template +view):\n%s", cmp.Diff(tmplTorito, got))
			}
			rn := render.Node{Name: "r1-n07", Network: node.Spec.Network, Agent: agent}
			wantMD, err := render.MetaData(rn)
			if err != nil {
				t.Fatal(err)
			}
			wantND := []byte(tt.wantNet)
			if tt.wantNet == "" {
				if wantND, err = render.NetworkData(node.Spec.Network); err != nil {
					t.Fatal(err)
				}
			}
			for path, want := range map[string][]byte{agentimage.SlotMetaData: wantMD, agentimage.SlotNetworkData: wantND} {
				out := filepath.Join(t.TempDir(), filepath.Base(path))
				xorrisoOut(t, "-osirrox", "on", "-indev", view, "-extract", path, out)
				got, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				var gotV, wantV any
				if err := json.Unmarshal(got, &gotV); err != nil {
					t.Fatalf("%s does not parse: %v", path, err)
				}
				json.Unmarshal(want, &wantV)
				if diff := cmp.Diff(wantV, gotV); diff != "" {
					t.Errorf("%s (-want +got):\n%s", path, diff)
				}
			}
			if err := p.Unpublish(context.Background(), "r1-n07"); err != nil {
				t.Fatal(err)
			}
			if resp, _ := e.get(t, "GET", url, nil); resp.StatusCode != 404 {
				t.Errorf("after Unpublish: status %d, want 404", resp.StatusCode)
			}
		})
	}
}

// TestPublisherTemplateTooLarge: a node whose documents do not fit is
// refused at publish time, naming the node.
func TestPublisherTemplateTooLarge(t *testing.T) {
	p0, _ := synthTemplate(t, 64<<10, 8<<10, 20<<10, 512, true)
	tpl, err := LoadTemplate(p0)
	if err != nil {
		t.Fatal(err)
	}
	defer tpl.Close()
	e := start(t, "127.0.0.1", nil)
	p, err := NewPublisher(e.srv, nil, PublisherOptions{Template: tpl, Agent: func(string, string) (*render.Agent, error) {
		return &render.Agent{URL: "https://192.0.2.1:9443", Token: "t", CA: strings.Repeat("A", 600)}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = p.Publish(context.Background(), testNode(nil), "e1")
	if !errors.Is(err, ErrSlotFull) || !strings.Contains(err.Error(), "r1-n07") || strings.Contains(err.Error(), "AAAA") {
		t.Fatalf("Publish error = %v, want ErrSlotFull naming the node and not the document", err)
	}
}
