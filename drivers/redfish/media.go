package redfish

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/stmcginnis/gofish/schemas"

	"metalsync.dev/metalsync/drivers"
)

// mediaDevice is a virtual media device found at discovery.
type mediaDevice struct {
	path  string
	types []schemas.VirtualMediaType
}

// mediaDoc is the part of a VirtualMedia resource the driver reads.
type mediaDoc struct {
	ODataID        string `json:"@odata.id"`
	ID             string `json:"Id"`
	MediaTypes     []schemas.VirtualMediaType
	Image          string
	Inserted       *bool
	TransferMethod schemas.TransferMethod
	Actions        struct {
		Insert struct {
			Target string `json:"target"`
		} `json:"#VirtualMedia.InsertMedia"`
		Eject struct {
			Target string `json:"target"`
		} `json:"#VirtualMedia.EjectMedia"`
	}
	etag string // from the response header
}

// inserted reports whether the device holds an image; services that omit
// Inserted say so by Image alone.
func (m *mediaDoc) inserted() bool {
	if m.Inserted != nil {
		return *m.Inserted
	}
	return m.Image != ""
}

// mediaRank says which media types serve a kind, best first.
var mediaRank = map[drivers.MediaKind][]schemas.VirtualMediaType{
	drivers.MediaCD:     {schemas.CDVirtualMediaType, schemas.DVDVirtualMediaType},
	drivers.MediaUSB:    {schemas.USBStickVirtualMediaType, schemas.FloppyVirtualMediaType},
	drivers.MediaFloppy: {schemas.FloppyVirtualMediaType, schemas.USBStickVirtualMediaType},
}

// mediaDevices finds the virtual media devices once. They live under the
// system on some BMCs and under its manager on others: look in both.
func (b *BMC) mediaDevices(ctx context.Context) ([]mediaDevice, error) {
	b.mu.Lock()
	cached := b.media
	b.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	var sys struct {
		VirtualMedia link
		Links        struct{ ManagedBy []link }
	}
	if _, err := b.get(ctx, b.system(), &sys); err != nil {
		return nil, err
	}
	var collections []string
	if sys.VirtualMedia.ID != "" {
		collections = append(collections, sys.VirtualMedia.ID)
	}
	managers := sys.Links.ManagedBy
	if len(managers) == 0 && b.root.Managers.ID != "" {
		// No ManagedBy link: a service with a single manager manages
		// this system with it.
		all, err := b.collection(ctx, b.root.Managers.ID)
		if err != nil {
			return nil, err
		}
		if len(all) == 1 {
			managers = []link{{ID: all[0]}}
		}
	}
	for _, m := range managers {
		var mgr struct{ VirtualMedia link }
		if _, err := b.get(ctx, m.ID, &mgr); err != nil {
			return nil, err
		}
		if mgr.VirtualMedia.ID != "" && !slices.Contains(collections, mgr.VirtualMedia.ID) {
			collections = append(collections, mgr.VirtualMedia.ID)
		}
	}
	devices := []mediaDevice{}
	for _, c := range collections {
		members, err := b.collection(ctx, c)
		if err != nil {
			return nil, err
		}
		for _, p := range members {
			var d mediaDoc
			if _, err := b.get(ctx, p, &d); err != nil {
				return nil, err
			}
			devices = append(devices, mediaDevice{path: p, types: d.MediaTypes})
		}
	}
	b.mu.Lock()
	b.media = devices
	b.mu.Unlock()
	return devices, nil
}

// candidates returns the current state of the devices that serve kind,
// best match first.
func (b *BMC) candidates(ctx context.Context, kind drivers.MediaKind) ([]*mediaDoc, error) {
	rank, ok := mediaRank[kind]
	if !ok {
		return nil, fmt.Errorf("unknown media kind %q: %w", kind, drivers.ErrUnsupported)
	}
	devices, err := b.mediaDevices(ctx)
	if err != nil {
		return nil, err
	}
	var out []*mediaDoc
	for _, t := range rank {
		for _, d := range devices {
			if !slices.Contains(d.types, t) || slices.ContainsFunc(out, func(m *mediaDoc) bool { return m.ODataID == d.path }) {
				continue
			}
			doc := &mediaDoc{}
			resp, err := b.get(ctx, d.path, doc)
			if err != nil {
				return nil, err
			}
			doc.ODataID, doc.etag = d.path, resp.etag()
			out = append(out, doc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no virtual media device for %s: %w", kind, drivers.ErrUnsupported)
	}
	return out, nil
}

// InsertMedia attaches imageURL to a device of the kind: the InsertMedia
// action when the device declares it, else a PATCH of Image and Inserted
// (older services, and the DMTF mockups). Inserting the image a device
// already holds does nothing.
func (b *BMC) InsertMedia(ctx context.Context, kind drivers.MediaKind, imageURL string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redfish: insert media: %w", err)
	}
	u, err := url.Parse(imageURL)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("redfish: insert media: image %q is not an absolute URL", imageURL)
	}
	cands, err := b.candidates(ctx, kind)
	if err != nil {
		return fmt.Errorf("redfish: insert media: %w", err)
	}
	for _, c := range cands {
		if c.inserted() && c.Image == imageURL {
			return nil
		}
	}
	dev := pickFree(cands)
	if dev.inserted() {
		if err := b.eject(ctx, dev); err != nil {
			return fmt.Errorf("redfish: insert media: %w", err)
		}
		dev.etag = "" // changed by the eject
	}
	var resp *response
	if t := dev.Actions.Insert.Target; t != "" {
		body := map[string]any{"Image": imageURL, "Inserted": true, "WriteProtected": true}
		resp, err = b.do(ctx, request{method: http.MethodPost, path: t, body: body})
	} else {
		body := map[string]any{"Image": imageURL, "Inserted": true}
		resp, err = b.patch(ctx, dev.ODataID, dev.etag, body)
	}
	if err == nil {
		err = b.waitTask(ctx, resp)
	}
	if err != nil {
		return fmt.Errorf("redfish: insert media %s: %w", dev.ODataID, err)
	}
	return nil
}

// pickFree prefers an empty device that streams (an Upload-only device
// copies the whole image first), then any empty one, then the best match.
func pickFree(cands []*mediaDoc) *mediaDoc {
	for _, c := range cands {
		if !c.inserted() && c.TransferMethod != schemas.UploadTransferMethod {
			return c
		}
	}
	for _, c := range cands {
		if !c.inserted() {
			return c
		}
	}
	return cands[0]
}

// EjectMedia detaches every device of the kind that holds an image.
func (b *BMC) EjectMedia(ctx context.Context, kind drivers.MediaKind) error {
	cands, err := b.candidates(ctx, kind)
	if err != nil {
		return fmt.Errorf("redfish: eject media: %w", err)
	}
	for _, c := range cands {
		if !c.inserted() {
			continue
		}
		if err := b.eject(ctx, c); err != nil {
			return fmt.Errorf("redfish: eject media: %w", err)
		}
	}
	return nil
}

func (b *BMC) eject(ctx context.Context, dev *mediaDoc) error {
	var resp *response
	var err error
	if t := dev.Actions.Eject.Target; t != "" {
		resp, err = b.do(ctx, request{method: http.MethodPost, path: t, body: map[string]any{}})
	} else {
		resp, err = b.patch(ctx, dev.ODataID, dev.etag, map[string]any{"Image": nil, "Inserted": false})
	}
	if err == nil {
		err = b.waitTask(ctx, resp)
	}
	if err != nil {
		return fmt.Errorf("eject %s: %w", dev.ODataID, err)
	}
	return nil
}

// MediaStatus reports the device of the kind that holds an image, or the
// best-matching empty one.
func (b *BMC) MediaStatus(ctx context.Context, kind drivers.MediaKind) (drivers.MediaStatus, error) {
	cands, err := b.candidates(ctx, kind)
	if err != nil {
		return drivers.MediaStatus{}, fmt.Errorf("redfish: media status: %w", err)
	}
	dev := cands[0]
	for _, c := range cands {
		if c.inserted() {
			dev = c
			break
		}
	}
	st := drivers.MediaStatus{Kind: kind, Device: dev.ODataID, Inserted: dev.inserted()}
	if st.Inserted {
		st.Image = dev.Image
	}
	return st, nil
}
