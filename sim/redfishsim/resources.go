package redfishsim

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

func sysPath(id string) string     { return "/redfish/v1/Systems/" + id }
func mgrPath(id string) string     { return "/redfish/v1/Managers/" + id }
func chassisPath(id string) string { return "/redfish/v1/Chassis/" + id }

func (c *call) serviceRoot() doc {
	uuid := "92384634-2938-2342-8820-489239905423"
	if c.v.only != nil {
		uuid = c.v.only.uuid()
	}
	return doc{
		"@odata.id":      "/redfish/v1/",
		"@odata.type":    "#ServiceRoot.v1_16_0.ServiceRoot",
		"Id":             "RootService",
		"Name":           "Root Service",
		"RedfishVersion": "1.15.0",
		"UUID":           uuid,
		"Vendor":         "metalsync",
		"Product":        "metalsync Redfish simulator",
		"Systems":        ref("/redfish/v1/Systems"),
		"Chassis":        ref("/redfish/v1/Chassis"),
		"Managers":       ref("/redfish/v1/Managers"),
		"SessionService": ref("/redfish/v1/SessionService"),
		"UpdateService":  ref("/redfish/v1/UpdateService"),
		"Tasks":          ref("/redfish/v1/TaskService"),
		"Links":          doc{"Sessions": ref(sessionsPath)},
	}
}

func (c *call) odata() doc {
	var values []doc
	for _, n := range []string{"Systems", "Chassis", "Managers", "SessionService", "UpdateService", "TaskService"} {
		values = append(values, doc{"name": n, "kind": "Singleton", "url": "/redfish/v1/" + n})
	}
	return doc{"@odata.context": "/redfish/v1/$metadata", "value": values}
}

// members serves the Systems, Managers and Chassis collections.
func (c *call) members(kind string) {
	var paths []string
	for _, s := range c.v.systems() {
		if kind == "Systems" {
			paths = append(paths, s.path())
			continue
		}
		paths = append(paths, "/redfish/v1/"+kind+"/"+s.id)
	}
	typ := map[string]string{
		"Systems":  "ComputerSystemCollection",
		"Managers": "ManagerCollection",
		"Chassis":  "ChassisCollection",
	}[kind]
	name := map[string]string{
		"Systems":  "Computer System Collection",
		"Managers": "Manager Collection",
		"Chassis":  "Chassis Collection",
	}[kind]
	c.get(collection("/redfish/v1/"+kind, typ, name, paths), nil)
}

// systemRoutes serves /Systems/<id>/... with the system locked: nothing
// here waits.
func (c *call) systemRoutes(rest []string) {
	s := c.sys
	if len(rest) > 0 && c.sectionFails(Section(rest[0])) {
		return
	}
	if s.cfg.Machine != nil && c.machineRoutes(rest) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked(c.now)
	base := s.path()
	at := func(p ...string) bool { return slices.Equal(rest, p) }
	switch {
	case len(rest) == 0:
		c.systemLocked()
	case at("Actions", "ComputerSystem.Reset"):
		if c.method(http.MethodPost) {
			c.resetLocked()
		}
	case at("Processors"):
		c.get(collection(base+"/Processors", "ProcessorCollection", "Processors Collection", []string{base + "/Processors/CPU1", base + "/Processors/CPU2"}), nil)
	case len(rest) == 2 && rest[0] == "Processors" && (rest[1] == "CPU1" || rest[1] == "CPU2"):
		c.get(doc{
			"@odata.id": base + "/Processors/" + rest[1], "@odata.type": "#Processor.v1_18_0.Processor",
			"Id": rest[1], "Name": "Processor", "Socket": "CPU " + rest[1][3:], "ProcessorType": "CPU",
			"ProcessorArchitecture": "x86", "InstructionSet": "x86-64", "Manufacturer": "Intel(R) Corporation",
			"Model": cpuModel, "MaxSpeedMHz": 3200, "TotalCores": 32, "TotalThreads": 64, "Status": statusOK(),
		}, nil)
	case at("Memory"):
		var ms []string
		for i := 1; i <= dimms; i++ {
			ms = append(ms, fmt.Sprintf("%s/Memory/DIMM%d", base, i))
		}
		c.get(collection(base+"/Memory", "MemoryCollection", "Memory Module Collection", ms), nil)
	case len(rest) == 2 && rest[0] == "Memory" && validIndex(rest[1], "DIMM", dimms):
		c.get(doc{
			"@odata.id": base + "/Memory/" + rest[1], "@odata.type": "#Memory.v1_17_0.Memory",
			"Id": rest[1], "Name": "DIMM Slot " + rest[1][4:], "CapacityMiB": dimmMiB, "MemoryType": "DRAM",
			"MemoryDeviceType": "DDR4", "BaseModuleType": "RDIMM", "OperatingSpeedMhz": 3200,
			"Manufacturer": "Contoso", "SerialNumber": fmt.Sprintf("%s-%s", s.serial(), rest[1]), "Status": statusOK(),
		}, nil)
	case at("EthernetInterfaces"):
		c.get(collection(base+"/EthernetInterfaces", "EthernetInterfaceCollection", "Ethernet Interface Collection",
			[]string{base + "/EthernetInterfaces/NIC.1", base + "/EthernetInterfaces/NIC.2"}), nil)
	case len(rest) == 2 && rest[0] == "EthernetInterfaces" && (rest[1] == "NIC.1" || rest[1] == "NIC.2"):
		n := int(rest[1][4] - '0')
		c.get(doc{
			"@odata.id": base + "/EthernetInterfaces/" + rest[1], "@odata.type": "#EthernetInterface.v1_9_0.EthernetInterface",
			"Id": rest[1], "Name": "System Ethernet Interface", "MACAddress": s.mac(n), "PermanentMACAddress": s.mac(n),
			"SpeedMbps": 25000, "FullDuplex": true, "LinkStatus": "LinkUp", "InterfaceEnabled": true, "Status": statusOK(),
		}, nil)
	case len(rest) >= 1 && rest[0] == "Storage":
		c.storageLocked(rest[1:])
	case len(rest) >= 1 && rest[0] == "Bios":
		c.biosLocked(rest[1:])
	default:
		c.notFound()
	}
}

// systemLocked serves GET and PATCH of the ComputerSystem.
func (c *call) systemLocked() {
	if !c.method(http.MethodGet, http.MethodPatch) {
		return
	}
	d, tag := c.systemDocLocked()
	if c.r.Method == http.MethodPatch {
		if c.ifMatch(tag) {
			c.patchSystemLocked()
		}
		return
	}
	c.ok(d, tag)
}

const (
	cpuModel = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
	dimms    = 8
	dimmMiB  = 32768
)

func validIndex(s, prefix string, n int) bool {
	num, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return false
	}
	for i := 1; i <= n; i++ {
		if num == fmt.Sprint(i) {
			return true
		}
	}
	return false
}

// systemDocLocked renders the ComputerSystem and the part of it a PATCH
// can change (its ETag source).
func (c *call) systemDocLocked() (doc, any) {
	s := c.sys
	base := s.path()
	tag := struct {
		Boot  bootState
		Extra map[string]string
	}{s.boot, s.extra}
	d := doc{
		"@odata.id":    base,
		"@odata.type":  "#ComputerSystem.v1_20_0.ComputerSystem",
		"Id":           s.id,
		"Name":         "System " + s.id,
		"SystemType":   "Physical",
		"Manufacturer": "Contoso",
		"Model":        "3500RX",
		"SKU":          s.serial(),
		"SerialNumber": s.serial(),
		"PartNumber":   "224071-J23",
		"UUID":         s.uuid(),
		"BiosVersion":  s.biosVersionLocked(),
		"PowerState":   s.powerStateLocked(),
		"Status":       doc{"State": "Enabled", "Health": "OK", "HealthRollup": "OK"},
		"Boot": doc{
			"BootSourceOverrideTarget":                          s.boot.Target,
			"BootSourceOverrideTarget@Redfish.AllowableValues":  bootTargets,
			"BootSourceOverrideEnabled":                         s.boot.Enabled,
			"BootSourceOverrideEnabled@Redfish.AllowableValues": bootEnabled,
			"BootSourceOverrideMode":                            s.boot.Mode,
			"BootSourceOverrideMode@Redfish.AllowableValues":    bootModes,
		},
		"ProcessorSummary":   doc{"Count": 2, "CoreCount": 64, "LogicalProcessorCount": 128, "Model": cpuModel, "Status": statusOK()},
		"MemorySummary":      doc{"TotalSystemMemoryGiB": dimms * dimmMiB / 1024, "Status": statusOK()},
		"Processors":         ref(base + "/Processors"),
		"Memory":             ref(base + "/Memory"),
		"EthernetInterfaces": ref(base + "/EthernetInterfaces"),
		"Storage":            ref(base + "/Storage"),
		"Bios":               ref(base + "/Bios"),
		"Links": doc{
			"Chassis":   refs(chassisPath(s.id)),
			"ManagedBy": refs(mgrPath(s.id)),
		},
		"Actions": doc{
			"#ComputerSystem.Reset": doc{
				"target":                            base + "/Actions/ComputerSystem.Reset",
				"ResetType@Redfish.AllowableValues": resetTypes,
			},
		},
	}
	for k, v := range s.extra {
		d[k] = v
	}
	if s.cfg.Sections[SectionMemory] != 0 {
		// No summary: a client has to follow the Memory link, which fails.
		d["MemorySummary"] = doc{"Status": statusOK()}
	}
	if s.cfg.MediaOnSystem {
		d["VirtualMedia"] = ref(s.mediaBase())
	}
	return d, tag
}

// patchSystemLocked applies a PATCH of the boot override and the few
// writable strings, validating everything before changing anything.
func (c *call) patchSystemLocked() {
	var body map[string]json.RawMessage
	if !c.decode(&body) {
		return
	}
	s := c.sys
	boot := s.boot
	extra := maps.Clone(s.extra)
	for k, raw := range body {
		switch {
		case strings.HasPrefix(k, "@"):
		case k == "Boot":
			var b map[string]any
			if err := json.Unmarshal(raw, &b); err != nil {
				writeError(c.w, http.StatusBadRequest, msgPropertyType, "the value of the property Boot is not an object")
				return
			}
			for bk, bv := range b {
				var dst *string
				var allowed []string
				switch bk {
				case "BootSourceOverrideTarget":
					dst, allowed = &boot.Target, bootTargets
				case "BootSourceOverrideEnabled":
					dst, allowed = &boot.Enabled, bootEnabled
				case "BootSourceOverrideMode":
					dst, allowed = &boot.Mode, bootModes
				case "UefiTargetBootSourceOverride", "BootNext", "BootOrder", "HttpBootUri", "AutomaticRetryConfig":
					continue // accepted, not simulated
				default:
					if strings.Contains(bk, "@") {
						continue
					}
					writeError(c.w, http.StatusBadRequest, msgPropertyUnknown, "the property Boot/%s is not in the list of valid properties for the resource", bk)
					return
				}
				str, ok := bv.(string)
				if !ok || !slices.Contains(allowed, str) {
					writeError(c.w, http.StatusBadRequest, msgPropertyValue, "the value %v for the property Boot/%s is not in the list of acceptable values %v", bv, bk, allowed)
					return
				}
				*dst = str
			}
		case k == "AssetTag" || k == "HostName" || k == "IndicatorLED":
			var str string
			if err := json.Unmarshal(raw, &str); err != nil {
				writeError(c.w, http.StatusBadRequest, msgPropertyType, "the value of the property %s is not a string", k)
				return
			}
			extra[k] = str
		default:
			writeError(c.w, http.StatusBadRequest, msgPropertyUnknown, "the property %s is not in the list of valid properties for the resource", k)
			return
		}
	}
	s.boot, s.extra = boot, extra
	c.w.WriteHeader(http.StatusNoContent)
}

func (c *call) resetLocked() {
	var req struct{ ResetType *string }
	if !c.decode(&req) {
		return
	}
	if req.ResetType == nil {
		writeError(c.w, http.StatusBadRequest, msgActionParamMissing, "the action ComputerSystem.Reset requires the parameter ResetType")
		return
	}
	if !slices.Contains(resetTypes, *req.ResetType) || !c.sys.resetLocked(c.now, *req.ResetType) {
		writeError(c.w, http.StatusBadRequest, msgActionParamValue, "the value %q for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values", *req.ResetType)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

// biosLocked serves Bios, Bios/Settings (pending, applied at the next
// power-on) and the ResetBios action.
func (c *call) biosLocked(rest []string) {
	s := c.sys
	base := s.path() + "/Bios"
	switch {
	case len(rest) == 0:
		c.get(doc{
			"@odata.id": base, "@odata.type": "#Bios.v1_2_0.Bios", "Id": "Bios", "Name": "BIOS Configuration Current Settings",
			"AttributeRegistry": "BiosAttributeRegistry.v1_0_0",
			"Attributes":        maps.Clone(s.bios),
			"@Redfish.Settings": doc{
				"@odata.type":    "#Settings.v1_3_5.Settings",
				"SettingsObject": ref(base + "/Settings"),
			},
			"Actions": doc{"#Bios.ResetBios": doc{"target": base + "/Actions/Bios.ResetBios"}},
		}, s.bios)
	case slices.Equal(rest, []string{"Settings"}):
		if !c.method(http.MethodGet, http.MethodPatch) {
			return
		}
		if c.r.Method == http.MethodPatch {
			if c.ifMatch(s.pending) {
				c.patchBiosLocked()
			}
			return
		}
		merged := maps.Clone(s.bios)
		maps.Copy(merged, s.pending)
		c.ok(doc{
			"@odata.id": base + "/Settings", "@odata.type": "#Bios.v1_2_0.Bios", "Id": "Settings",
			"Name": "BIOS Configuration Pending Settings", "AttributeRegistry": "BiosAttributeRegistry.v1_0_0",
			"Attributes": merged,
		}, s.pending)
	case slices.Equal(rest, []string{"Actions", "Bios.ResetBios"}):
		if c.method(http.MethodPost) {
			clear(s.pending)
			maps.Copy(s.pending, biosDefaults)
			c.w.WriteHeader(http.StatusNoContent)
		}
	default:
		c.notFound()
	}
}

func (c *call) patchBiosLocked() {
	var req struct {
		Attributes map[string]any
	}
	if !c.decode(&req) {
		return
	}
	if len(req.Attributes) == 0 {
		writeError(c.w, http.StatusBadRequest, msgPropertyMissing, "the property Attributes is required")
		return
	}
	s := c.sys
	for k, v := range req.Attributes {
		cur, ok := s.bios[k]
		if !ok {
			writeError(c.w, http.StatusBadRequest, msgPropertyUnknown, "the attribute %s is not in the attribute registry", k)
			return
		}
		_, curNum := cur.(int)
		_, curStr := cur.(string)
		_, isNum := v.(float64)
		_, isStr := v.(string)
		if curNum != isNum || curStr != isStr {
			writeError(c.w, http.StatusBadRequest, msgPropertyType, "the value %v for the attribute %s is of a different type than the attribute can accept", v, k)
			return
		}
	}
	for k, v := range req.Attributes {
		if f, ok := v.(float64); ok {
			v = int(f)
		}
		s.pending[k] = v
	}
	c.w.WriteHeader(http.StatusNoContent)
}

// managerRoutes serves /Managers/<id>/...; virtual media may fetch an
// image, so it locks for itself.
func (c *call) managerRoutes(rest []string) {
	s := c.sys
	base := mgrPath(s.id)
	switch {
	case len(rest) == 0:
		d := doc{
			"@odata.id": base, "@odata.type": "#Manager.v1_15_0.Manager", "Id": s.id, "Name": "Manager",
			"ManagerType": "BMC", "Model": "Joo Janta 200", "FirmwareVersion": "7.00.00.171",
			"UUID": s.uuid(), "PowerState": "On", "Status": statusOK(),
			"Links": doc{
				"ManagerForServers": refs(s.path()),
				"ManagerForChassis": refs(chassisPath(s.id)),
				"ManagerInChassis":  ref(chassisPath(s.id)),
			},
			"Actions": doc{"#Manager.Reset": doc{
				"target":                            base + "/Actions/Manager.Reset",
				"ResetType@Redfish.AllowableValues": []string{"GracefulRestart", "ForceRestart"},
			}},
		}
		if !s.cfg.MediaOnSystem {
			d["VirtualMedia"] = ref(s.mediaBase())
		}
		c.get(d, nil)
	case slices.Equal(rest, []string{"Actions", "Manager.Reset"}):
		if c.method(http.MethodPost) {
			c.w.WriteHeader(http.StatusNoContent)
		}
	case len(rest) >= 1 && rest[0] == "VirtualMedia" && !s.cfg.MediaOnSystem:
		c.virtualMedia(rest[1:])
	default:
		c.notFound()
	}
}

func (c *call) chassisRoutes(rest []string) {
	s := c.sys
	if len(rest) != 0 {
		c.notFound()
		return
	}
	s.mu.Lock()
	s.settleLocked(c.now)
	power := s.powerStateLocked()
	s.mu.Unlock()
	c.get(doc{
		"@odata.id": chassisPath(s.id), "@odata.type": "#Chassis.v1_21_0.Chassis", "Id": s.id, "Name": "Chassis " + s.id,
		"ChassisType": "RackMount", "Manufacturer": "Contoso", "Model": "3500RX", "SerialNumber": s.serial(),
		"PowerState": power, "Status": statusOK(),
		"Links": doc{
			"ComputerSystems": refs(s.path()),
			"ManagedBy":       refs(mgrPath(s.id)),
		},
	}, nil)
}
