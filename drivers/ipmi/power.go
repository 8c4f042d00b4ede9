package ipmi

import (
	"context"
	"fmt"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"

	"metalsync.dev/metalsync/drivers"
)

// PowerState reads Get Chassis Status.
func (b *BMC) PowerState(ctx context.Context) (drivers.PowerState, error) {
	st := drivers.PowerUnknown
	err := b.do(ctx, "power status", true, func(ctx context.Context, c *client.Client) error {
		res, err := c.GetChassisStatus(ctx)
		if err != nil {
			return err
		}
		st = drivers.PowerOff
		if res.PowerIsOn {
			st = drivers.PowerOn
		}
		return nil
	})
	if err != nil {
		return drivers.PowerUnknown, err
	}
	return st, nil
}

// SetPower sends Chassis Control and reads the power state back until it is
// action's target or ctx ends:
//
//	on, off          power up, power down (nothing when already there)
//	graceful-off     soft shutdown (ACPI), waits for the OS to power off
//	reboot           hard reset when on, power up when off
//	graceful-reboot  soft shutdown, wait for off, power up
func (b *BMC) SetPower(ctx context.Context, action drivers.PowerAction) error {
	op := "power " + string(action)
	switch action {
	case drivers.ActionOn, drivers.ActionOff, drivers.ActionGracefulOff, drivers.ActionReboot, drivers.ActionGracefulReboot:
	default:
		return drivers.Unsupported("ipmi", op)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ipmi %s: %s: %w", b.host, op, err)
	}
	cur, err := b.PowerState(ctx)
	if err != nil {
		return err
	}
	switch action {
	case drivers.ActionOn:
		if cur == drivers.PowerOn {
			return nil
		}
		return b.control(ctx, op, chassis.ChassisControlPowerUp, drivers.PowerOn)
	case drivers.ActionOff:
		if cur == drivers.PowerOff {
			return nil
		}
		return b.control(ctx, op, chassis.ChassisControlPowerDown, drivers.PowerOff)
	case drivers.ActionGracefulOff:
		if cur == drivers.PowerOff {
			return nil
		}
		return b.control(ctx, op, chassis.ChassisControlSoftShutdown, drivers.PowerOff)
	case drivers.ActionReboot:
		if cur == drivers.PowerOff {
			return b.control(ctx, op, chassis.ChassisControlPowerUp, drivers.PowerOn)
		}
		// A reset keeps the chassis powered, so reading "on" back proves
		// nothing; the BMC's completion code is the only evidence.
		return b.control(ctx, op, chassis.ChassisControlHardReset, drivers.PowerOn)
	default: // drivers.ActionGracefulReboot
		if cur == drivers.PowerOn {
			if err := b.control(ctx, op, chassis.ChassisControlSoftShutdown, drivers.PowerOff); err != nil {
				return err
			}
		}
		return b.control(ctx, op, chassis.ChassisControlPowerUp, drivers.PowerOn)
	}
}

// control sends one Chassis Control command and waits for want.
func (b *BMC) control(ctx context.Context, op string, cmd chassis.ChassisControl, want drivers.PowerState) error {
	// Power up and down may be repeated safely; a reset or a shutdown must
	// not be sent twice.
	repeatable := cmd == chassis.ChassisControlPowerUp || cmd == chassis.ChassisControlPowerDown
	err := b.do(ctx, op, repeatable, func(ctx context.Context, c *client.Client) error {
		_, err := c.ChassisControl(ctx, cmd)
		return err
	})
	if err != nil {
		return err
	}
	return b.waitPower(ctx, op, want)
}

// waitPower polls the power state until it is want or ctx ends.
func (b *BMC) waitPower(ctx context.Context, op string, want drivers.PowerState) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		st, err := b.PowerState(ctx)
		if err != nil {
			return err
		}
		if st == want {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("ipmi %s: %s: power still %s: %w", b.host, op, st, ctx.Err())
		}
	}
}
