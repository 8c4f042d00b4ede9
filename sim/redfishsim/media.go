package redfishsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
)

// virtualMedia serves /Managers/<id>/VirtualMedia. Inserting fetches the
// image first (HEAD, then a ranged GET of its first bytes) with the
// system's own HTTP client, as a BMC does, so the system is not locked
// while the fetch runs.
func (c *call) virtualMedia(rest []string) {
	s := c.sys
	base := s.mediaBase()
	if len(rest) == 0 {
		var ids []string
		for _, m := range s.media {
			ids = append(ids, base+"/"+m.id)
		}
		c.get(collection(base, "VirtualMediaCollection", "Virtual Media Services", ids), nil)
		return
	}
	dev := s.mediaDev(rest[0])
	if dev == nil {
		c.notFound()
		return
	}
	switch {
	case len(rest) == 1:
		if !c.method(http.MethodGet, http.MethodPatch) {
			return
		}
		if c.r.Method == http.MethodPatch {
			c.patchMedia(dev)
			return
		}
		s.mu.Lock()
		d, tag := c.mediaDocLocked(dev)
		s.mu.Unlock()
		c.ok(d, tag)
	case len(rest) == 3 && rest[1] == "Actions" && s.cfg.Media.actions():
		switch rest[2] {
		case "VirtualMedia.InsertMedia":
			if c.method(http.MethodPost) {
				c.insertAction(dev)
			}
		case "VirtualMedia.EjectMedia":
			if c.method(http.MethodPost) && c.ejectMachine(dev) {
				s.mu.Lock()
				dev.eject()
				s.mu.Unlock()
				c.w.WriteHeader(http.StatusNoContent)
			}
		default:
			c.notFound()
		}
	default:
		// Without the actions style, the action URIs do not exist, as on the
		// DMTF mockups.
		c.notFound()
	}
}

// mediaBase is the VirtualMedia collection's path: under the manager, or
// under the system with MediaOnSystem.
func (s *system) mediaBase() string {
	if s.cfg.MediaOnSystem {
		return s.path() + "/VirtualMedia"
	}
	return mgrPath(s.id) + "/VirtualMedia"
}

func (m *mediaDev) eject() {
	m.image, m.inserted, m.transferProto, m.file = "", false, "", ""
}

type mediaTag struct {
	Image    string
	Inserted bool
	WP       bool
}

func (c *call) mediaDocLocked(m *mediaDev) (doc, any) {
	p := c.sys.mediaBase() + "/" + m.id
	d := doc{
		"@odata.id": p, "@odata.type": "#VirtualMedia.v1_6_0.VirtualMedia", "Id": m.id, "Name": m.name,
		"MediaTypes": m.types, "Image": nil, "ImageName": nil, "Inserted": m.inserted, "WriteProtected": m.writeProtect,
		"ConnectedVia": "NotConnected", "TransferMethod": "Stream",
	}
	if m.image != "" {
		d["Image"], d["ImageName"] = m.image, path.Base(m.image)
	}
	if m.inserted {
		d["ConnectedVia"] = "URI"
	}
	if m.transferProto != "" {
		d["TransferProtocolType"] = m.transferProto
	}
	if c.sys.cfg.Media.actions() {
		d["Actions"] = doc{
			"#VirtualMedia.InsertMedia": doc{"target": p + "/Actions/VirtualMedia.InsertMedia"},
			"#VirtualMedia.EjectMedia":  doc{"target": p + "/Actions/VirtualMedia.EjectMedia"},
		}
	}
	return d, mediaTag{m.image, m.inserted, m.writeProtect}
}

// mediaParams are the InsertMedia parameters, which are also what a PATCH
// of the resource may carry.
type mediaParams struct {
	Image                *string
	Inserted             *bool
	WriteProtected       *bool
	TransferProtocolType *string
	TransferMethod       *string
	UserName, Password   *string
	MediaType            *string
}

func (c *call) insertAction(dev *mediaDev) {
	var p mediaParams
	if !c.decode(&p) {
		return
	}
	if p.Image == nil || *p.Image == "" {
		writeError(c.w, http.StatusBadRequest, msgActionParamMissing, "the action VirtualMedia.InsertMedia requires the parameter Image")
		return
	}
	if p.Inserted != nil && !*p.Inserted {
		writeError(c.w, http.StatusBadRequest, msgActionParamValue, "the value false for the parameter Inserted is not supported")
		return
	}
	s := c.sys
	s.mu.Lock()
	busy := dev.inserted
	s.mu.Unlock()
	if busy {
		// As the Redfish spec asks: eject before inserting new media.
		writeError(c.w, http.StatusConflict, msgResourceInUse, "the virtual media %s already holds an image; eject it first", dev.id)
		return
	}
	c.insert(dev, p)
}

// insert fetches the image and, if that works, mounts it.
func (c *call) insert(dev *mediaDev, p mediaParams) {
	proto := ""
	if p.TransferProtocolType != nil {
		proto = *p.TransferProtocolType
	}
	if ferr := fetchImage(c.r.Context(), c.sys.fetch, *p.Image, proto, c.sys.cfg.FetchBytes); ferr != nil {
		writeError(c.w, ferr.status, ferr.msgID, "%s", ferr.msg)
		return
	}
	s := c.sys
	file, ok := c.insertMachine(dev, *p.Image)
	if !ok {
		return
	}
	s.mu.Lock()
	old := dev.file
	dev.file = file
	dev.image, dev.inserted, dev.transferProto = *p.Image, true, proto
	dev.writeProtect = p.WriteProtected == nil || *p.WriteProtected
	s.mu.Unlock()
	if old != "" && old != file {
		os.Remove(old) // a PATCH replaced the machine's image
	}
	c.w.WriteHeader(http.StatusNoContent)
}

// patchMedia handles the older style: PATCH {"Image": url, "Inserted": true}
// inserts, {"Image": null} or {"Inserted": false} ejects.
func (c *call) patchMedia(dev *mediaDev) {
	s := c.sys
	if !s.cfg.Media.patch() {
		c.w.Header().Set("Allow", "GET")
		writeError(c.w, http.StatusMethodNotAllowed, msgActionNotSupported, "PATCH of %s is not supported; use the VirtualMedia.InsertMedia and VirtualMedia.EjectMedia actions", c.r.URL.Path)
		return
	}
	var raw map[string]json.RawMessage
	if !c.decode(&raw) {
		return
	}
	for k := range raw {
		switch k {
		case "Image", "Inserted", "WriteProtected", "TransferProtocolType", "TransferMethod", "UserName", "Password", "MediaType":
		default:
			if !strings.HasPrefix(k, "@") {
				writeError(c.w, http.StatusBadRequest, msgPropertyUnknown, "the property %s is not writable", k)
				return
			}
		}
	}
	var p mediaParams
	if !c.decode(&p) {
		return
	}
	s.mu.Lock()
	_, tag := c.mediaDocLocked(dev)
	image, inserted := dev.image, dev.inserted
	s.mu.Unlock()
	if !c.ifMatch(tag) {
		return
	}
	if p.Image != nil {
		image = *p.Image
		inserted = image != ""
	}
	if p.Inserted != nil {
		inserted = *p.Inserted
	}
	switch {
	case !inserted || image == "":
		if !c.ejectMachine(dev) {
			return
		}
		s.mu.Lock()
		dev.eject()
		if p.WriteProtected != nil {
			dev.writeProtect = *p.WriteProtected
		}
		s.mu.Unlock()
		c.w.WriteHeader(http.StatusNoContent)
	default:
		p.Image = &image
		c.insert(dev, p)
	}
}

type fetchError struct {
	status int
	msgID  string
	msg    string
}

// fetchImage checks that the BMC could read the image at raw: a HEAD (a
// 405 or 501 is tolerated, some servers lack HEAD) and then a ranged GET
// of the first n bytes, which must not be empty.
func fetchImage(ctx context.Context, client *http.Client, raw, proto string, n int) *fetchError {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &fetchError{http.StatusBadRequest, msgActionParamFormat, fmt.Sprintf("the value %q for the parameter Image is not an http or https URL", raw)}
	}
	if proto != "" && !strings.EqualFold(proto, u.Scheme) {
		return &fetchError{http.StatusBadRequest, msgActionParamValue, fmt.Sprintf("the TransferProtocolType %s does not match the image URL scheme %s", proto, u.Scheme)}
	}
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		req, err := http.NewRequestWithContext(ctx, method, raw, nil)
		if err != nil {
			return &fetchError{http.StatusBadRequest, msgActionParamFormat, fmt.Sprintf("image %s: %v", raw, err)}
		}
		if method == http.MethodGet {
			req.Header.Set("Range", fmt.Sprintf("bytes=0-%d", n-1))
		}
		resp, err := client.Do(req)
		if err != nil {
			return &fetchError{http.StatusInternalServerError, msgInternal, fmt.Sprintf("unable to fetch the image %s: %v", raw, err)}
		}
		got, rerr := io.ReadAll(io.LimitReader(resp.Body, int64(n)))
		resp.Body.Close()
		switch {
		case method == http.MethodHead && (resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotImplemented):
			continue
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return &fetchError{http.StatusBadRequest, msgUnauthorizedURI, fmt.Sprintf("the image server refused access to %s: %s", raw, resp.Status)}
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			return &fetchError{http.StatusBadRequest, msgActionParamValue, fmt.Sprintf("unable to locate the image %s: %s", raw, resp.Status)}
		case resp.StatusCode >= 300 || resp.StatusCode < 200:
			return &fetchError{http.StatusInternalServerError, msgInternal, fmt.Sprintf("unable to fetch the image %s: %s", raw, resp.Status)}
		case method == http.MethodGet && rerr != nil:
			return &fetchError{http.StatusInternalServerError, msgInternal, fmt.Sprintf("unable to read the image %s: %v", raw, rerr)}
		case method == http.MethodGet && len(got) == 0:
			return &fetchError{http.StatusBadRequest, msgActionParamValue, fmt.Sprintf("the image %s is empty", raw)}
		}
	}
	return nil
}
