package apply

import (
	"context"
	"fmt"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/reconcile/plan"
)

// check asks the machine whether a destructive step whose intent a restart
// found had run: the agent by the step's command id, the BMC by listing
// the volumes a RAID step creates. It reports true when the step ran
// (its effects are recorded), false when it did not, and a stalling error
// when the machine cannot tell: then a person looks before anything runs.
func (s *session) check(ctx context.Context, step plan.Step) (bool, error) {
	switch {
	case step.Agent != nil:
		agent := s.agent()
		if agent == nil {
			return false, Stall(fmt.Errorf("step %s needs the deploy agent; not available yet", step.Name()))
		}
		// An agent that never calls back (the node went off) must not
		// hold the check for the rest of the run.
		if step.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(step.Timeout))
			defer cancel()
		}
		res, ran, err := agent.Command(ctx, s.name, s.cmdID)
		if err != nil {
			return false, fmt.Errorf("ask the agent about command %s: %w", s.cmdID, err)
		}
		if ran {
			s.recordAgent(step, res)
		}
		return ran, nil
	case step.RAID != nil:
		return s.raidDone(ctx, step.RAID)
	}
	return false, Stall(fmt.Errorf("step %s may have run before a restart and the machine cannot be asked; check the node, then redeploy it", step.Name()))
}

// raidDone compares the BMC's volumes with the planned ones: all there
// (and, when the step deletes first, nothing else) means the step ran;
// none there means it did not get as far as creating; anything else is
// a half-done step no rule can finish safely.
func (s *session) raidDone(ctx context.Context, r *plan.RAID) (bool, error) {
	var vols []drivers.Volume
	err := s.call(ctx, func(ctx context.Context, b drivers.BMC) error {
		rm, ok := b.(drivers.RAIDManager)
		if !ok {
			return Stall(drivers.Unsupported(s.driver, "raid"))
		}
		var err error
		vols, err = rm.Volumes(ctx)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("read volumes: %w", err)
	}
	found := 0
	for _, want := range r.Volumes {
		for _, v := range vols {
			if matchesVolume(v, want) {
				found++
				break
			}
		}
	}
	switch {
	case found == len(r.Volumes) && (!r.Delete || len(vols) == len(r.Volumes)):
		return true, nil
	case found == 0:
		return false, nil
	}
	return false, Stall(fmt.Errorf("raid step interrupted by a restart: %d of %d planned volumes exist among the %d the BMC lists; check the controller, then redeploy the node", found, len(r.Volumes), len(vols)))
}

// matchesVolume: a named volume by name; an unnamed one by level and size.
func matchesVolume(v drivers.Volume, want plan.Volume) bool {
	if want.Name != "" {
		return v.Name == want.Name
	}
	if want.SizeGiB > 0 && v.CapacityBytes != want.SizeGiB<<30 {
		return false
	}
	return want.RAIDLevel == "" || v.RAIDLevel == want.RAIDLevel
}
