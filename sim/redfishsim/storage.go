package redfishsim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// storageLocked serves /Systems/<id>/Storage: one RAID controller with
// four drives; volumes are created by POST to the Volumes collection and
// removed by DELETE.
func (c *call) storageLocked(rest []string) {
	s := c.sys
	base := s.path() + "/Storage/1"
	switch {
	case len(rest) == 0:
		c.get(collection(s.path()+"/Storage", "StorageCollection", "Storage Collection", []string{base}), nil)
	case len(rest) == 1 && rest[0] == "1":
		var drives []string
		for _, d := range s.drives {
			drives = append(drives, base+"/Drives/"+d.id)
		}
		c.get(doc{
			"@odata.id": base, "@odata.type": "#Storage.v1_15_0.Storage", "Id": "1", "Name": "RAID Controller",
			"Status": statusOK(),
			"StorageControllers": []doc{{
				"@odata.id": base + "#/StorageControllers/0", "MemberId": "0", "Name": "Contoso Integrated RAID",
				"Manufacturer": "Contoso", "Model": "12Gbs Integrated RAID", "FirmwareVersion": "1.0.0.7",
				"SupportedRAIDTypes": sortedKeys(raidTypes), "SupportedDeviceProtocols": []string{"SAS", "SATA"},
				"Status": statusOK(),
			}},
			"Drives":             refs(drives...),
			"Drives@odata.count": len(drives),
			"Volumes":            ref(base + "/Volumes"),
			"Links":              doc{"Enclosures": refs(chassisPath(s.id))},
			"Description":        "Integrated RAID Controller",
		}, nil)
	case len(rest) == 3 && rest[0] == "1" && rest[1] == "Drives":
		d, ok := s.drive(rest[2])
		if !ok {
			c.notFound()
			return
		}
		dd := doc{
			"@odata.id": base + "/Drives/" + d.id, "@odata.type": "#Drive.v1_13_0.Drive", "Id": d.id, "Name": "Drive " + d.id,
			"Model": d.model, "SerialNumber": d.serial, "Manufacturer": "Contoso", "CapacityBytes": d.capacity,
			"MediaType": d.media, "Protocol": d.protocol, "BlockSizeBytes": 512, "Status": statusOK(),
		}
		if d.rpm > 0 {
			dd["RotationSpeedRPM"] = d.rpm
		}
		c.get(dd, nil)
	case len(rest) == 2 && rest[0] == "1" && rest[1] == "Volumes":
		if !c.method(http.MethodGet, http.MethodPost) {
			return
		}
		if c.r.Method == http.MethodPost {
			c.createVolumeLocked()
			return
		}
		var ids []string
		for _, v := range s.volumes {
			ids = append(ids, base+"/Volumes/"+v.id)
		}
		c.ok(collection(base+"/Volumes", "VolumeCollection", "Storage Volume Collection", ids), nil)
	case len(rest) == 3 && rest[0] == "1" && rest[1] == "Volumes":
		i := slices.IndexFunc(s.volumes, func(v *volume) bool { return v.id == rest[2] })
		if i < 0 {
			c.notFound()
			return
		}
		if !c.method(http.MethodGet, http.MethodDelete) {
			return
		}
		v := s.volumes[i]
		d := c.volumeDoc(v)
		if c.r.Method == http.MethodDelete {
			if c.ifMatch(d) {
				s.volumes = slices.Delete(s.volumes, i, i+1)
				c.w.WriteHeader(http.StatusNoContent)
			}
			return
		}
		c.ok(d, d)
	default:
		c.notFound()
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (c *call) volumeDoc(v *volume) doc {
	base := c.sys.path() + "/Storage/1"
	var drives []string
	for _, d := range v.drives {
		drives = append(drives, base+"/Drives/"+d)
	}
	return doc{
		"@odata.id": base + "/Volumes/" + v.id, "@odata.type": "#Volume.v1_9_0.Volume", "Id": v.id, "Name": v.name,
		"RAIDType": v.raid, "CapacityBytes": v.capacity, "Encrypted": false, "Status": statusOK(),
		"Links": doc{"Drives": refs(drives...)},
	}
}

// createVolumeLocked validates and creates a volume: known RAID type,
// enough drives, drives of this controller not used by another volume,
// capacity within what the drives give.
func (c *call) createVolumeLocked() {
	var req struct {
		Name          string
		RAIDType      string
		CapacityBytes int64
		Links         struct {
			Drives []struct {
				ID string `json:"@odata.id"`
			}
		}
	}
	if !c.decode(&req) {
		return
	}
	s := c.sys
	minDrives, ok := raidTypes[req.RAIDType]
	if !ok {
		writeError(c.w, http.StatusBadRequest, msgPropertyValue, "the value %q for the property RAIDType is not in the list of acceptable values %v", req.RAIDType, sortedKeys(raidTypes))
		return
	}
	if len(req.Links.Drives) < minDrives {
		writeError(c.w, http.StatusBadRequest, msgPropertyValue, "%s needs at least %d drives, got %d", req.RAIDType, minDrives, len(req.Links.Drives))
		return
	}
	if req.RAIDType == "RAID10" && len(req.Links.Drives)%2 != 0 {
		writeError(c.w, http.StatusBadRequest, msgPropertyValue, "RAID10 needs an even number of drives, got %d", len(req.Links.Drives))
		return
	}
	prefix := s.path() + "/Storage/1/Drives/"
	var ids []string
	var smallest int64
	for _, l := range req.Links.Drives {
		id, ok := strings.CutPrefix(l.ID, prefix)
		d, found := s.drive(id)
		if !ok || !found || slices.Contains(ids, id) {
			writeError(c.w, http.StatusBadRequest, msgPropertyValue, "the drive %q is not a distinct drive of %s", l.ID, s.path()+"/Storage/1")
			return
		}
		for _, v := range s.volumes {
			if slices.Contains(v.drives, id) {
				writeError(c.w, http.StatusBadRequest, msgResourceInUse, "the drive %s is already used by volume %s", id, v.id)
				return
			}
		}
		if smallest == 0 || d.capacity < smallest {
			smallest = d.capacity
		}
		ids = append(ids, id)
	}
	n := int64(len(ids))
	usable := map[string]int64{"RAID0": n, "RAID1": 1, "RAID5": n - 1, "RAID6": n - 2, "RAID10": n / 2}[req.RAIDType] * smallest
	if req.CapacityBytes < 0 || req.CapacityBytes > usable {
		writeError(c.w, http.StatusBadRequest, msgPropertyValue, "the capacity %d is more than the %d bytes the drives give", req.CapacityBytes, usable)
		return
	}
	capacity := req.CapacityBytes
	if capacity == 0 {
		capacity = usable
	}
	v := &volume{id: fmt.Sprint(s.nextVol), name: req.Name, raid: req.RAIDType, capacity: capacity, drives: ids}
	if v.name == "" {
		v.name = "Volume " + v.id
	}
	s.nextVol++
	s.volumes = append(s.volumes, v)
	d := c.volumeDoc(v)
	c.w.Header().Set("Location", d["@odata.id"].(string))
	writeJSON(c.w, http.StatusCreated, d, etagOf(d))
}
