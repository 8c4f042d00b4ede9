package ipmi

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/drivertest"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in       string
		wantHost string
		wantPort int
		wantErr  string
	}{
		{in: "ipmi://10.0.0.5", wantHost: "10.0.0.5", wantPort: 623},
		{in: "ipmi://10.0.0.5:6230", wantHost: "10.0.0.5", wantPort: 6230},
		{in: "ipmi://bmc-r1-n07.example.net", wantHost: "bmc-r1-n07.example.net", wantPort: 623},
		{in: "ipmi://bmc/", wantHost: "bmc", wantPort: 623},
		{in: "ipmi://[::1]", wantHost: "::1", wantPort: 623},
		{in: "ipmi://[2001:db8::7]:1623", wantHost: "2001:db8::7", wantPort: 1623},
		{in: "ipmi://[fe80::1%25eth0]:623", wantHost: "fe80::1%eth0", wantPort: 623},
		{in: "redfish+https://10.0.0.5", wantErr: `ipmi: endpoint scheme "redfish+https", want ipmi://host[:port]`},
		{in: "ipmi://admin:hunter2@10.0.0.5", wantErr: "ipmi: endpoint must not carry credentials"},
		{in: "ipmi://10.0.0.5/redfish/v1", wantErr: "ipmi 10.0.0.5: endpoint has a path, query or fragment; want ipmi://host[:port]"},
		{in: "ipmi://10.0.0.5?x=1", wantErr: "ipmi 10.0.0.5: endpoint has a path, query or fragment; want ipmi://host[:port]"},
		{in: "ipmi://10.0.0.5:0", wantErr: `ipmi 10.0.0.5: invalid port "0"`},
		{in: "ipmi://10.0.0.5:70000", wantErr: `ipmi 10.0.0.5: invalid port "70000"`},
		{in: "ipmi://10.0.0.5:", wantErr: "ipmi 10.0.0.5: empty port"},
		{in: "ipmi://:623", wantErr: "ipmi: endpoint has no host"},
		{in: "ipmi:10.0.0.5", wantErr: "ipmi: endpoint has no host"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := url.Parse(tt.in)
			if err != nil {
				t.Fatalf("url.Parse: %v", err)
			}
			host, port, err := parseEndpoint(u)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Fatalf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]any{tt.wantHost, tt.wantPort}, []any{host, port}); err == nil && diff != "" {
				t.Errorf("host, port (-want +got):\n%s", diff)
			}
		})
	}
	if _, _, err := parseEndpoint(nil); err == nil {
		t.Error("parseEndpoint(nil) succeeded")
	}
}

func TestOpenRejectsConfig(t *testing.T) {
	ep := &url.URL{Scheme: "ipmi", Host: "127.0.0.1:9"}
	tests := []struct {
		name string
		cfg  drivers.Config
		want string
	}{
		{"suite", drivers.Config{Endpoint: ep, Username: "u", CipherSuite: 5}, "ipmi 127.0.0.1:9: cipher suite 5: only 3 and 17 are supported"},
		{"user", drivers.Config{Endpoint: ep}, "ipmi 127.0.0.1:9: no username"},
		{"long-user", drivers.Config{Endpoint: ep, Username: strings.Repeat("u", 17), Password: "p"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			b, err := Open(ctx, tt.cfg)
			if err == nil {
				b.Close(ctx)
				t.Fatal("Open succeeded")
			}
			if tt.want != "" && err.Error() != tt.want {
				t.Errorf("Open: %q, want %q", err, tt.want)
			}
		})
	}
}

// TestConformance runs the driver conformance suite against ipmi_sim.
func TestConformance(t *testing.T) {
	s := startSim(t, "127.0.0.1")
	drivertest.Run(t, func(t *testing.T) drivers.BMC { return s.open(t) }, drivertest.Options{
		PowerTimeout: 20 * time.Second,
		Password:     simPassword,
		BootLacks:    simBootLacks,
		CheckBoot: func(t *testing.T, _ drivers.BMC, want drivers.BootOptions) {
			// The simulated machine's own record of the boot device, in
			// ipmi_sim's names.
			names := map[drivers.BootDevice]string{
				drivers.BootPXE: "pxe", drivers.BootCD: "cdrom", drivers.BootDisk: "default", drivers.BootBIOS: "bios",
			}
			if got := s.file(t, "boot"); got != names[want.Device] {
				t.Errorf("machine boots from %q, want %q", got, names[want.Device])
			}
		},
	})
}

// simBootLacks is what ipmi_sim cannot do: it keeps the boot device but
// drops the persistent and EFI flags, which the driver reports as
// unsupported.
func simBootLacks(o drivers.BootOptions) bool {
	return o.Persistent || o.Mode == drivers.BootModeUEFI
}

// TestIPv6 runs against ipmi_sim bound to [::1] only (Debian's ipmi_sim
// 2.0.33 binds IPv6 literals in lan.conf's addr).
func TestIPv6(t *testing.T) {
	s := startSim(t, "::1")
	if !strings.HasPrefix(s.addr, "[::1]:") {
		t.Fatalf("sim address %q", s.addr)
	}
	b := s.open(t)
	ctx := t.Context()
	for _, a := range []drivers.PowerAction{drivers.ActionOn, drivers.ActionOff} {
		if err := b.SetPower(ctx, a); err != nil {
			t.Fatalf("SetPower %s over IPv6: %v", a, err)
		}
		if got := s.file(t, "power"); got != map[drivers.PowerAction]string{drivers.ActionOn: "1", drivers.ActionOff: "0"}[a] {
			t.Errorf("after %s the machine's power is %q", a, got)
		}
	}
	if got := s.ipmitool(t, "chassis", "power", "status"); got != "Chassis Power is off" {
		t.Errorf("ipmitool over IPv6: %q", got)
	}
	drivertest.Run(t, func(t *testing.T) drivers.BMC { return s.open(t) }, drivertest.Options{
		PowerTimeout: 20 * time.Second,
		Password:     simPassword,
		BootLacks:    simBootLacks,
	})
}

// TestIPMIToolAgrees cross-checks the driver with ipmitool in both
// directions.
func TestIPMIToolAgrees(t *testing.T) {
	s := startSim(t, "127.0.0.1")
	b := s.open(t)
	ctx := t.Context()
	if err := b.SetPower(ctx, drivers.ActionOn); err != nil {
		t.Fatal(err)
	}
	if got := s.ipmitool(t, "chassis", "power", "status"); got != "Chassis Power is on" {
		t.Errorf("ipmitool after driver power on: %q", got)
	}
	s.ipmitool(t, "chassis", "power", "off")
	got, err := b.PowerState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != drivers.PowerOff {
		t.Errorf("driver after ipmitool power off: %q", got)
	}
	if err := b.SetBoot(ctx, drivers.BootOptions{Device: drivers.BootPXE}); err != nil {
		t.Fatal(err)
	}
	if out := s.ipmitool(t, "chassis", "bootparam", "get", "5"); !strings.Contains(out, "Boot Device Selector : Force PXE") {
		t.Errorf("ipmitool boot flags after SetBoot pxe:\n%s", out)
	}
}

func TestReboot(t *testing.T) {
	s := startSim(t, "127.0.0.1")
	b := s.open(t)
	ctx := t.Context()
	steps := []struct {
		action     drivers.PowerAction
		wantPower  string
		wantResets string
	}{
		{drivers.ActionReboot, "1", ""}, // from off: power on, no reset
		{drivers.ActionReboot, "1", "1"},
		{drivers.ActionReboot, "1", "2"},
		{drivers.ActionGracefulReboot, "1", "2"}, // shutdown then power on
	}
	for _, st := range steps {
		if err := b.SetPower(ctx, st.action); err != nil {
			t.Fatalf("SetPower %s: %v", st.action, err)
		}
		got := []string{s.file(t, "power"), s.file(t, "resets")}
		if diff := cmp.Diff([]string{st.wantPower, st.wantResets}, got); diff != "" {
			t.Errorf("after %s, machine power and resets (-want +got):\n%s", st.action, diff)
		}
	}
}

func TestBootFlagsDropped(t *testing.T) {
	s := startSim(t, "127.0.0.1")
	b := s.open(t)
	err := b.SetBoot(t.Context(), drivers.BootOptions{Device: drivers.BootCD, Mode: drivers.BootModeUEFI, Persistent: true})
	if !errors.Is(err, drivers.ErrUnsupported) {
		t.Fatalf("SetBoot cd uefi persistent on ipmi_sim: %v, want ErrUnsupported (ipmi_sim drops the flags)", err)
	}
	want := "ipmi " + s.addr + ": set boot cd uefi persistent: BMC kept the device but not the persistent and EFI flag (the device holds for the next boot): unsupported by this BMC"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if got := s.file(t, "boot"); got != "cdrom" {
		t.Errorf("machine boots from %q, want cdrom", got)
	}
}

func TestInventory(t *testing.T) {
	s := startSim(t, "127.0.0.1")
	b := s.open(t)
	got, err := b.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := drivers.Inventory{
		System: drivers.SystemInfo{
			Manufacturer: "Metalsync Labs", Model: "SIM-1", Serial: "SN-0001",
			// lan.conf's guid a123456789abcdef..., sent as written; IPMI
			// stores the first three UUID fields least-significant byte first.
			UUID: "674523a1-ab89-efcd-a123-456789abcdef",
		},
		Firmware: []drivers.Firmware{{Component: "BMC", Version: "2.17"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Inventory (-want +got):\n%s", diff)
	}
}

func TestWrongPassword(t *testing.T) {
	s := startSim(t, "127.0.0.1")
	const wrong = "wrong-Yh3mP9"
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b, err := Open(ctx, s.config(wrong))
	if err == nil {
		b.Close(ctx)
		t.Fatal("Open with a wrong password succeeded")
	}
	t.Logf("wrong password: %v", err)
	if !errors.Is(err, drivers.ErrAuth) {
		t.Errorf("Open with a wrong password: %v, want ErrAuth", err)
	}
	for _, p := range []string{wrong, simPassword} {
		if strings.Contains(err.Error(), p) {
			t.Errorf("error reveals a password: %v", err)
		}
	}
}

func TestCipherSuite17Refused(t *testing.T) {
	s := startSim(t, "127.0.0.1")
	cfg := s.config(simPassword)
	cfg.CipherSuite = 17
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b, err := Open(ctx, cfg)
	if err == nil {
		b.Close(ctx)
		t.Fatal("ipmi_sim accepted cipher suite 17; LIBRARIES.md note 26 says it refuses it")
	}
	t.Logf("suite 17: %v", err)
	if !errors.Is(err, drivers.ErrUnsupported) {
		t.Errorf("Open with suite 17: %v, want ErrUnsupported", err)
	}
}

func TestUnreachable(t *testing.T) {
	// A socket that never answers, as a BMC behind a dead link.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tests := []struct {
		name string
		addr string
	}{
		{"refused", net.JoinHostPort("127.0.0.1", strconv.Itoa(freeUDPPort(t, "127.0.0.1")))},
		{"silent", silent.LocalAddr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := drivers.Config{
				Endpoint:    &url.URL{Scheme: "ipmi", Host: tt.addr},
				Username:    simUser,
				Password:    simPassword,
				CallTimeout: time.Second,
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			b, err := Open(ctx, cfg)
			if err == nil {
				b.Close(ctx)
				t.Fatal("Open succeeded with no BMC")
			}
			t.Logf("%s: %v", tt.name, err)
			if !errors.Is(err, drivers.ErrUnreachable) {
				t.Errorf("Open with no BMC: %v, want ErrUnreachable", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

// TestSessionLost restarts ipmi_sim under an open BMC: the next read
// starts a new session instead of failing forever.
func TestSessionLost(t *testing.T) {
	s := startSim(t, "127.0.0.1")
	cfg := s.config(simPassword)
	// The stale session gets no answer; keep the wait for it short.
	cfg.CallTimeout = time.Second
	bmc, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := bmc.(*BMC)
	defer b.Close(context.Background())
	ctx := t.Context()
	if err := b.SetPower(ctx, drivers.ActionOn); err != nil {
		t.Fatal(err)
	}
	s.restart(t)
	got, err := b.PowerState(ctx)
	if err != nil {
		t.Fatalf("PowerState after a BMC restart: %v", err)
	}
	if got != drivers.PowerOn {
		t.Errorf("PowerState after a BMC restart = %q, want on", got)
	}
}

func TestClosed(t *testing.T) {
	s := startSim(t, "127.0.0.1")
	b := s.open(t)
	ctx := t.Context()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := b.PowerState(ctx); err == nil {
		t.Error("PowerState after Close succeeded")
	}
}
