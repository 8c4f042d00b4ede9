// Package swraid builds Linux software RAID (md) arrays with mdadm, the
// way the deploy agent runs raid.apply_configuration.
//
// Layout of this first version: whole disks are the members and the
// superblock is metadata 1.0, which md keeps at the end of each member.
// On a RAID-1 root each member therefore starts with the image's own
// partition table and boot code, so firmware that knows nothing of md
// (BIOS or UEFI) boots any one member; Ironic mirrors the ESP with 1.0
// for the same reason. The image must still carry mdadm in its initramfs
// to assemble the array (Ironic documents the same requirement). Arrays
// are created with --homehost=any, so mdadm stores the name "any:<name>"
// and the deployed OS (whose hostname is not the agent's) assembles it as
// /dev/md/<name> instead of a "foreign" md127.
package swraid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"metalsync.dev/metalsync/agent/hw"
	"metalsync.dev/metalsync/agentapi"
)

// MDADM is where the agent image carries Debian's mdadm.
const MDADM = "/sbin/mdadm"

// DefaultRootName names the root volume when the configuration does not.
const DefaultRootName = "root"

// Exec runs a program and returns its combined output.
type Exec func(ctx context.Context, name string, args ...string) ([]byte, error)

// RunCommand is the production Exec: no stdin, so mdadm can never wait
// on a question.
func RunCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = nil
	return cmd.CombinedOutput()
}

// Manager creates, finds and stops arrays.
type Manager struct {
	MDADM   string
	Exec    Exec
	SysRoot string
	DevRoot string
	Log     *slog.Logger
}

// Array is a created array.
type Array struct {
	Name    string
	Path    string // DevRoot/md/<name>
	Level   string
	Members []string
	Root    bool
}

// levels: the number of members and how much of them holds data.
var levels = map[string]struct {
	min  int
	even bool
	// data is how many members' worth of capacity the array has.
	data func(n int) int
}{
	"0":  {2, false, func(n int) int { return n }},
	"1":  {2, false, func(int) int { return 1 }},
	"5":  {3, false, func(n int) int { return n - 1 }},
	"6":  {4, false, func(n int) int { return n - 2 }},
	"10": {4, true, func(n int) int { return n / 2 }}, // near=2 layout
}

// NormalizeLevel accepts Ironic's spelling of RAID-10 ("1+0").
func NormalizeLevel(l string) string {
	if l == "1+0" {
		return "10"
	}
	return l
}

// Validate checks that a level can be built from n members.
func Validate(lvl string, n int) error {
	l, ok := levels[NormalizeLevel(lvl)]
	if !ok {
		return fmt.Errorf("raid level %q: supported are 0, 1, 5, 6, 10", lvl)
	}
	if n < l.min {
		return fmt.Errorf("raid level %s needs at least %d member disks, got %d", lvl, l.min, n)
	}
	if l.even && n%2 != 0 {
		return fmt.Errorf("raid level %s needs an even number of member disks, got %d", lvl, n)
	}
	return nil
}

// CreateArgs builds mdadm's arguments to create volume v at path from
// members. sizeGiB 0 uses the whole members.
func CreateArgs(path, name, lvl string, sizeGiB int64, members []string) ([]string, error) {
	lvl = NormalizeLevel(lvl)
	if err := Validate(lvl, len(members)); err != nil {
		return nil, err
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	args := []string{
		"--create", path,
		// --run: never stop to ask whether to overwrite what the members
		// looked like (the disks were erased, and there is no terminal).
		"--run",
		"--metadata=1.0",
		"--homehost=any",
		"--name=" + name,
		"--level=" + lvl,
		"--raid-devices=" + strconv.Itoa(len(members)),
	}
	if lvl == "10" {
		args = append(args, "--layout=n2")
	}
	if sizeGiB < 0 {
		return nil, fmt.Errorf("raid volume %s: size %d GiB is negative", name, sizeGiB)
	}
	if sizeGiB > 0 {
		if lvl == "0" {
			// mdadm's --size applies to levels 1/4/5/6/10 only.
			return nil, fmt.Errorf("raid volume %s: a size is not supported for RAID-0 on whole disks; omit it to use all", name)
		}
		kib := perMemberKiB(sizeGiB, levels[lvl].data(len(members)))
		args = append(args, "--size="+strconv.FormatInt(kib, 10))
	}
	return append(args, members...), nil
}

// perMemberKiB is the space each member gives so the array holds
// sizeGiB: rounded up to 1 MiB, a multiple of mdadm's default 512 KiB
// chunk.
func perMemberKiB(sizeGiB int64, dataMembers int) int64 {
	total := sizeGiB << 20 // KiB
	per := (total + int64(dataMembers) - 1) / int64(dataMembers)
	return (per + 1023) / 1024 * 1024
}

func validName(n string) error {
	if n == "" || len(n) > 32 || strings.ContainsAny(n, "/: \t\n") || n == "." || n == ".." {
		return fmt.Errorf("raid volume name %q: want 1-32 characters without '/', ':' or spaces", n)
	}
	return nil
}

// Members picks the member disks of a volume: the named ones (device
// name with or without /dev/, or serial) or, when none are named, every
// disk not taken by an earlier volume, whatever its size, as IPA's
// get_block_devices_for_raid does (the agent's own media is never a disk
// here: inventory leaves it out). Disks
// are whole-disk members, so one disk serves one volume.
func Members(v agentapi.RAIDVolume, disks []hw.Disk, taken map[string]bool) ([]hw.Disk, error) {
	var out []hw.Disk
	if len(v.Disks) == 0 {
		for _, d := range disks {
			if !taken[d.Dev] {
				out = append(out, d)
			}
		}
		return out, nil
	}
	for _, want := range v.Disks {
		i := slices.IndexFunc(disks, func(d hw.Disk) bool {
			return d.Dev == strings.TrimPrefix(want, "/dev/") || (d.Serial != "" && d.Serial == want)
		})
		if i < 0 {
			return nil, fmt.Errorf("raid volume %s: no disk %q", v.Name, want)
		}
		d := disks[i]
		if taken[d.Dev] || slices.ContainsFunc(out, func(o hw.Disk) bool { return o.Dev == d.Dev }) {
			return nil, fmt.Errorf("raid volume %s: disk %s is already a member", v.Name, d.Name)
		}
		out = append(out, d)
	}
	return out, nil
}

// Apply creates the volumes in order and returns them; the root volume
// is the one marked Root, else the first.
func (m *Manager) Apply(ctx context.Context, args agentapi.RAIDArgs, disks []hw.Disk) ([]Array, error) {
	if len(args.Volumes) == 0 {
		return nil, errors.New("raid configuration has no volumes")
	}
	roots := 0
	for _, v := range args.Volumes {
		if v.Root {
			roots++
		}
	}
	if roots > 1 {
		return nil, fmt.Errorf("raid configuration marks %d root volumes", roots)
	}
	taken := map[string]bool{}
	var arrays []Array
	for i, v := range args.Volumes {
		root := v.Root || (roots == 0 && i == 0)
		if v.Name == "" {
			v.Name = DefaultRootName
			if !root {
				v.Name = "md" + strconv.Itoa(i)
			}
		}
		members, err := Members(v, disks, taken)
		if err != nil {
			return arrays, err
		}
		paths := make([]string, len(members))
		for j, d := range members {
			paths[j] = d.Path
			taken[d.Dev] = true
		}
		path := filepath.Join(m.DevRoot, "md", v.Name)
		cargs, err := CreateArgs(path, v.Name, v.RAIDLevel, v.SizeGiB, paths)
		if err != nil {
			return arrays, err
		}
		m.Log.InfoContext(ctx, "creating md array", "device", path, "level", v.RAIDLevel, "members", strings.Join(paths, ","))
		if out, err := m.Exec(ctx, m.MDADM, cargs...); err != nil {
			return arrays, fmt.Errorf("mdadm create %s: %w: %s", path, err, lastLine(out))
		}
		arrays = append(arrays, Array{Name: v.Name, Path: path, Level: NormalizeLevel(v.RAIDLevel), Members: paths, Root: root})
	}
	return arrays, nil
}

// FindRoot rediscovers the root volume after an agent restart from
// DevRoot/md: the array named root, else the only array. It returns ""
// when there are no arrays, and an error when arrays exist but none can
// be told to be the root: writing to a member disk then would break the
// array.
func (m *Manager) FindRoot() (string, error) {
	dir := filepath.Join(m.DevRoot, "md")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("list md arrays %s: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	switch {
	case slices.Contains(names, DefaultRootName):
		return filepath.Join(dir, DefaultRootName), nil
	case len(names) == 1:
		return filepath.Join(dir, names[0]), nil
	case len(names) == 0:
		return "", nil
	}
	return "", fmt.Errorf("md arrays %s exist but none is named %s: cannot tell the root volume", strings.Join(names, ", "), DefaultRootName)
}

// AssembleAll asks mdadm to assemble every array it finds on the disks
// (--assemble --scan; --homehost=any names them /dev/md/<name>). The
// kernel does not assemble metadata 1.x arrays by itself and the agent
// runs no udev, so after a reboot into the agent a RAID root volume
// exists only on its members until this runs. Finding none is not an
// error; without mdadm it does nothing.
func (m *Manager) AssembleAll(ctx context.Context) {
	if _, err := os.Stat(m.MDADM); m.MDADM == "" || err != nil {
		return
	}
	if out, err := m.Exec(ctx, m.MDADM, "--assemble", "--scan", "--homehost=any"); err != nil {
		m.Log.InfoContext(ctx, "mdadm assembled no arrays", "err", err, "output", lastLine(out))
	}
}

// StopAll stops every md array the kernel runs (SysRoot/block/md*): with
// mdadm --stop where mdadm exists (it also removes /dev/md/<name>), else
// by writing "clear" to md/array_state.
func (m *Manager) StopAll(ctx context.Context) error {
	dir := filepath.Join(m.SysRoot, "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list block devices %s: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "md") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	_, statErr := os.Stat(m.MDADM)
	useMdadm := m.MDADM != "" && statErr == nil
	for _, n := range names {
		if useMdadm {
			dev := filepath.Join(m.DevRoot, n)
			if out, err := m.Exec(ctx, m.MDADM, "--stop", dev); err != nil {
				return fmt.Errorf("mdadm stop %s: %w: %s", dev, err, lastLine(out))
			}
		} else {
			state := filepath.Join(dir, n, "md", "array_state")
			if err := os.WriteFile(state, []byte("clear"), 0); err != nil {
				return fmt.Errorf("stop md array %s: %w", n, err)
			}
		}
		m.Log.InfoContext(ctx, "stopped md array", "device", n)
	}
	return nil
}

// lastLine keeps an error short: mdadm's last line says what failed.
func lastLine(out []byte) string {
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
