package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/stmcginnis/gofish/schemas"

	"metalsync.dev/metalsync/drivers"
)

// storageDoc is the part of a Storage resource the RAID calls read.
type storageDoc struct {
	path    string
	Drives  []link
	Volumes link
}

// volumeDoc is the part of a Volume resource the driver reads.
type volumeDoc struct {
	ODataID       string `json:"@odata.id"`
	ID            string `json:"Id"`
	Name          string
	RAIDType      schemas.RAIDType
	VolumeType    string
	CapacityBytes int64
	Links         struct{ Drives []link }
	etag          string
}

// volumeTypeRAID maps the deprecated VolumeType of older services.
var volumeTypeRAID = map[string]string{
	"NonRedundant":             "RAID0",
	"Mirrored":                 "RAID1",
	"StripedWithParity":        "RAID5",
	"SpannedMirrors":           "RAID10",
	"SpannedStripesWithParity": "RAID50",
}

func (v volumeDoc) volume() drivers.Volume {
	level := string(v.RAIDType)
	if level == "" {
		level = volumeTypeRAID[v.VolumeType]
	}
	out := drivers.Volume{ID: v.ODataID, Name: v.Name, RAIDLevel: level, CapacityBytes: v.CapacityBytes}
	for _, d := range v.Links.Drives {
		out.Drives = append(out.Drives, path.Base(d.ID))
	}
	return out
}

// storages reads the system's Storage resources.
func (b *BMC) storages(ctx context.Context) ([]storageDoc, error) {
	var sys struct{ Storage link }
	if _, err := b.get(ctx, b.system(), &sys); err != nil {
		return nil, err
	}
	if sys.Storage.ID == "" {
		return nil, fmt.Errorf("system has no Storage resource: %w", drivers.ErrUnsupported)
	}
	paths, err := b.collection(ctx, sys.Storage.ID)
	if err != nil {
		return nil, err
	}
	var out []storageDoc
	for _, p := range paths {
		st := storageDoc{path: p}
		if _, err := b.get(ctx, p, &st); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Volumes lists the RAID volumes of every storage controller. A volume's ID
// is its Redfish path, unique across controllers.
func (b *BMC) Volumes(ctx context.Context) ([]drivers.Volume, error) {
	vols, err := b.volumes(ctx)
	if err != nil {
		return nil, fmt.Errorf("redfish: volumes: %w", err)
	}
	out := make([]drivers.Volume, 0, len(vols))
	for _, v := range vols {
		out = append(out, v.volume())
	}
	return out, nil
}

func (b *BMC) volumes(ctx context.Context) ([]volumeDoc, error) {
	sts, err := b.storages(ctx)
	if err != nil {
		return nil, err
	}
	var out []volumeDoc
	for _, st := range sts {
		if st.Volumes.ID == "" {
			continue
		}
		paths, err := b.collection(ctx, st.Volumes.ID)
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			var v volumeDoc
			resp, err := b.get(ctx, p, &v)
			if err != nil {
				return nil, err
			}
			if v.ODataID == "" {
				v.ODataID = p
			}
			v.etag = resp.etag()
			out = append(out, v)
		}
	}
	return out, nil
}

var raidLevels = []string{"RAID0", "RAID1", "RAID5", "RAID6", "RAID10"}

// CreateVolume creates a volume on the controller that holds all the named
// drives (drive Id or path). gofish has no volume creation: this is a plain
// POST to the controller's Volumes collection.
func (b *BMC) CreateVolume(ctx context.Context, spec drivers.VolumeSpec) (drivers.Volume, error) {
	if err := ctx.Err(); err != nil {
		return drivers.Volume{}, fmt.Errorf("redfish: create volume: %w", err)
	}
	fail := func(err error) (drivers.Volume, error) {
		return drivers.Volume{}, fmt.Errorf("redfish: create volume %q: %w", spec.Name, err)
	}
	if !slices.Contains(raidLevels, spec.RAIDLevel) {
		return fail(fmt.Errorf("RAID level %q is not one of %s", spec.RAIDLevel, strings.Join(raidLevels, ", ")))
	}
	if spec.CapacityBytes < 0 {
		return fail(fmt.Errorf("negative capacity"))
	}
	sts, err := b.storages(ctx)
	if err != nil {
		return fail(err)
	}
	var st *storageDoc
	var links []map[string]string
	if len(spec.Drives) == 0 {
		// No drives named (Ironic's logical disk without physical_disks):
		// the first RAID controller's drives that no volume uses.
		st, links, err = b.freeDrives(ctx, sts)
		if err != nil {
			return fail(err)
		}
	} else {
		for i := range sts {
			if l, ok := driveLinks(sts[i].Drives, spec.Drives); ok {
				st, links = &sts[i], l
				break
			}
		}
		if st == nil {
			return fail(fmt.Errorf("no storage controller holds all of drives %s", strings.Join(spec.Drives, ", ")))
		}
	}
	if st.Volumes.ID == "" {
		return fail(fmt.Errorf("controller %s has no Volumes collection: %w", st.path, drivers.ErrUnsupported))
	}
	body := map[string]any{
		"RAIDType": spec.RAIDLevel,
		"Links":    map[string]any{"Drives": links},
	}
	if spec.Name != "" {
		body["Name"] = spec.Name
	}
	if spec.CapacityBytes > 0 {
		body["CapacityBytes"] = spec.CapacityBytes
	}
	resp, err := b.do(ctx, request{method: http.MethodPost, path: st.Volumes.ID, body: body})
	if err != nil {
		if statusIs(err, http.StatusMethodNotAllowed, http.StatusNotImplemented) {
			return fail(fmt.Errorf("%w: %w", err, drivers.ErrUnsupported))
		}
		return fail(err)
	}
	created := resp.header.Get("Location")
	if resp.status == http.StatusAccepted {
		if err := b.waitTask(ctx, resp); err != nil {
			return fail(err)
		}
		created = ""
	} else if created == "" {
		var doc struct {
			ID string `json:"@odata.id"`
		}
		_ = json.Unmarshal(resp.body, &doc)
		created = doc.ID
	}
	if created != "" {
		var v volumeDoc
		if _, err := b.get(ctx, created, &v); err != nil {
			return fail(fmt.Errorf("read created volume: %w", err))
		}
		if v.ODataID == "" {
			v.ODataID = created
		}
		return v.volume(), nil
	}
	// A task created it: find it by name.
	vols, err := b.volumes(ctx)
	if err != nil {
		return fail(err)
	}
	for _, v := range vols {
		if v.Name == spec.Name && spec.Name != "" {
			return v.volume(), nil
		}
	}
	return fail(fmt.Errorf("the BMC accepted the request but lists no volume named %q", spec.Name))
}

// freeDrives picks the first controller with a Volumes collection and free
// drives, and returns those drives.
func (b *BMC) freeDrives(ctx context.Context, sts []storageDoc) (*storageDoc, []map[string]string, error) {
	vols, err := b.volumes(ctx)
	if err != nil {
		return nil, nil, err
	}
	used := map[string]bool{}
	for _, v := range vols {
		for _, d := range v.Links.Drives {
			used[d.ID] = true
		}
	}
	for i := range sts {
		if sts[i].Volumes.ID == "" {
			continue
		}
		var links []map[string]string
		for _, d := range sts[i].Drives {
			if !used[d.ID] {
				links = append(links, map[string]string{"@odata.id": d.ID})
			}
		}
		if len(links) > 0 {
			return &sts[i], links, nil
		}
	}
	return nil, nil, errors.New("no drives named, and no RAID controller has free drives")
}

// driveLinks resolves drive names (Id or path) against a controller's drive
// links; ok is false unless all are found.
func driveLinks(have []link, want []string) ([]map[string]string, bool) {
	var out []map[string]string
	for _, w := range want {
		i := slices.IndexFunc(have, func(l link) bool { return l.ID == w || path.Base(l.ID) == w })
		if i < 0 {
			return nil, false
		}
		out = append(out, map[string]string{"@odata.id": have[i].ID})
	}
	return out, true
}

// DeleteVolume deletes a volume named by its ID (path) or its Redfish Id
// when that is unique. Only volumes the system lists are deleted: an
// arbitrary path is never sent a DELETE.
func (b *BMC) DeleteVolume(ctx context.Context, id string) error {
	vols, err := b.volumes(ctx)
	if err != nil {
		return fmt.Errorf("redfish: delete volume %s: %w", id, err)
	}
	var match []volumeDoc
	for _, v := range vols {
		if v.ODataID == id || v.ID == id {
			match = append(match, v)
		}
	}
	switch len(match) {
	case 0:
		return fmt.Errorf("redfish: delete volume %s: no such volume", id)
	case 1:
	default:
		return fmt.Errorf("redfish: delete volume %s: %d volumes have this Id: use the path", id, len(match))
	}
	resp, err := b.modify(ctx, http.MethodDelete, match[0].ODataID, match[0].etag, nil)
	if err == nil {
		err = b.waitTask(ctx, resp)
	}
	if err != nil {
		if statusIs(err, http.StatusMethodNotAllowed, http.StatusNotImplemented) {
			err = fmt.Errorf("%w: %w", err, drivers.ErrUnsupported)
		}
		return fmt.Errorf("redfish: delete volume %s: %w", id, err)
	}
	return nil
}
