package apply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/reconcile/plan"
	"metalsync.dev/metalsync/schema"
)

// closeTimeout bounds logging out of a BMC, which must happen even when
// the run was cancelled.
const closeTimeout = 10 * time.Second

// call runs fn against the node's BMC, opening it first, inside one of the
// BMC's call slots so that no BMC sees more than perBMC calls at once.
func (s *session) call(ctx context.Context, fn func(ctx context.Context, b drivers.BMC) error) error {
	slot := s.e.slot(s.host, s.lim.perBMC)
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-slot }()
	if s.bmc == nil {
		if err := s.open(ctx); err != nil {
			return err
		}
	}
	return fn(ctx, s.bmc)
}

// open resolves credentials and opens the driver. Called with a slot held.
func (s *session) open(ctx context.Context) error {
	if s.node == nil {
		return errors.New("not in the inventory")
	}
	addr, err := schema.ParseBMCAddress(s.node.Spec.BMC.Address)
	if err != nil {
		return Stall(fmt.Errorf("bmc.address: %w", err))
	}
	if s.e.Credentials == nil {
		return Stall(errors.New("no credential resolver configured"))
	}
	creds, err := s.e.Credentials.Resolve(s.site, s.node)
	if err != nil {
		return Stall(err)
	}
	cfg := drivers.Config{Endpoint: addr.Endpoint, Username: creds.Username, Password: creds.Password}
	if t := s.node.Spec.BMC.TLS; t != nil {
		cfg.InsecureSkipVerify = !t.Verify
		if t.CAFile != "" {
			read := s.e.ReadFile
			if read == nil {
				read = os.ReadFile
			}
			pem, err := read(t.CAFile)
			if err != nil {
				return Stall(fmt.Errorf("bmc.tls.caFile: %w", err))
			}
			cfg.CAPEM = pem
		}
	}
	if o := s.node.Spec.BMC.IPMI; o != nil {
		cfg.CipherSuite = o.CipherSuite
	}
	b, err := s.e.Registry.Open(ctx, addr.Driver, cfg)
	if err != nil {
		return fmt.Errorf("open %s: %w", addr.Driver, err)
	}
	s.bmc = b
	return nil
}

func (s *session) close() {
	if s.bmc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = s.bmc.Close(ctx) // a failed logout leaves a session the BMC expires itself
	s.bmc = nil
}

// readPower reads power through the BMC.
func (s *session) readPower(ctx context.Context) (drivers.PowerState, error) {
	var p drivers.PowerState
	err := s.call(ctx, func(ctx context.Context, b drivers.BMC) error {
		var err error
		p, err = b.PowerState(ctx)
		return err
	})
	return p, err
}

// do runs one attempt of a step and re-observes what it changed.
func (s *session) do(ctx context.Context, step plan.Step) error {
	// An in-band step needs the agent running, so the node must be on; a
	// node seen off means the boot into the agent did not happen, and
	// sending the step anywhere would be wrong.
	if have := plan.PowerState(s.st.Power); step.Action == plan.ActionAgentStep && step.Expect.Power != "" &&
		have != "" && have != plan.PowerUnknown && have != step.Expect.Power {
		return Stall(fmt.Errorf("precondition: %s expects power %s, BMC reported %s", step.Name(), step.Expect.Power, have))
	}
	switch step.Action {
	case plan.ActionVerify:
		p, err := s.readPower(ctx)
		if err != nil {
			return err
		}
		s.st.Power = string(p)
		return nil
	case plan.ActionPower:
		return s.setPower(ctx, step.Power.Action)
	case plan.ActionSetBoot:
		return s.setBoot(ctx, step.Boot)
	case plan.ActionInsertMedia:
		return s.insertMedia(ctx, step.Media)
	case plan.ActionEjectMedia:
		return s.ejectMedia(ctx, step.Media)
	case plan.ActionInspect:
		return s.inspect(ctx, step.Inspect)
	case plan.ActionAgentStep:
		return s.agentStep(ctx, step)
	case plan.ActionBIOS:
		return s.call(ctx, func(ctx context.Context, b drivers.BMC) error {
			bm, ok := b.(drivers.BIOSManager)
			if !ok {
				return Stall(drivers.Unsupported(s.driver, "bios"))
			}
			// Applied settings are pending until the next boot, which a
			// later step of the same operation performs.
			return bm.ApplyBIOS(ctx, step.BIOS.Settings)
		})
	case plan.ActionRAID:
		return s.raid(ctx, step.RAID)
	case plan.ActionFirmware:
		return s.call(ctx, func(ctx context.Context, b drivers.BMC) error {
			fu, ok := b.(drivers.FirmwareUpdater)
			if !ok {
				return Stall(drivers.Unsupported(s.driver, "firmware"))
			}
			return fu.UpdateFirmware(ctx, step.Firmware.URL, step.Firmware.Targets)
		})
	}
	return Stall(fmt.Errorf("unknown action %s", step.Action))
}

// setPower changes power and confirms it by reading it back. A node
// already in the target state is left alone (a resumed run may find a
// step done whose completion was not recorded).
func (s *session) setPower(ctx context.Context, action plan.PowerAction) error {
	cur := drivers.PowerState(s.st.Power)
	if cur != drivers.PowerOn && cur != drivers.PowerOff {
		p, err := s.readPower(ctx)
		if err != nil {
			return err
		}
		cur = p
	}
	var a drivers.PowerAction
	switch action {
	case plan.PowerActionOn:
		a = drivers.ActionOn
	case plan.PowerActionOff:
		a = drivers.ActionOff
	case plan.PowerActionReboot:
		a = drivers.ActionReboot
		if cur == drivers.PowerOff {
			a = drivers.ActionOn // a reboot of a machine that is off is a power on
		}
	default:
		return Stall(fmt.Errorf("unknown power action %q", action))
	}
	if (a == drivers.ActionOn || a == drivers.ActionOff) && cur == a.Target() && drivers.PowerState(s.st.Power) != cur {
		// Just read: already where the step wants it.
		s.st.Power = string(cur)
		return nil
	}
	if err := s.call(ctx, func(ctx context.Context, b drivers.BMC) error { return b.SetPower(ctx, a) }); err != nil {
		s.st.Power = string(drivers.PowerUnknown)
		return fmt.Errorf("power %s: %w", action, err)
	}
	p, err := s.readPower(ctx)
	if err != nil {
		s.st.Power = string(drivers.PowerUnknown)
		return fmt.Errorf("power %s: read back: %w", action, err)
	}
	s.st.Power = string(p)
	if p != a.Target() {
		return fmt.Errorf("power %s: BMC reports %s: %w", action, p, ErrPowerNotApplied)
	}
	return nil
}

func (s *session) setBoot(ctx context.Context, boot *plan.Boot) error {
	dev := map[string]drivers.BootDevice{"cd": drivers.BootCD, "disk": drivers.BootDisk, "pxe": drivers.BootPXE, "bios": drivers.BootBIOS}[boot.Device]
	if dev == "" {
		return Stall(fmt.Errorf("unknown boot device %q", boot.Device))
	}
	opts := drivers.BootOptions{Device: dev, Persistent: boot.Persistent, Mode: drivers.BootMode(s.node.Spec.BootMode)}
	return s.call(ctx, func(ctx context.Context, b drivers.BMC) error {
		bs, ok := b.(drivers.BootSetter)
		if !ok {
			return Stall(drivers.Unsupported(s.driver, "boot"))
		}
		return bs.SetBoot(ctx, opts)
	})
}

// nodeMedia reports whether the node boots from per-node media: when its
// agent is a NodeMediaAgent (the real agent's token is only on that
// media), or when the node has no DHCP (network.dhcp, else the site's
// dhcp, default false) and its network must come on the media.
func (s *session) nodeMedia() bool {
	if a, ok := s.agent().(NodeMediaAgent); ok && a.BootsFromNodeMedia() {
		return true
	}
	if n := s.node.Spec.Network; n != nil && n.DHCP != nil {
		return !*n.DHCP
	}
	return !s.lim.dhcp
}

func mediaKind(m *plan.Media) drivers.MediaKind {
	if m != nil && m.Kind == "usb" {
		return drivers.MediaUSB
	}
	return drivers.MediaCD
}

// insertMedia attaches the agent's boot media: per-node media published
// through Media when the node needs it (nodeMedia), else the generic
// agent image.
func (s *session) insertMedia(ctx context.Context, m *plan.Media) error {
	kind := mediaKind(m)
	url := s.e.AgentImageURL
	if s.nodeMedia() && s.e.Media != nil {
		epoch, err := newEpoch()
		if err != nil {
			return err
		}
		u, sum, err := s.e.Media.Publish(ctx, s.node, epoch)
		if err != nil {
			return fmt.Errorf("publish media: %w", err)
		}
		url = u
		s.st.Media = &schema.Media{SHA256: sum, Kind: string(kind), Epoch: epoch}
	}
	if url == "" {
		return nil // no media configured: the simulated agent needs none
	}
	return s.call(ctx, func(ctx context.Context, b drivers.BMC) error {
		mm, ok := b.(drivers.MediaManager)
		if !ok {
			return Stall(drivers.Unsupported(s.driver, "media"))
		}
		if err := mm.InsertMedia(ctx, kind, url); err != nil {
			return err
		}
		got, err := mm.MediaStatus(ctx, kind)
		if err != nil {
			return fmt.Errorf("media status: %w", err)
		}
		if !got.Inserted || got.Image != url {
			return fmt.Errorf("insert media: BMC reports %s slot holds %q (inserted %v)", kind, got.Image, got.Inserted)
		}
		return nil
	})
}

// ejectMedia detaches the media and withdraws the published image.
func (s *session) ejectMedia(ctx context.Context, m *plan.Media) error {
	kind := mediaKind(m)
	err := s.call(ctx, func(ctx context.Context, b drivers.BMC) error {
		mm, ok := b.(drivers.MediaManager)
		if !ok {
			return Stall(drivers.Unsupported(s.driver, "media"))
		}
		if err := mm.EjectMedia(ctx, kind); err != nil {
			return err
		}
		got, err := mm.MediaStatus(ctx, kind)
		if err != nil {
			return fmt.Errorf("media status: %w", err)
		}
		if got.Inserted {
			return fmt.Errorf("eject media: BMC still reports %s inserted", kind)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// A recorded publication is withdrawn even when the node would no
	// longer get one (its agent or network changed since the insert).
	if s.e.Media != nil && (s.nodeMedia() || s.st.Media != nil) {
		if err := s.e.Media.Unpublish(ctx, s.name); err != nil {
			return fmt.Errorf("unpublish media: %w", err)
		}
	}
	// The media is out: its epoch (and the agent token derived from it)
	// is dead, and a restarted daemon must not accept it again.
	s.st.Media = nil
	return nil
}

// inspect reads the inventory out of band and records it.
func (s *session) inspect(ctx context.Context, in *plan.Inspect) error {
	var inv drivers.Inventory
	err := s.call(ctx, func(ctx context.Context, b drivers.BMC) error {
		ir, ok := b.(drivers.InventoryReader)
		if !ok {
			return Stall(drivers.Unsupported(s.driver, "inventory"))
		}
		var err error
		inv, err = ir.Inventory(ctx)
		return err
	})
	if err != nil {
		return err
	}
	// What the BMC could not serve is a warning in status, not a failure:
	// only what the node cannot be managed without (power readable,
	// credentials accepted) fails, and that fails the call above.
	warnings := slices.Clone(inv.Warnings)
	inv.Warnings = nil
	m, err := toMap(inv)
	if err != nil {
		return Stall(fmt.Errorf("inventory: %w", err))
	}
	s.st.Inspect = &schema.Inspected{Token: in.Token, At: stamp(s.e.clock().Now()), Warnings: warnings, Inventory: m}
	return nil
}

func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	err = json.Unmarshal(b, &m)
	return m, err
}

// agentStep runs an in-band step in the deploy agent and records what it
// changed on the node.
func (s *session) agentStep(ctx context.Context, step plan.Step) error {
	agent := s.agent()
	if agent == nil {
		return Stall(fmt.Errorf("step %s needs the deploy agent; not available yet", step.Name()))
	}
	res, err := agent.RunStep(ctx, s.name, s.cmdID, step)
	if err != nil {
		return err
	}
	s.recordAgent(step, res)
	return nil
}

// agent is the deploy agent serving the node's driver, or nil.
func (s *session) agent() Agent {
	if s.e.AgentFor == nil {
		return nil
	}
	return s.e.AgentFor(s.driver)
}

// recordAgent records what an in-band step changed on the node.
func (s *session) recordAgent(step plan.Step, res AgentResult) {
	now := stamp(s.e.clock().Now())
	a := step.Agent
	switch a.Interface + "." + a.Step {
	case "inspect.inspect":
		token, _ := a.Args["token"].(string)
		s.st.Inspect = &schema.Inspected{Token: token, At: now, Simulated: res.Simulated, Inventory: res.Inventory}
	case "deploy.write_image":
		url, _ := a.Args["url"].(string)
		sum, _ := a.Args["checksum"].(string)
		s.st.Deployed = &schema.Deployed{Image: url, Checksum: sum, At: now, Simulated: res.Simulated}
	case "deploy.erase_devices_metadata", "deploy.erase_devices":
		s.st.Deployed = nil
	}
}

// raid deletes existing volumes when asked and creates the planned ones,
// then confirms them by listing.
func (s *session) raid(ctx context.Context, r *plan.RAID) error {
	return s.call(ctx, func(ctx context.Context, b drivers.BMC) error {
		rm, ok := b.(drivers.RAIDManager)
		if !ok {
			return Stall(drivers.Unsupported(s.driver, "raid"))
		}
		if r.Delete {
			vols, err := rm.Volumes(ctx)
			if err != nil {
				return err
			}
			for _, v := range vols {
				if err := rm.DeleteVolume(ctx, v.ID); err != nil {
					return fmt.Errorf("delete volume %s: %w", v.ID, err)
				}
			}
		}
		created := map[string]bool{}
		for _, v := range r.Volumes {
			vol, err := rm.CreateVolume(ctx, drivers.VolumeSpec{Name: v.Name, RAIDLevel: v.RAIDLevel, CapacityBytes: v.SizeGiB << 30, Drives: v.Drives})
			if err != nil {
				return fmt.Errorf("create volume %s: %w", v.Name, err)
			}
			created[vol.ID] = true
		}
		vols, err := rm.Volumes(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // the volumes exist; only the confirmation was cut short
			}
			return err
		}
		for _, v := range vols {
			delete(created, v.ID)
		}
		if len(created) > 0 {
			return fmt.Errorf("raid: %d created volumes missing from the BMC's list", len(created))
		}
		return nil
	})
}

// newEpoch names one publication of a node's media: random, so a token
// derived from an earlier publication never works again.
func newEpoch() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("media epoch: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
