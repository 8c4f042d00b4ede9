package swraid

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/agent/hw"
	"metalsync.dev/metalsync/agentapi"
)

func members(n int) []string {
	var m []string
	for i := range n {
		m = append(m, "/dev/sd"+string(rune('a'+i)))
	}
	return m
}

func TestCreateArgs(t *testing.T) {
	base := func(lvl string, n int) []string {
		return []string{"--create", "/dev/md/root", "--run", "--metadata=1.0", "--homehost=any",
			"--name=root", "--level=" + lvl, "--raid-devices=" + string(rune('0'+n))}
	}
	tests := []struct {
		name    string
		lvl     string
		n       int
		sizeGiB int64
		want    []string
		wantErr string
	}{
		{name: "raid0 x2", lvl: "0", n: 2, want: append(base("0", 2), members(2)...)},
		{name: "raid1 x2", lvl: "1", n: 2, want: append(base("1", 2), members(2)...)},
		{name: "raid1 x3", lvl: "1", n: 3, want: append(base("1", 3), members(3)...)},
		{name: "raid1 x2 100GiB: each member gives it all", lvl: "1", n: 2, sizeGiB: 100,
			want: append(append(base("1", 2), "--size=104857600"), members(2)...)},
		{name: "raid5 x3", lvl: "5", n: 3, want: append(base("5", 3), members(3)...)},
		{name: "raid5 x3 10GiB: half each", lvl: "5", n: 3, sizeGiB: 10,
			want: append(append(base("5", 3), "--size=5242880"), members(3)...)},
		{name: "raid5 x4 10GiB: a third each, rounded up to MiB", lvl: "5", n: 4, sizeGiB: 10,
			want: append(append(base("5", 4), "--size=3495936"), members(4)...)},
		{name: "raid6 x4", lvl: "6", n: 4, want: append(base("6", 4), members(4)...)},
		{name: "raid6 x5 30GiB", lvl: "6", n: 5, sizeGiB: 30,
			want: append(append(base("6", 5), "--size=10485760"), members(5)...)},
		{name: "raid10 x4", lvl: "10", n: 4, want: append(append(base("10", 4), "--layout=n2"), members(4)...)},
		{name: "raid 1+0 x6 30GiB", lvl: "1+0", n: 6, sizeGiB: 30,
			want: append(append(base("10", 6), "--layout=n2", "--size=10485760"), members(6)...)},
		{name: "raid0 with size", lvl: "0", n: 2, sizeGiB: 10, wantErr: "RAID-0"},
		{name: "raid1 x1", lvl: "1", n: 1, wantErr: "at least 2"},
		{name: "raid0 x1", lvl: "0", n: 1, wantErr: "at least 2"},
		{name: "raid5 x2", lvl: "5", n: 2, wantErr: "at least 3"},
		{name: "raid6 x3", lvl: "6", n: 3, wantErr: "at least 4"},
		{name: "raid10 x3", lvl: "10", n: 3, wantErr: "at least 4"},
		{name: "raid10 x5", lvl: "10", n: 5, wantErr: "even"},
		{name: "raid4", lvl: "4", n: 3, wantErr: "supported are"},
		{name: "negative size", lvl: "1", n: 2, sizeGiB: -1, wantErr: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CreateArgs("/dev/md/root", "root", tt.lvl, tt.sizeGiB, members(tt.n))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("args (-want +got):\n%s", d)
			}
		})
	}
}

func TestCreateArgsBadName(t *testing.T) {
	for _, n := range []string{"", "a/b", "host:root", "a b", "..", strings.Repeat("x", 33)} {
		if _, err := CreateArgs("/dev/md/x", n, "1", 0, members(2)); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
}

const gib = int64(1) << 30

var disks = []hw.Disk{
	{Disk: agentapi.Disk{Name: "/dev/sda", SizeBytes: 100 * gib, Serial: "S-A"}, Dev: "sda", Path: "/d/sda"},
	{Disk: agentapi.Disk{Name: "/dev/sdb", SizeBytes: 100 * gib, Serial: "S-B"}, Dev: "sdb", Path: "/d/sdb"},
	{Disk: agentapi.Disk{Name: "/dev/sdc", SizeBytes: 2 * gib, Serial: "S-C"}, Dev: "sdc", Path: "/d/sdc"},
	{Disk: agentapi.Disk{Name: "/dev/sdd", SizeBytes: 200 * gib, Serial: "S-D"}, Dev: "sdd", Path: "/d/sdd"},
}

func TestMembers(t *testing.T) {
	tests := []struct {
		name    string
		vol     agentapi.RAIDVolume
		taken   map[string]bool
		want    []string
		wantErr bool
	}{
		{name: "all disks, small ones too (as IPA)", want: []string{"sda", "sdb", "sdc", "sdd"}},
		{name: "not taken ones", taken: map[string]bool{"sda": true}, want: []string{"sdb", "sdc", "sdd"}},
		{name: "by name and serial", vol: agentapi.RAIDVolume{Disks: []string{"/dev/sdd", "sda", "S-B"}}, want: []string{"sdd", "sda", "sdb"}},
		{name: "named small disk is allowed", vol: agentapi.RAIDVolume{Disks: []string{"sdc", "sda"}}, want: []string{"sdc", "sda"}},
		{name: "unknown", vol: agentapi.RAIDVolume{Disks: []string{"sdz"}}, wantErr: true},
		{name: "twice", vol: agentapi.RAIDVolume{Disks: []string{"sda", "S-A"}}, wantErr: true},
		{name: "taken", vol: agentapi.RAIDVolume{Disks: []string{"sda"}}, taken: map[string]bool{"sda": true}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Members(tt.vol, disks, tt.taken)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, d := range got {
				names = append(names, d.Dev)
			}
			if d := cmp.Diff(tt.want, names); d != "" {
				t.Errorf("members (-want +got):\n%s", d)
			}
		})
	}
}

// mdadmFake stands in for mdadm: it records each invocation and, on
// --create, makes the /dev/md/<name> node as mdadm does without udev.
type mdadmFake struct {
	calls [][]string
	fail  error
}

func (f *mdadmFake) exec(_ context.Context, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, append([]string{name}, args...))
	if f.fail != nil {
		return []byte("mdadm: cannot open /dev/sda: Device or resource busy\n"), f.fail
	}
	if len(args) > 1 && args[0] == "--create" {
		if err := os.MkdirAll(filepath.Dir(args[1]), 0o755); err != nil {
			return nil, err
		}
		return nil, os.WriteFile(args[1], nil, 0o644)
	}
	return nil, nil
}

func newManager(t *testing.T, f *mdadmFake) *Manager {
	root := t.TempDir()
	return &Manager{MDADM: "/sbin/mdadm", Exec: f.exec, SysRoot: filepath.Join(root, "sys"),
		DevRoot: filepath.Join(root, "dev"), Log: slog.New(slog.DiscardHandler)}
}

func TestApplyAndFindRoot(t *testing.T) {
	f := &mdadmFake{}
	m := newManager(t, f)
	if got, err := m.FindRoot(); err != nil || got != "" {
		t.Fatalf("FindRoot before = %q, %v", got, err)
	}
	five := append(append([]hw.Disk(nil), disks...),
		hw.Disk{Disk: agentapi.Disk{Name: "/dev/sde", SizeBytes: 200 * gib}, Dev: "sde", Path: "/d/sde"})
	arrays, err := m.Apply(context.Background(), agentapi.RAIDArgs{Volumes: []agentapi.RAIDVolume{
		{Name: "data", RAIDLevel: "0"},
		{RAIDLevel: "1", Root: true, Disks: []string{"sda", "sdb"}},
	}}, five)
	if err == nil {
		t.Fatal("data took every fit disk first; root must fail on taken disks")
	}
	m = newManager(t, f)
	arrays, err = m.Apply(context.Background(), agentapi.RAIDArgs{Volumes: []agentapi.RAIDVolume{
		{RAIDLevel: "1", Root: true, Disks: []string{"sda", "sdb"}},
		{Name: "data", RAIDLevel: "0"},
	}}, five)
	if err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(m.DevRoot, "md")
	want := []Array{
		{Name: "root", Path: filepath.Join(md, "root"), Level: "1", Members: []string{"/d/sda", "/d/sdb"}, Root: true},
		{Name: "data", Path: filepath.Join(md, "data"), Level: "0", Members: []string{"/d/sdc", "/d/sdd", "/d/sde"}},
	}
	if d := cmp.Diff(want, arrays); d != "" {
		t.Errorf("arrays (-want +got):\n%s", d)
	}
	// A restarted agent finds the root volume from /dev/md alone.
	fresh := &Manager{DevRoot: m.DevRoot}
	root, err := fresh.FindRoot()
	if err != nil || root != filepath.Join(md, "root") {
		t.Errorf("FindRoot = %q, %v", root, err)
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name string
		args agentapi.RAIDArgs
		fail error
		want string
	}{
		{"no volumes", agentapi.RAIDArgs{}, nil, "no volumes"},
		{"two roots", agentapi.RAIDArgs{Volumes: []agentapi.RAIDVolume{{RAIDLevel: "1", Root: true}, {RAIDLevel: "1", Root: true}}}, nil, "2 root"},
		{"too few disks", agentapi.RAIDArgs{Volumes: []agentapi.RAIDVolume{{RAIDLevel: "6", Disks: []string{"sda", "sdb", "sdc"}}}}, nil, "at least 4"},
		{"mdadm fails", agentapi.RAIDArgs{Volumes: []agentapi.RAIDVolume{{RAIDLevel: "1"}}}, errors.New("exit status 1"), "resource busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, &mdadmFake{fail: tt.fail})
			_, err := m.Apply(context.Background(), tt.args, disks)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFindRoot(t *testing.T) {
	tests := []struct {
		name    string
		arrays  []string
		want    string
		wantErr bool
	}{
		{name: "none", want: ""},
		{name: "root among others", arrays: []string{"data", "root"}, want: "root"},
		{name: "only one", arrays: []string{"os"}, want: "os"},
		{name: "several, no root", arrays: []string{"a", "b"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manager{DevRoot: t.TempDir()}
			for _, a := range tt.arrays {
				if err := os.MkdirAll(filepath.Join(m.DevRoot, "md"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(m.DevRoot, "md", a), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := m.FindRoot()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("FindRoot = %q, want an error", got)
				}
				return
			}
			want := ""
			if tt.want != "" {
				want = filepath.Join(m.DevRoot, "md", tt.want)
			}
			if err != nil || got != want {
				t.Errorf("FindRoot = %q, %v; want %q", got, err, want)
			}
		})
	}
}

func TestStopAllSysfs(t *testing.T) {
	f := &mdadmFake{}
	m := newManager(t, f)
	m.MDADM = filepath.Join(t.TempDir(), "no-mdadm")
	for _, n := range []string{"md126", "md127"} {
		p := filepath.Join(m.SysRoot, "block", n, "md")
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "array_state"), []byte("clean\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(m.SysRoot, "block", "sda"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.StopAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"md126", "md127"} {
		b, err := os.ReadFile(filepath.Join(m.SysRoot, "block", n, "md", "array_state"))
		if err != nil || string(b) != "clear" {
			t.Errorf("%s array_state = %q, %v", n, b, err)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("mdadm ran without being installed: %v", f.calls)
	}
}

func TestStopAllMdadm(t *testing.T) {
	f := &mdadmFake{}
	m := newManager(t, f)
	m.MDADM = filepath.Join(t.TempDir(), "mdadm")
	if err := os.WriteFile(m.MDADM, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(m.SysRoot, "block", "md127", "md"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.StopAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{m.MDADM, "--stop", filepath.Join(m.DevRoot, "md127")}}
	if d := cmp.Diff(want, f.calls); d != "" {
		t.Errorf("mdadm runs (-want +got):\n%s", d)
	}
}
