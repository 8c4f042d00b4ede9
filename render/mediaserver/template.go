package mediaserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"metalsync.dev/metalsync/agentimage"
)

// ErrSlotFull is returned when a node's document does not fit the
// template's slot.
var ErrSlotFull = errors.New("does not fit the template slot")

// Template is a deploy agent template ISO (agentimage) opened for
// per-node views: the file stays open and is only read, so any number of
// views share it. Close it after the last view is unpublished.
type Template struct {
	f        *os.File
	manifest agentimage.Manifest
	// slots are the meta_data.json and network_data.json extents.
	slots [2]agentimage.Slot
}

// LoadTemplate opens the template ISO at path and its manifest
// (path + ".json"), and checks the ISO's SHA-256 against the manifest
// once, so views never serve a template the manifest does not describe.
func LoadTemplate(path string) (*Template, error) {
	m, err := agentimage.ReadManifest(path + ".json")
	if err != nil {
		return nil, fmt.Errorf("mediaserver: template: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mediaserver: template: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mediaserver: template %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 || n != m.Size {
		f.Close()
		return nil, fmt.Errorf("mediaserver: template %s: sha256 %s (%d bytes), its manifest says %s (%d bytes)", path, got, n, m.SHA256, m.Size)
	}
	t := &Template{f: f, manifest: m}
	t.slots[0], t.slots[1] = m.Slots[agentimage.SlotMetaData], m.Slots[agentimage.SlotNetworkData]
	if t.slots[0].Offset < t.slots[1].Offset+t.slots[1].Length && t.slots[1].Offset < t.slots[0].Offset+t.slots[0].Length {
		f.Close()
		return nil, fmt.Errorf("mediaserver: template %s: manifest slots overlap", path)
	}
	return t, nil
}

// Manifest returns the template's manifest.
func (t *Template) Manifest() agentimage.Manifest { return t.manifest }

// Close closes the template file; views read after it fail.
func (t *Template) Close() error { return t.f.Close() }

// View returns the template with metaData and networkData in place of its
// slot files, each padded with spaces (JSON allows trailing white space)
// to the slot's length. Per view only the two slot buffers are allocated.
func (t *Template) View(metaData, networkData []byte) (*View, error) {
	v := &View{t: t}
	for i, doc := range [][]byte{metaData, networkData} {
		s := t.slots[i]
		name := []string{agentimage.SlotMetaData, agentimage.SlotNetworkData}[i]
		if int64(len(doc)) > s.Length {
			return nil, fmt.Errorf("mediaserver: %s is %d bytes, the template's slot %d: %w", name, len(doc), s.Length, ErrSlotFull)
		}
		buf := make([]byte, s.Length)
		for i := copy(buf, doc); i < len(buf); i++ {
			buf[i] = ' '
		}
		v.patches[i] = patch{off: s.Offset, data: buf}
	}
	return v, nil
}

// View is one node's media: the template's bytes with the slots replaced.
// It is an io.ReaderAt, safe for concurrent use.
type View struct {
	t       *Template
	patches [2]patch
}

type patch struct {
	off  int64
	data []byte
}

// Size is the view's length, the template's.
func (v *View) Size() int64 { return v.t.manifest.Size }

// ReadAt reads from the template and copies the slot bytes over the part
// of p that overlaps them.
func (v *View) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("mediaserver: view: negative offset")
	}
	size := v.Size()
	if off >= size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > size-off {
		n = int(size - off)
	}
	if _, err := v.t.f.ReadAt(p[:n], off); err != nil {
		// The manifest says the file is this long: short means it changed.
		return 0, fmt.Errorf("mediaserver: view: read template: %w", err)
	}
	end := off + int64(n)
	for _, pt := range v.patches {
		lo, hi := max(off, pt.off), min(end, pt.off+int64(len(pt.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], pt.data[lo-pt.off:hi-pt.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
