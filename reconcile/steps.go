package reconcile

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

// Step timeouts. A BMC call that takes longer than these is not coming
// back; in-band steps are bounded by the slowest disk we expect to write.
const (
	timeoutVerify   = 30 * time.Second
	timeoutPower    = 5 * time.Minute
	timeoutBoot     = time.Minute
	timeoutMedia    = 2 * time.Minute
	timeoutInspect  = 5 * time.Minute
	timeoutAgent    = time.Hour
	timeoutBIOS     = 5 * time.Minute
	timeoutRAID     = 30 * time.Minute
	timeoutFirmware = time.Hour
)

// Priorities of the core deploy steps, as in Ironic's agent deploy
// interface: boot the agent (100), write the image (80), set the boot
// device (60), tear the agent down (40), boot the instance (20). In-band
// steps of templates must fall strictly between 40 and 100: the agent runs
// only then.
const (
	prioDeploy        = 100
	prioWriteImage    = 80
	prioPrepareBoot   = 60
	prioTearDownAgent = 40
	prioBootInstance  = 20
)

// interfacePriority breaks ties between deploy steps of equal priority.
// It is Ironic's DEPLOYING_INTERFACE_PRIORITY (ironic/conductor/steps.py):
// with equal priorities, power steps run first, then management, deploy,
// bios and raid. Ironic's table predates the firmware interface; metalsync
// ranks it last, after raid, so that a firmware update never runs before
// a step Ironic would have run first.
var interfacePriority = map[string]int{
	"power":      5,
	"management": 4,
	"deploy":     3,
	"bios":       2,
	"raid":       1,
	"firmware":   0,
}

// deployStep is one Ironic-style step before it is expanded into plan
// steps.
type deployStep struct {
	Interface string
	Step      string
	Priority  int
	Args      schema.StepArgs
	Source    string // "core" or "template NAME"
	order     int    // position in core steps, then templates: the last tie-break
}

func (s deployStep) id() string { return s.Interface + "." + s.Step }

// coreDeploySteps are the steps every deployment runs.
func coreDeploySteps() []deployStep {
	return []deployStep{
		{Interface: "deploy", Step: "deploy", Priority: prioDeploy, Source: "core"},
		{Interface: "deploy", Step: "write_image", Priority: prioWriteImage, Source: "core"},
		{Interface: "deploy", Step: "prepare_instance_boot", Priority: prioPrepareBoot, Source: "core"},
		{Interface: "deploy", Step: "tear_down_agent", Priority: prioTearDownAgent, Source: "core"},
		{Interface: "deploy", Step: "boot_instance", Priority: prioBootInstance, Source: "core"},
	}
}

// mergeDeploySteps merges the core steps with the node's templates, the
// way Ironic does: a template step naming a core step (same interface and
// step) overrides its priority and arguments, priority 0 disables it, two
// templates naming the same step is an error. The result runs highest
// priority first; equal priorities go by interfacePriority, then by
// position (core steps, then templates in the order the node lists them).
func mergeDeploySteps(names []string, templates map[string]*schema.DeployTemplate) ([]deployStep, error) {
	steps := coreDeploySteps()
	index := map[string]int{}
	for i, s := range steps {
		index[s.id()] = i
	}
	fromTemplate := map[string]string{}
	for _, name := range names {
		t, ok := templates[name]
		if !ok {
			return nil, fmt.Errorf("deploy template %q does not exist", name)
		}
		for _, ts := range t.Spec.Steps {
			s := deployStep{Interface: ts.Interface, Step: ts.Step, Priority: ts.Priority, Args: ts.Args, Source: "template " + name}
			if prev, dup := fromTemplate[s.id()]; dup {
				return nil, fmt.Errorf("deploy step %s is in both %s and template %s", s.id(), prev, name)
			}
			fromTemplate[s.id()] = s.Source
			if i, ok := index[s.id()]; ok {
				steps[i].Priority, steps[i].Args, steps[i].Source = s.Priority, s.Args, s.Source
				continue
			}
			index[s.id()] = len(steps)
			steps = append(steps, s)
		}
	}
	for i := range steps {
		steps[i].order = i
	}
	steps = slices.DeleteFunc(steps, func(s deployStep) bool { return s.Priority == 0 })
	slices.SortStableFunc(steps, compareDeploySteps)
	return steps, nil
}

func compareDeploySteps(a, b deployStep) int {
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	if c := cmp.Compare(interfacePriority[b.Interface], interfacePriority[a.Interface]); c != 0 {
		return c
	}
	return cmp.Compare(a.order, b.order)
}

// inBand reports whether a deploy step runs in the deploy agent rather
// than through the BMC. Deploy-interface steps other than the core
// out-of-band ones run in the agent, as do software RAID steps.
func (s deployStep) inBand() bool {
	switch s.Interface {
	case "deploy":
		switch s.Step {
		case "deploy", "prepare_instance_boot", "tear_down_agent", "boot_instance":
			return false
		}
		return true
	case "raid":
		r, _ := s.Args.(*schema.RAIDArgs)
		return r != nil && r.SoftwareRAID()
	}
	return false
}

// builder accumulates the steps of one node's plan and checks each
// against what the node's driver and the agent can do. It tracks the
// power state the node is predicted to be in after each step.
type builder struct {
	node   *schema.Node
	driver string
	caps   Capabilities
	power  plan.PowerState // predicted power
	// macs are the NIC MACs the last inspection found (lower case); nil
	// when the node was never inspected or the inventory lists no NICs.
	macs map[string]bool
	// nicsUnknown says the last inspection could not read the NICs: the
	// MAC guard is off, and guardOff says so in a note once it mattered.
	nicsUnknown bool
	guardOff    string
	err         error // first capability error; the node's plan is refused
	// errWrapped is set once err names the operation it came from.
	errWrapped bool
}

func (b *builder) need(c drivers.Capability, what string) bool {
	if b.err != nil {
		return false
	}
	if b.caps.Drivers != nil && !b.caps.Drivers.Known(b.driver) {
		b.err = fmt.Errorf("no driver %s in this build", b.driver)
		return false
	}
	if b.caps.Drivers == nil || !b.caps.Drivers.Has(b.driver, c) {
		b.err = fmt.Errorf("driver %s cannot do %s (needed to %s)", b.driver, c, what)
		return false
	}
	return true
}

func (b *builder) needAgent(what string) bool {
	if b.err != nil {
		return false
	}
	if b.caps.Agent == nil || !b.caps.Agent(b.driver) {
		b.err = fmt.Errorf("%s needs the deploy agent; not available yet", what)
		return false
	}
	return true
}

func (b *builder) verify(state plan.State) plan.Step {
	b.need(drivers.CapPower, "verify credentials")
	return plan.Step{Action: plan.ActionVerify, Source: "core", State: state, Timeout: dur(timeoutVerify), Verify: &plan.Verify{}}
}

// powerStep changes power; it returns false when nothing needs doing.
func (b *builder) powerStep(state plan.State, action plan.PowerAction) (plan.Step, bool) {
	if action == plan.PowerActionOff && b.node.Spec.DisablePowerOff {
		return plan.Step{}, false
	}
	if action != plan.PowerActionReboot && b.power == action.Target() {
		return plan.Step{}, false
	}
	b.need(drivers.CapPower, "power "+string(action))
	s := plan.Step{Action: plan.ActionPower, Source: "core", State: state, Timeout: dur(timeoutPower), Power: &plan.Power{Action: action}}
	switch action {
	case plan.PowerActionOn:
		s.Expect.Power = plan.PowerOff
	case plan.PowerActionOff:
		s.Expect.Power = plan.PowerOn
	case plan.PowerActionReboot:
	}
	b.power = action.Target()
	return s, true
}

// bootAgent boots the node into the deploy agent from virtual media.
func (b *builder) bootAgent(state plan.State, source string) []plan.Step {
	b.need(drivers.CapBoot, "boot the deploy agent")
	b.need(drivers.CapMedia, "boot the deploy agent from virtual media")
	b.checkMACs()
	steps := []plan.Step{
		{Action: plan.ActionInsertMedia, Source: source, State: state, Timeout: dur(timeoutMedia), Media: &plan.Media{Kind: "cd"}},
		{Action: plan.ActionSetBoot, Source: source, State: state, Timeout: dur(timeoutBoot), Boot: &plan.Boot{Device: "cd"}},
	}
	// A node that is on (or whose power we cannot know) is rebooted; one
	// that is off is powered on. disablePowerOff nodes are always rebooted.
	action := plan.PowerActionReboot
	if b.power == plan.PowerOff {
		action = plan.PowerActionOn
	}
	if p, ok := b.powerStep(state, action); ok {
		p.Source = source
		steps = append(steps, p)
	}
	return steps
}

// checkMACs refuses to boot a node with a static network whose MACs the
// last inspection did not find: cloud-init drops the whole network
// configuration when one link's MAC is missing, and the node would come
// up unreachable.
//
// When the BMC did not report the NICs, nothing is known of the MACs: the
// guard is off for the node, and the plan says so in a note (guardOff)
// rather than boot the node silently unchecked.
func (b *builder) checkMACs() {
	nw := b.node.Spec.Network
	if b.err != nil || nw == nil || (nw.DHCP != nil && *nw.DHCP) {
		return
	}
	if b.nicsUnknown {
		var links []string
		for _, l := range nw.Links {
			if l.Type == schema.LinkPhy && l.MAC != "" {
				links = append(links, l.Name+" "+l.MAC)
			}
		}
		if len(links) > 0 && b.guardOff == "" {
			b.guardOff = fmt.Sprintf("MAC guard off: the BMC did not report NICs; the MACs of %s are not checked against the machine "+
				"(cloud-init drops the whole network configuration when one is wrong). Check them, or fix the BMC and change spec.inspect to inspect again",
				strings.Join(links, ", "))
		}
		return
	}
	if b.macs == nil {
		return
	}
	have := slices.Sorted(maps.Keys(b.macs))
	for _, l := range nw.Links {
		if l.Type != schema.LinkPhy || l.MAC == "" || b.macs[strings.ToLower(l.MAC)] {
			continue
		}
		b.fail(fmt.Errorf("network: link %s has MAC %s, which inspection did not find on the machine (it has %s); "+
			"cloud-init would drop the whole network configuration. Fix the MAC, or change spec.inspect to inspect again",
			l.Name, l.MAC, strings.Join(have, ", ")))
		return
	}
}

// inspectedNICsUnknown reports whether the last inspection recorded that
// the BMC did not report the NICs (drivers.Inventory.NICsUnknown).
func inspectedNICsUnknown(in *schema.Inspected) bool {
	if in == nil {
		return false
	}
	unknown, _ := in.Inventory["nicsUnknown"].(bool)
	return unknown
}

// inspectedMACs reads the NIC MACs of an inspected inventory (status
// holds it as decoded JSON).
func inspectedMACs(in *schema.Inspected) map[string]bool {
	if in == nil {
		return nil
	}
	nics, _ := in.Inventory["nics"].([]any)
	macs := map[string]bool{}
	for _, n := range nics {
		if m, ok := n.(map[string]any); ok {
			if mac, ok := m["mac"].(string); ok && mac != "" {
				macs[strings.ToLower(mac)] = true
			}
		}
	}
	if len(macs) == 0 {
		return nil
	}
	return macs
}

// leaveAgent powers the node off and ejects the agent's media.
func (b *builder) leaveAgent(state plan.State, source string) []plan.Step {
	var steps []plan.Step
	if p, ok := b.powerStep(state, plan.PowerActionOff); ok {
		p.Source = source
		steps = append(steps, p)
	}
	steps = append(steps, plan.Step{Action: plan.ActionEjectMedia, Source: source, State: state, Timeout: dur(timeoutMedia), Media: &plan.Media{Kind: "cd"}})
	return steps
}

func (b *builder) agentStep(state plan.State, source, iface, step string, args map[string]any, destructive bool) plan.Step {
	b.needAgent("step " + iface + "." + step)
	return plan.Step{Action: plan.ActionAgentStep, Source: source, State: state, Destructive: destructive,
		Timeout: dur(timeoutAgent), Expect: plan.Expect{Power: plan.PowerOn},
		Agent: &plan.Agent{Interface: iface, Step: step, Args: args}}
}

// inspectSteps inspects out of band when the driver reads inventory, else
// in band through the agent.
func (b *builder) inspectSteps(state plan.State, token string) []plan.Step {
	if b.caps.Drivers != nil && b.caps.Drivers.Has(b.driver, drivers.CapInventory) {
		return []plan.Step{{Action: plan.ActionInspect, Source: "core", State: state, Timeout: dur(timeoutInspect), Inspect: &plan.Inspect{Token: token}}}
	}
	steps := b.bootAgent(state, "core")
	steps = append(steps, b.agentStep(state, "core", "inspect", "inspect", map[string]any{"token": token}, false))
	return append(steps, b.leaveAgent(state, "core")...)
}

// canInspect reports whether the node can be inspected at all, without
// recording an error.
func (b *builder) canInspect() bool {
	has := func(c drivers.Capability) bool { return b.caps.Drivers != nil && b.caps.Drivers.Has(b.driver, c) }
	if has(drivers.CapInventory) {
		return true
	}
	return has(drivers.CapMedia) && has(drivers.CapBoot) && b.caps.Agent != nil && b.caps.Agent(b.driver)
}

// cleanSteps is Ironic's automated cleaning: erase the disks' metadata
// from the agent, then power off.
func (b *builder) cleanSteps(state plan.State) []plan.Step {
	steps := b.bootAgent(state, "core")
	steps = append(steps, b.agentStep(state, "core", "deploy", "erase_devices_metadata", nil, true))
	return append(steps, b.leaveAgent(state, "core")...)
}

// deploySteps expands the merged deploy steps into plan steps.
func (b *builder) deploySteps(state plan.State, templates map[string]*schema.DeployTemplate) []plan.Step {
	img := b.node.Spec.Provision.Image
	if img == nil {
		if b.err == nil {
			b.err = fmt.Errorf("provision.image is required to deploy")
		}
		return nil
	}
	merged, err := mergeDeploySteps(b.node.Spec.Provision.DeployTemplates, templates)
	if err != nil {
		if b.err == nil {
			b.err = err
		}
		return nil
	}
	var out []plan.Step
	for _, s := range merged {
		if s.inBand() && (s.Priority <= prioTearDownAgent || s.Priority >= prioDeploy) {
			if b.err == nil {
				b.err = fmt.Errorf("in-band step %s (%s) has priority %d; it must be between %d and %d, while the agent runs",
					s.id(), s.Source, s.Priority, prioTearDownAgent+1, prioDeploy-1)
			}
			return nil
		}
		out = append(out, b.expand(state, s, img)...)
	}
	return out
}

// expand turns one deploy step into the plan steps that carry it out.
func (b *builder) expand(state plan.State, s deployStep, img *schema.Image) []plan.Step {
	one := func(st plan.Step) []plan.Step {
		st.Source = s.Source
		st.State = state
		return []plan.Step{st}
	}
	switch s.id() {
	case "deploy.deploy":
		return b.bootAgent(state, s.Source)
	case "deploy.write_image":
		args := map[string]any{"url": img.URL, "checksum": img.Checksum, "format": img.Format}
		if h := b.node.Spec.RootDeviceHints; h != nil {
			args["root_device_hints"] = h
		}
		return []plan.Step{b.agentStep(state, s.Source, "deploy", "write_image", args, true)}
	case "deploy.prepare_instance_boot":
		b.need(drivers.CapBoot, "set the boot device")
		return one(plan.Step{Action: plan.ActionSetBoot, Timeout: dur(timeoutBoot), Boot: &plan.Boot{Device: "disk", Persistent: true}})
	case "deploy.tear_down_agent":
		return b.leaveAgent(state, s.Source)
	case "deploy.boot_instance":
		action := plan.PowerActionOn
		if b.node.Spec.DisablePowerOff {
			action = plan.PowerActionReboot
		}
		if p, ok := b.powerStep(state, action); ok {
			return one(p)
		}
		return nil
	}
	if s.inBand() {
		args, err := agentArgs(s.Args)
		if err != nil {
			b.fail(fmt.Errorf("step %s (%s): %w", s.id(), s.Source, err))
			return nil
		}
		return []plan.Step{b.agentStep(state, s.Source, s.Interface, s.Step, args, s.Interface == "raid" || s.Step == "erase_devices" || s.Step == "erase_devices_metadata")}
	}
	return b.outOfBand(state, s)
}

// outOfBand turns a template's out-of-band step into the BMC step that
// carries it out.
func (b *builder) outOfBand(state plan.State, s deployStep) []plan.Step {
	one := func(st plan.Step) []plan.Step {
		st.Source = s.Source
		st.State = state
		return []plan.Step{st}
	}
	switch s.Interface {
	case "bios":
		a, _ := s.Args.(*schema.BIOSArgs)
		if s.Step != "apply_configuration" {
			break
		}
		if a == nil || len(a.Settings) == 0 {
			b.fail(fmt.Errorf("step bios.apply_configuration (%s): args.settings must be a non-empty map, or a list of {name, value} as in Ironic", s.Source))
			return nil
		}
		b.need(drivers.CapBIOS, "apply BIOS settings")
		return one(plan.Step{Action: plan.ActionBIOS, Timeout: dur(timeoutBIOS), BIOS: &plan.BIOS{Settings: maps.Clone(map[string]any(a.Settings))}})
	case "raid":
		raid, err := raidArgs(s)
		if err != nil {
			b.fail(err)
			return nil
		}
		b.need(drivers.CapRAID, "configure hardware RAID")
		return one(plan.Step{Action: plan.ActionRAID, Destructive: true, Timeout: dur(timeoutRAID), RAID: raid})
	case "firmware":
		if s.Step != "update" {
			break
		}
		a, _ := s.Args.(*schema.FirmwareArgs)
		if a == nil || a.URL == "" {
			b.fail(fmt.Errorf("step firmware.update (%s): args.url is required", s.Source))
			return nil
		}
		b.need(drivers.CapFirmware, "update firmware")
		return one(plan.Step{Action: plan.ActionFirmware, Timeout: dur(timeoutFirmware), Firmware: &plan.Firmware{URL: a.URL, Targets: slices.Clone(a.Targets)}})
	case "management":
		if s.Step != "set_boot_device" {
			break
		}
		a, _ := s.Args.(*schema.BootDeviceArgs)
		if a == nil || !slices.Contains([]string{"cd", "disk", "pxe", "bios"}, a.Device) {
			b.fail(fmt.Errorf("step management.set_boot_device (%s): args.device must be cd, disk, pxe or bios", s.Source))
			return nil
		}
		b.need(drivers.CapBoot, "set the boot device")
		return one(plan.Step{Action: plan.ActionSetBoot, Timeout: dur(timeoutBoot), Boot: &plan.Boot{Device: a.Device, Persistent: a.Persistent}})
	case "power":
		action := map[string]plan.PowerAction{"reboot": plan.PowerActionReboot, "power_on": plan.PowerActionOn, "power_off": plan.PowerActionOff}[s.Step]
		if action == "" {
			break
		}
		if p, ok := b.powerStep(state, action); ok {
			return one(p)
		}
		return nil
	}
	b.fail(fmt.Errorf("unknown deploy step %s (%s)", s.id(), s.Source))
	return nil
}

func (b *builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// raidArgs reads a hardware RAID step: create_configuration or
// apply_configuration (existing volumes are deleted first, as Ironic's
// delete_existing defaults to true), or delete_configuration.
func raidArgs(s deployStep) (*plan.RAID, error) {
	switch s.Step {
	case "delete_configuration":
		return &plan.RAID{Delete: true}, nil
	case "create_configuration", "apply_configuration":
	default:
		return nil, fmt.Errorf("unknown deploy step %s (%s)", s.id(), s.Source)
	}
	a, _ := s.Args.(*schema.RAIDArgs)
	if a == nil || len(a.LogicalDisks) == 0 {
		return nil, fmt.Errorf("step %s (%s): list the volumes in args.volumes, args.logical_disks or args.raid_config.logical_disks", s.id(), s.Source)
	}
	r := &plan.RAID{Delete: a.DeleteExisting == nil || *a.DeleteExisting}
	for _, d := range a.LogicalDisks {
		r.Volumes = append(r.Volumes, plan.Volume{Name: d.Name, RAIDLevel: d.RAIDLevel.Redfish(), SizeGiB: int64(d.Size), Drives: slices.Clone(d.PhysicalDisks)})
	}
	return r, nil
}

// agentArgs are the arguments the deploy agent gets for an in-band step.
// Software RAID takes Ironic's apply_configuration form
// (raid_config.logical_disks, delete_existing); the other in-band steps
// take none.
func agentArgs(a schema.StepArgs) (map[string]any, error) {
	r, ok := a.(*schema.RAIDArgs)
	if !ok || r == nil {
		return nil, nil
	}
	form := struct {
		RAIDConfig struct {
			LogicalDisks []schema.LogicalDisk `json:"logical_disks"`
		} `json:"raid_config"`
		DeleteExisting *bool `json:"delete_existing,omitempty"`
	}{DeleteExisting: r.DeleteExisting}
	form.RAIDConfig.LogicalDisks = r.LogicalDisks
	// The plan holds JSON values, as it reads back from a saved plan.
	b, err := json.Marshal(form)
	if err != nil {
		return nil, fmt.Errorf("args: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("args: %w", err)
	}
	return m, nil
}

func dur(d time.Duration) plan.Duration { return plan.Duration(d) }
