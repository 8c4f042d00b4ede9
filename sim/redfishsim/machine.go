package redfishsim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"metalsync.dev/metalsync/sim/qemumachine"
)

// Machine is a host a simulated BMC drives instead of its own power
// model, set in SystemConfig.Machine. *qemumachine.Machine satisfies it.
type Machine interface {
	// PowerOn starts the host from firmware if it is off.
	PowerOn(ctx context.Context) error
	// PowerOff stops it at once (force) or presses the ACPI power button.
	PowerOff(ctx context.Context, force bool) error
	// Reset restarts it from firmware, switching it on if it is off.
	Reset(ctx context.Context) error
	// PowerState reports whether it runs; a host that powered itself off
	// reads false.
	PowerState(ctx context.Context) (on bool, err error)
	// SetBootOrder puts a device first from the next (re)boot on.
	SetBootOrder(ctx context.Context, first qemumachine.BootDevice) error
	// InsertMedia puts a local image file in the CD drive; EjectMedia
	// empties it.
	InsertMedia(ctx context.Context, file string) error
	EjectMedia(ctx context.Context) error
	// Dir is where the BMC keeps the images it downloads for the host.
	Dir() string
}

// machineTimeout bounds one Redfish request's work on the machine; QMP
// answers in milliseconds, so this only stops a hung QEMU from holding
// the request forever.
const machineTimeout = 60 * time.Second

// maxImageBytes caps a virtual media download.
const maxImageBytes = 16 << 30

// machineRoutes serves the system requests that reach the machine: the
// Reset action, and GET or PATCH of the system, which read its power
// state. A boot override reaches the machine at the BMC's next power-on
// or restart (as with sushy-tools), not when it is PATCHed. It reports
// whether it answered.
func (c *call) machineRoutes(rest []string) bool {
	switch {
	case slices.Equal(rest, []string{"Actions", "ComputerSystem.Reset"}):
		if c.method(http.MethodPost) {
			c.machineReset()
		}
		return true
	case len(rest) == 0:
		s := c.sys
		ctx, cancel := context.WithTimeout(c.r.Context(), machineTimeout)
		defer cancel()
		if !c.observeMachine(ctx) {
			return true
		}
		s.mu.Lock()
		s.settleLocked(c.now)
		c.systemLocked()
		s.mu.Unlock()
		return true
	}
	return false
}

// observeMachine reads the machine's power into the BMC's state; on
// failure it answers 500 and reports false.
func (c *call) observeMachine(ctx context.Context) bool {
	s := c.sys
	on, err := s.cfg.Machine.PowerState(ctx)
	if err != nil {
		writeError(c.w, http.StatusInternalServerError, msgInternal, "the BMC cannot read the host's power state: %v", err)
		return false
	}
	s.mu.Lock()
	s.phases = nil
	s.power = powerOff
	if on {
		s.power = powerOn
	}
	s.mu.Unlock()
	return true
}

// bootDevice is the machine boot device for a boot override. With
// forBoot, a Once override counts (the boot it applies to is starting);
// otherwise only Continuous does. Targets the machine lacks boot the disk.
func bootDevice(b bootState, forBoot bool) qemumachine.BootDevice {
	if b.Enabled == "Continuous" || (forBoot && b.Enabled == "Once") {
		switch b.Target {
		case "Cd":
			return qemumachine.BootCD
		case "Pxe":
			return qemumachine.BootPXE
		}
	}
	return qemumachine.BootDisk
}

// machineReset runs ComputerSystem.Reset on the machine.
func (c *call) machineReset() {
	var req struct{ ResetType *string }
	if !c.decode(&req) {
		return
	}
	if req.ResetType == nil {
		writeError(c.w, http.StatusBadRequest, msgActionParamMissing, "the action ComputerSystem.Reset requires the parameter ResetType")
		return
	}
	kind := *req.ResetType
	if !slices.Contains(resetTypes, kind) {
		writeError(c.w, http.StatusBadRequest, msgActionParamValue, "the value %q for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values", kind)
		return
	}
	s := c.sys
	s.mu.Lock()
	stuck := s.faults.PowerStuck
	s.mu.Unlock()
	if stuck {
		c.w.WriteHeader(http.StatusNoContent)
		return
	}
	s.machineMu.Lock()
	defer s.machineMu.Unlock()
	ctx, cancel := context.WithTimeout(c.r.Context(), machineTimeout)
	defer cancel()
	m := s.cfg.Machine
	on, err := m.PowerState(ctx)
	if err == nil {
		err = c.resetMachine(ctx, kind, on)
	}
	if err == nil && !c.observeMachine(ctx) {
		return
	}
	if err != nil {
		writeError(c.w, http.StatusInternalServerError, msgInternal, "the BMC could not %s the host: %v", kind, err)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

// resetMachine maps a Redfish ResetType onto the machine. A guest cannot
// be asked to reboot through ACPI, so GracefulRestart resets like
// ForceRestart; GracefulShutdown presses the power button, which a guest
// without ACPI handling ignores (it stays On, as on real hardware).
func (c *call) resetMachine(ctx context.Context, kind string, on bool) error {
	m := c.sys.cfg.Machine
	switch kind {
	case "On", "ForceOn":
		if !on {
			return c.bootMachine(ctx, m.PowerOn)
		}
	case "ForceOff":
		if on {
			return m.PowerOff(ctx, true)
		}
	case "GracefulShutdown":
		if on {
			return m.PowerOff(ctx, false)
		}
	case "PushPowerButton":
		if on {
			return m.PowerOff(ctx, false)
		}
		return c.bootMachine(ctx, m.PowerOn)
	case "ForceRestart", "GracefulRestart":
		return c.bootMachine(ctx, m.Reset)
	case "PowerCycle":
		if on {
			if err := m.PowerOff(ctx, true); err != nil {
				return err
			}
		}
		return c.bootMachine(ctx, m.PowerOn)
	}
	return nil // Nmi: accepted, not simulated
}

// bootMachine boots the machine with start, from the device the boot
// override asks for. The boot uses up a Once override (bootedLocked), and
// the machine's order goes back to what later boots, the host's own
// reboots included, must use.
func (c *call) bootMachine(ctx context.Context, start func(context.Context) error) error {
	s := c.sys
	m := s.cfg.Machine
	s.mu.Lock()
	first := bootDevice(s.boot, true)
	s.mu.Unlock()
	if err := m.SetBootOrder(ctx, first); err != nil {
		return err
	}
	if err := start(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.power = powerOn
	s.bootedLocked(c.now)
	after := bootDevice(s.boot, false)
	s.mu.Unlock()
	if after != first {
		return m.SetBootOrder(ctx, after)
	}
	return nil
}

// insertMachine downloads the image of a machine-backed CD fully into the
// machine's Dir and inserts the file, as sushy-tools does (a hot insert
// of an http URL hung the guest). Other media need nothing; it reports
// false after answering an error.
func (c *call) insertMachine(dev *mediaDev, image string) (file string, ok bool) {
	s := c.sys
	if s.cfg.Machine == nil || dev.id != "CD1" {
		return "", true
	}
	s.machineMu.Lock()
	defer s.machineMu.Unlock()
	file, ferr := downloadImage(c.r.Context(), s.fetch, image, s.cfg.Machine.Dir())
	if ferr != nil {
		writeError(c.w, ferr.status, ferr.msgID, "%s", ferr.msg)
		return "", false
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), machineTimeout)
	defer cancel()
	if err := s.cfg.Machine.InsertMedia(ctx, file); err != nil {
		os.Remove(file)
		writeError(c.w, http.StatusInternalServerError, msgInternal, "the BMC could not attach the image to the host: %v", err)
		return "", false
	}
	return file, true
}

// ejectMachine empties a machine-backed CD and removes its downloaded
// file; it reports false after answering an error.
func (c *call) ejectMachine(dev *mediaDev) bool {
	s := c.sys
	if s.cfg.Machine == nil || dev.id != "CD1" {
		return true
	}
	s.machineMu.Lock()
	defer s.machineMu.Unlock()
	ctx, cancel := context.WithTimeout(c.r.Context(), machineTimeout)
	defer cancel()
	if err := s.cfg.Machine.EjectMedia(ctx); err != nil {
		writeError(c.w, http.StatusInternalServerError, msgInternal, "the BMC could not detach the image from the host: %v", err)
		return false
	}
	s.mu.Lock()
	file := dev.file
	dev.file = ""
	s.mu.Unlock()
	if file != "" {
		os.Remove(file)
	}
	return true
}

// downloadImage GETs the whole image into a new file in dir.
func downloadImage(ctx context.Context, client *http.Client, raw, dir string) (string, *fetchError) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return "", &fetchError{http.StatusBadRequest, msgActionParamFormat, fmt.Sprintf("image %s: %v", raw, err)}
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", &fetchError{http.StatusInternalServerError, msgInternal, fmt.Sprintf("unable to fetch the image %s: %v", raw, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", &fetchError{http.StatusInternalServerError, msgInternal, fmt.Sprintf("unable to fetch the image %s: %s", raw, resp.Status)}
	}
	f, err := os.CreateTemp(dir, "vmedia-*.iso")
	if err != nil {
		return "", &fetchError{http.StatusInternalServerError, msgInternal, fmt.Sprintf("no room for the image %s: %v", raw, err)}
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, maxImageBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > maxImageBytes {
		err = fmt.Errorf("larger than %d bytes", int64(maxImageBytes))
	}
	if err != nil {
		os.Remove(f.Name())
		return "", &fetchError{http.StatusInternalServerError, msgInternal, fmt.Sprintf("unable to download the image %s: %v", raw, err)}
	}
	return f.Name(), nil
}
