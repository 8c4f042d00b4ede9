// Package steps runs the daemon's in-band commands on the node: it is
// the dispatch between agentapi.Command and the packages that do the
// work (hw, hints, wipe, swraid, imagewrite). Every command yields a
// Result; failures carry an error naming the device and what failed.
package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"metalsync.dev/metalsync/agent/hints"
	"metalsync.dev/metalsync/agent/hw"
	"metalsync.dev/metalsync/agent/imagewrite"
	"metalsync.dev/metalsync/agent/swraid"
	"metalsync.dev/metalsync/agent/wipe"
	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/internal/backoff"
)

// Fetcher opens a daemon path at a byte offset (HTTP Range); the agent's
// client implements it.
type Fetcher interface {
	Open(ctx context.Context, path string, offset int64) (io.ReadCloser, error)
}

// Config is what the agent's main provides.
type Config struct {
	Fetch   Fetcher
	Log     *slog.Logger
	SysRoot string // "/sys"
	DevRoot string // "/dev"
}

// Runner runs commands. It is safe for concurrent use, though the agent
// runs one command at a time.
type Runner struct {
	log    *slog.Logger
	roots  hw.Roots
	images *imagewrite.Writer
	raid   *swraid.Manager

	mu sync.Mutex
	// rootVolume is the md root volume this agent created (a path under
	// DevRoot); guarded by mu. After a restart it is rediscovered.
	rootVolume string
}

// New returns a Runner. procfs is taken to sit beside sysfs ("/proc"
// for "/sys"), so one root serves tests too.
func New(cfg Config) *Runner {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The zero Config runs on the machine itself.
	if cfg.SysRoot == "" {
		cfg.SysRoot = "/sys"
	}
	if cfg.DevRoot == "" {
		cfg.DevRoot = "/dev"
	}
	roots := hw.Roots{
		Sys:  cfg.SysRoot,
		Proc: filepath.Join(filepath.Dir(filepath.Clean(cfg.SysRoot)), "proc"),
		Dev:  cfg.DevRoot,
	}
	return &Runner{
		log:   log,
		roots: roots,
		images: &imagewrite.Writer{Fetch: cfg.Fetch, Log: log,
			Backoff: backoff.Policy{Base: time.Second, Max: 30 * time.Second}},
		raid: &swraid.Manager{MDADM: swraid.MDADM, Exec: swraid.RunCommand,
			SysRoot: cfg.SysRoot, DevRoot: cfg.DevRoot, Log: log},
	}
}

// Run runs one command and reports its result. It never panics: a bug
// in a step is reported as a failure, since the agent is PID 1 and must
// keep serving.
func (r *Runner) Run(ctx context.Context, cmd agentapi.Command) (res agentapi.Result) {
	step := cmd.Interface + "." + cmd.Step
	log := r.log.With("step", step, "command", cmd.ID)
	defer func() {
		if p := recover(); p != nil {
			log.ErrorContext(ctx, "step panicked", "panic", fmt.Sprint(p))
			res = agentapi.Result{ID: cmd.ID, State: agentapi.StateFailed, Error: fmt.Sprintf("%s: internal error: %v", step, p)}
		}
	}()
	log.InfoContext(ctx, "running step")
	res = agentapi.Result{ID: cmd.ID, State: agentapi.StateSucceeded}
	var err error
	switch step {
	case "inspect.inspect":
		res.Inventory, err = r.inspect()
	case "deploy.erase_devices_metadata":
		err = r.eraseMetadata(ctx, log)
	case "raid.apply_configuration", "raid.create_configuration":
		res.RootDevice, err = r.applyRAID(ctx, log, cmd.Args)
	case "deploy.write_image":
		res.RootDevice, err = r.writeImage(ctx, log, cmd.Args)
	default:
		err = fmt.Errorf("unknown step %q", step)
	}
	if err != nil {
		log.ErrorContext(ctx, "step failed", "err", err)
		res.State, res.Error = agentapi.StateFailed, fmt.Sprintf("%s: %v", step, err)
		return res
	}
	log.InfoContext(ctx, "step succeeded", "rootDevice", res.RootDevice)
	return res
}

func (r *Runner) inspect() (*agentapi.Inventory, error) {
	inv, err := hw.Inventory(r.roots)
	return &inv, err
}

func (r *Runner) eraseMetadata(ctx context.Context, log *slog.Logger) error {
	if err := r.raid.StopAll(ctx); err != nil {
		return err
	}
	r.setRoot("")
	disks, err := hw.Disks(r.roots)
	if err != nil {
		return err
	}
	return wipe.Metadata(ctx, log, disks)
}

func (r *Runner) applyRAID(ctx context.Context, log *slog.Logger, raw json.RawMessage) (string, error) {
	var args agentapi.RAIDArgs
	if err := decode(raw, &args); err != nil {
		return "", err
	}
	if args.Delete {
		if err := r.eraseMetadata(ctx, log); err != nil {
			return "", fmt.Errorf("delete existing arrays: %w", err)
		}
	}
	disks, err := hw.Disks(r.roots)
	if err != nil {
		return "", err
	}
	arrays, err := r.raid.Apply(ctx, args, disks)
	if err != nil {
		return "", err
	}
	for _, a := range arrays {
		if a.Root {
			r.setRoot(a.Path)
			return r.wireName(a.Path), nil
		}
	}
	return "", errors.New("no root volume among the arrays") // Apply always marks one
}

func (r *Runner) writeImage(ctx context.Context, log *slog.Logger, raw json.RawMessage) (string, error) {
	var args agentapi.WriteImageArgs
	if err := decode(raw, &args); err != nil {
		return "", err
	}
	target, err := r.target(ctx, args.Hints)
	if err != nil {
		return "", err
	}
	log.InfoContext(ctx, "writing image", "device", target, "bytes", args.Size)
	if _, err := r.images.Write(ctx, target, imagewrite.Image{Path: args.ImagePath, SHA256: args.SHA256, Size: args.Size}); err != nil {
		return "", err
	}
	if args.ConfigDrive {
		if _, err := r.images.ConfigDrive(ctx, target, agentapi.PathConfigDrive, args.Size); err != nil {
			return "", err
		}
	}
	return r.wireName(target), nil
}

// target is the RAID root volume when there is one (created by this
// agent, or found under /dev/md, assembled if need be, after a
// restart), else the hinted or guessed disk.
func (r *Runner) target(ctx context.Context, h *agentapi.RootDeviceHints) (string, error) {
	if root := r.root(); root != "" {
		return root, nil
	}
	root, err := r.raid.FindRoot()
	if err == nil && root == "" {
		// After a reboot into the agent, arrays exist only on their
		// members: writing to a member would break the array.
		r.raid.AssembleAll(ctx)
		root, err = r.raid.FindRoot()
	}
	if err != nil {
		return "", err
	}
	if root != "" {
		r.setRoot(root)
		return root, nil
	}
	disks, err := hw.Disks(r.roots)
	if err != nil {
		return "", err
	}
	plain := make([]agentapi.Disk, len(disks))
	for i, d := range disks {
		plain[i] = d.Disk
	}
	d, err := hints.Choose(plain, h)
	if err != nil {
		return "", err
	}
	for _, hd := range disks {
		if hd.Name == d.Name {
			return hd.Path, nil
		}
	}
	return "", fmt.Errorf("root disk %s vanished", d.Name) // Choose picks from disks
}

func (r *Runner) root() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rootVolume
}

func (r *Runner) setRoot(p string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rootVolume = p
}

// wireName is the name the daemon knows a device by: /dev/... whatever
// DevRoot the agent runs with.
func (r *Runner) wireName(path string) string {
	rel, err := filepath.Rel(r.roots.Dev, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return path
	}
	return "/dev/" + filepath.ToSlash(rel)
}

func decode(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return errors.New("missing arguments")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("arguments: %w", err)
	}
	return nil
}
