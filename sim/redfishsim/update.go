package redfishsim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	updatePath = "/redfish/v1/UpdateService"
	tasksPath  = "/redfish/v1/TaskService/Tasks"
	monitors   = "/redfish/v1/TaskService/TaskMonitors"
)

// task is a running or finished SimpleUpdate.
type task struct {
	id          string
	image       string
	systems     []string
	start, done time.Time
}

func (t *task) doc(now time.Time) doc {
	d := doc{
		"@odata.id": tasksPath + "/" + t.id, "@odata.type": "#Task.v1_7_0.Task", "Id": t.id,
		"Name": "Firmware update " + t.id, "TaskMonitor": monitors + "/" + t.id,
		"StartTime": t.start.UTC().Format(time.RFC3339), "TaskStatus": "OK",
		"Payload": doc{"TargetUri": updatePath + "/Actions/UpdateService.SimpleUpdate", "HttpOperation": "POST"},
	}
	if now.Before(t.done) {
		pct := 0
		if total := t.done.Sub(t.start); total > 0 {
			pct = int(100 * now.Sub(t.start) / total)
		}
		d["TaskState"], d["PercentComplete"] = "Running", pct
		return d
	}
	d["TaskState"], d["PercentComplete"] = "Completed", 100
	d["EndTime"] = t.done.UTC().Format(time.RFC3339)
	d["Messages"] = []doc{{"MessageId": "Update.1.0.UpdateSuccessful", "Message": "The image " + t.image + " was applied.", "Severity": "OK"}}
	return d
}

// updateService serves UpdateService, its firmware inventory and the
// SimpleUpdate action, which answers 202 with a task monitor.
func (c *call) updateService(segs []string) {
	switch {
	case len(segs) == 0:
		c.get(doc{
			"@odata.id": updatePath, "@odata.type": "#UpdateService.v1_11_0.UpdateService", "Id": "UpdateService",
			"Name": "Update Service", "ServiceEnabled": true, "Status": statusOK(),
			"FirmwareInventory": ref(updatePath + "/FirmwareInventory"),
			"Actions": doc{"#UpdateService.SimpleUpdate": doc{
				"target": updatePath + "/Actions/UpdateService.SimpleUpdate",
				"TransferProtocol@Redfish.AllowableValues": []string{"HTTP", "HTTPS"},
			}},
		}, nil)
	case slices.Equal(segs, []string{"Actions", "UpdateService.SimpleUpdate"}):
		if c.method(http.MethodPost) {
			c.simpleUpdate()
		}
	case segs[0] == "FirmwareInventory" && c.v.firmwareFails(c):
	case segs[0] == "FirmwareInventory" && len(segs) == 1:
		var ids []string
		for _, s := range c.v.systems() {
			ids = append(ids, updatePath+"/FirmwareInventory/BIOS-"+s.id, updatePath+"/FirmwareInventory/BMC-"+s.id)
		}
		c.get(collection(updatePath+"/FirmwareInventory", "SoftwareInventoryCollection", "Firmware Inventory Collection", ids), nil)
	case segs[0] == "FirmwareInventory" && len(segs) == 2:
		kind, id, _ := strings.Cut(segs[1], "-")
		s := c.v.srv.systems[id]
		if s == nil || (c.v.only != nil && s != c.v.only) || (kind != "BIOS" && kind != "BMC") {
			c.notFound()
			return
		}
		version := "7.00.00.171"
		if kind == "BIOS" {
			s.mu.Lock()
			s.settleLocked(c.now)
			version = s.biosVersionLocked()
			s.mu.Unlock()
		}
		c.get(doc{
			"@odata.id": updatePath + "/FirmwareInventory/" + segs[1], "@odata.type": "#SoftwareInventory.v1_4_0.SoftwareInventory",
			"Id": segs[1], "Name": kind + " firmware of " + id, "Version": version, "Updateable": true, "Status": statusOK(),
			"RelatedItem": refs(s.path()),
		}, nil)
	default:
		c.notFound()
	}
}

// biosVersionLocked is the BIOS version, which moves with each finished update.
func (s *system) biosVersionLocked() string {
	if len(s.applied) == 0 {
		return "2.19.1"
	}
	return fmt.Sprintf("2.19.1-u%d", len(s.applied))
}

func (c *call) simpleUpdate() {
	var req struct {
		ImageURI         string
		TransferProtocol string
		Targets          []string
	}
	if !c.decode(&req) {
		return
	}
	if req.ImageURI == "" {
		writeError(c.w, http.StatusBadRequest, msgActionParamMissing, "the action UpdateService.SimpleUpdate requires the parameter ImageURI")
		return
	}
	var targets []*system
	for _, t := range req.Targets {
		s := c.v.targetSystem(t)
		if s == nil {
			writeError(c.w, http.StatusBadRequest, msgActionParamValue, "the target %q is not a system, manager or firmware item of this service", t)
			return
		}
		if !slices.Contains(targets, s) {
			targets = append(targets, s)
		}
	}
	if len(targets) == 0 {
		if c.v.only == nil {
			writeError(c.w, http.StatusBadRequest, msgActionParamMissing, "the action UpdateService.SimpleUpdate requires the parameter Targets on a service with several systems")
			return
		}
		targets = []*system{c.v.only}
	}
	if ferr := fetchImage(c.r.Context(), targets[0].fetch, req.ImageURI, req.TransferProtocol, targets[0].cfg.FetchBytes); ferr != nil {
		writeError(c.w, ferr.status, ferr.msgID, "%s", ferr.msg)
		return
	}
	t := &task{image: req.ImageURI, start: c.now, done: c.now}
	for _, s := range targets {
		done := c.now.Add(s.cfg.UpdateDuration)
		s.mu.Lock()
		s.updates = append(s.updates, update{image: req.ImageURI, done: done})
		s.mu.Unlock()
		t.systems = append(t.systems, s.id)
		if done.After(t.done) {
			t.done = done
		}
	}
	v := c.v
	v.mu.Lock()
	v.nextTask++
	t.id = strconv.Itoa(v.nextTask)
	v.tasks[t.id] = t
	v.mu.Unlock()
	c.w.Header().Set("Location", monitors+"/"+t.id)
	if t.done.After(c.now) {
		c.w.Header().Set("Retry-After", "1")
	}
	writeJSON(c.w, http.StatusAccepted, t.doc(c.now), "")
}

// targetSystem resolves a SimpleUpdate target URI to a system.
func (v *service) targetSystem(uri string) *system {
	segs, ok := splitPath(uri)
	if !ok || len(segs) < 2 {
		return nil
	}
	id := segs[1]
	switch segs[0] {
	case "Systems":
		if s := v.srv.bySeg[id]; s != nil {
			id = s.id
		}
	case "Managers":
	case "UpdateService":
		if len(segs) != 3 || segs[1] != "FirmwareInventory" {
			return nil
		}
		_, id, _ = strings.Cut(segs[2], "-")
	default:
		return nil
	}
	s := v.srv.systems[id]
	if s == nil || (v.only != nil && s != v.only) {
		return nil
	}
	return s
}

// taskService serves the tasks and their monitors: a monitor answers 202
// while the task runs and 200 with the finished task after.
func (c *call) taskService(segs []string) {
	v := c.v
	switch {
	case len(segs) == 0:
		c.get(doc{
			"@odata.id": "/redfish/v1/TaskService", "@odata.type": "#TaskService.v1_2_0.TaskService", "Id": "TaskService",
			"Name": "Task Service", "ServiceEnabled": true, "Status": statusOK(), "Tasks": ref(tasksPath),
		}, nil)
	case len(segs) == 1 && segs[0] == "Tasks":
		v.mu.Lock()
		var ids []string
		for id := range v.tasks {
			ids = append(ids, id)
		}
		v.mu.Unlock()
		slices.SortFunc(ids, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
		for i := range ids {
			ids[i] = tasksPath + "/" + ids[i]
		}
		c.get(collection(tasksPath, "TaskCollection", "Task Collection", ids), nil)
	case len(segs) == 2 && (segs[0] == "Tasks" || segs[0] == "TaskMonitors"):
		v.mu.Lock()
		t := v.tasks[segs[1]]
		v.mu.Unlock()
		if t == nil {
			c.notFound()
			return
		}
		if !c.method(http.MethodGet) {
			return
		}
		d := t.doc(c.now)
		if segs[0] == "TaskMonitors" && d["TaskState"] == "Running" {
			c.w.Header().Set("Location", monitors+"/"+t.id)
			c.w.Header().Set("Retry-After", "1")
			writeJSON(c.w, http.StatusAccepted, d, "")
			return
		}
		c.ok(d, nil)
	default:
		c.notFound()
	}
}
