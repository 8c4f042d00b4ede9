package redfish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/stmcginnis/gofish/schemas"

	"metalsync.dev/metalsync/drivers"
)

// systemDoc is the part of a ComputerSystem the power and boot calls read.
// It is decoded directly (not into schemas.ComputerSystem) because a power
// read runs for every node of the fleet and needs only PowerState.
type systemDoc struct {
	ODataID    string `json:"@odata.id"`
	ETag       string `json:"@odata.etag"`
	PowerState schemas.PowerState
	Boot       struct {
		BootSourceOverrideTarget  schemas.BootSource
		BootSourceOverrideEnabled schemas.BootSourceOverrideEnabled
		BootSourceOverrideMode    schemas.BootSourceOverrideMode
		AllowedTargets            []schemas.BootSource             `json:"BootSourceOverrideTarget@Redfish.AllowableValues"`
		AllowedModes              []schemas.BootSourceOverrideMode `json:"BootSourceOverrideMode@Redfish.AllowableValues"`
	}
	Actions struct {
		Reset struct {
			Target     string              `json:"target"`
			Allowed    []schemas.ResetType `json:"ResetType@Redfish.AllowableValues"`
			ActionInfo string              `json:"@Redfish.ActionInfo"`
		} `json:"#ComputerSystem.Reset"`
	}
	Settings struct {
		SettingsObject link
	} `json:"@Redfish.Settings"`
}

// PowerState reads the system's power: exactly one GET.
func (b *BMC) PowerState(ctx context.Context) (drivers.PowerState, error) {
	var doc struct{ PowerState schemas.PowerState }
	if _, err := b.get(ctx, b.system(), &doc); err != nil {
		return drivers.PowerUnknown, fmt.Errorf("redfish: power state: %w", err)
	}
	return powerOf(doc.PowerState), nil
}

func powerOf(s schemas.PowerState) drivers.PowerState {
	switch s {
	case schemas.OnPowerState:
		return drivers.PowerOn
	case schemas.OffPowerState:
		return drivers.PowerOff
	default: // PoweringOn, PoweringOff, Paused: not settled
		return drivers.PowerUnknown
	}
}

// resetPreferences lists, per action, the reset types to use, best first.
// The BMC's allowable values decide which one is sent.
var resetPreferences = map[drivers.PowerAction][]schemas.ResetType{
	drivers.ActionOn:             {schemas.OnResetType, schemas.ForceOnResetType, schemas.PushPowerButtonResetType},
	drivers.ActionOff:            {schemas.ForceOffResetType, "Off"},
	drivers.ActionGracefulOff:    {schemas.GracefulShutdownResetType},
	drivers.ActionReboot:         {schemas.ForceRestartResetType, schemas.PowerCycleResetType, schemas.GracefulRestartResetType},
	drivers.ActionGracefulReboot: {schemas.GracefulRestartResetType},
}

// SetPower sends the reset that performs action and reads the system back
// until the BMC reports the target state or ctx ends.
func (b *BMC) SetPower(ctx context.Context, action drivers.PowerAction) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redfish: set power: %w", err)
	}
	prefs, ok := resetPreferences[action]
	if !ok {
		return fmt.Errorf("redfish: set power: unknown action %q: %w", action, drivers.ErrUnsupported)
	}
	var sys systemDoc
	if _, err := b.get(ctx, b.system(), &sys); err != nil {
		return fmt.Errorf("redfish: set power %s: %w", action, err)
	}
	current := powerOf(sys.PowerState)
	target := action.Target()
	switch {
	case (action == drivers.ActionOff || action == drivers.ActionGracefulOff || action == drivers.ActionOn) && current == target:
		return nil // already there: a reset would fail or, worse, act
	case (action == drivers.ActionReboot || action == drivers.ActionGracefulReboot) && current == drivers.PowerOff:
		prefs = resetPreferences[drivers.ActionOn] // rebooting an off machine powers it on
	}
	if sys.Actions.Reset.Target == "" {
		return fmt.Errorf("redfish: set power %s: system declares no ComputerSystem.Reset action: %w", action, drivers.ErrUnsupported)
	}
	allowed := sys.Actions.Reset.Allowed
	if len(allowed) == 0 && sys.Actions.Reset.ActionInfo != "" {
		allowed = b.actionInfoValues(ctx, sys.Actions.Reset.ActionInfo, "ResetType")
	}
	rt, ok := pickReset(prefs, allowed)
	if !ok {
		return fmt.Errorf("redfish: set power %s: BMC allows reset types %v, none of %v: %w", action, allowed, prefs, drivers.ErrUnsupported)
	}
	body := map[string]any{"ResetType": rt}
	// A 202 task is not followed: the power state read back is the proof.
	if _, err := b.do(ctx, request{method: http.MethodPost, path: sys.Actions.Reset.Target, body: body}); err != nil {
		if statusIs(err, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented) {
			return fmt.Errorf("redfish: set power %s: %w: %w", action, err, drivers.ErrUnsupported)
		}
		return fmt.Errorf("redfish: set power %s: %w", action, err)
	}
	if err := b.waitPower(ctx, target); err != nil {
		return fmt.Errorf("redfish: set power %s (%s): %w", action, rt, err)
	}
	return nil
}

// pickReset returns the first preference the BMC allows. A BMC that
// declares no allowable values gets the first preference.
func pickReset(prefs, allowed []schemas.ResetType) (schemas.ResetType, bool) {
	if len(allowed) == 0 {
		return prefs[0], true
	}
	for _, p := range prefs {
		if slices.Contains(allowed, p) {
			return p, true
		}
	}
	return "", false
}

// actionInfoValues reads the allowable values of one parameter from an
// ActionInfo resource; nil when it cannot be read (then the defaults apply).
func (b *BMC) actionInfoValues(ctx context.Context, path, param string) []schemas.ResetType {
	var doc struct {
		Parameters []struct {
			Name            string
			AllowableValues []schemas.ResetType
		}
	}
	if _, err := b.get(ctx, path, &doc); err != nil {
		return nil
	}
	for _, p := range doc.Parameters {
		if p.Name == param {
			return p.AllowableValues
		}
	}
	return nil
}

// Poll intervals after a state change: short first (simulators and fast
// BMCs settle in well under a second), growing to spare slow BMCs.
const (
	pollFirst = 100 * time.Millisecond
	pollMax   = 2 * time.Second
)

// waitPower reads the power state until it is target or ctx ends.
func (b *BMC) waitPower(ctx context.Context, target drivers.PowerState) error {
	delay := pollFirst
	last := drivers.PowerUnknown
	for {
		var doc struct{ PowerState schemas.PowerState }
		if _, err := b.get(ctx, b.system(), &doc); err == nil {
			last = powerOf(doc.PowerState)
			if last == target {
				return nil
			}
		} else if ctx.Err() == nil && !isTransient(err) {
			return fmt.Errorf("read back: %w", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("power still %s, want %s: %w", last, target, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, pollMax)
	}
}

// isTransient reports errors worth another poll: a BMC busy with a reset
// often drops connections or answers 5xx for a moment.
func isTransient(err error) bool {
	if isUnreachable(err) {
		return true
	}
	var be *drivers.BMCError
	return errors.As(err, &be) && !errors.Is(err, drivers.ErrPermanent) && !errors.Is(err, drivers.ErrAuth)
}

// sanitizeETag drops the "-gzip" suffix some servers append to an ETag.
func sanitizeETag(e string) string {
	if len(e) > 6 && e[len(e)-6:] == `-gzip"` {
		return e[:len(e)-6] + `"`
	}
	return e
}

// patch PATCHes path; see modify.
func (b *BMC) patch(ctx context.Context, path, etag string, body any) (*response, error) {
	return b.modify(ctx, http.MethodPatch, path, etag, body)
}

// modify PATCHes or DELETEs path with If-Match when an ETag is known. On
// 412 (stale ETag) or 428 (the BMC requires one) it reads a fresh ETag and
// tries once more.
func (b *BMC) modify(ctx context.Context, method, path, etag string, body any) (*response, error) {
	resp, err := b.do(ctx, request{method: method, path: path, body: body, ifMatch: sanitizeETag(etag)})
	if !statusIs(err, http.StatusPreconditionFailed, http.StatusPreconditionRequired) {
		return resp, err
	}
	fresh, gerr := b.do(ctx, request{method: http.MethodGet, path: path})
	if gerr != nil {
		return nil, err
	}
	return b.do(ctx, request{method: method, path: path, body: body, ifMatch: sanitizeETag(fresh.etag())})
}
