package plan

// Repeatable reports whether running the step a second time, after a run
// that may or may not have finished, leaves the machine as one run would.
// The executor repeats such a step when a restart finds its intent without
// a result; any other destructive step is first checked on the machine.
//
// Non-destructive steps are repeatable. Of the destructive ones, erasing
// metadata erases the same signatures again, and writing the image writes
// the same verified bytes to the same disk before anything booted from it
// (the result is durable before the next step runs). Creating RAID volumes
// (in band or through the BMC) is not: a second run adds volumes or
// rebuilds arrays over members already in use.
func (s Step) Repeatable() bool {
	if !s.Destructive {
		return true
	}
	if s.Agent != nil {
		switch s.Agent.Interface + "." + s.Agent.Step {
		case "deploy.erase_devices_metadata", "deploy.erase_devices", "deploy.write_image":
			return true
		}
	}
	return false
}
