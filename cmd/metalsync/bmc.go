package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/schema"
)

const bmcUsage = `usage: metalsync bmc --url URL [flags] <operation>

Talks to one BMC directly, for checking an address and its credentials
before a node file names them.

operations:
  power status | on | off | graceful-off | reboot
  boot set pxe | cd | disk [--uefi | --legacy] [--persistent]
  media insert IMAGE_URL | eject | status [--kind cd|usb|floppy] [--json]
  inventory [--json]
  bios get [--json]

URL is a node BMC address: redfish+https://host[/redfish/v1/Systems/ID],
redfish+http://..., ipmi://host[:port]. IPv6 literals go in brackets.

flags (anywhere on the line):
`

// bmcFlags are the flags of `metalsync bmc`.
type bmcFlags struct {
	url         string
	username    string
	passwordEnv string
	insecure    bool
	caFile      string
	timeout     time.Duration
	// operation flags
	uefi, legacy, persistent, json bool
	kind                           string
}

func runBMC(ctx context.Context, args []string, env *Env) int {
	var f bmcFlags
	fs := newFlags("bmc", env)
	fs.StringVar(&f.url, "url", "", "BMC address (required)")
	fs.StringVar(&f.username, "username", "", "BMC user name (none: no credentials are sent)")
	fs.StringVar(&f.passwordEnv, "password-env", "METALSYNC_BMC_PASSWORD", "environment variable holding the BMC password")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify the BMC's TLS certificate")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of the CA to trust for this BMC (instead of the system roots)")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up on the whole operation after this long")
	fs.BoolVar(&f.uefi, "uefi", false, "boot set: boot in UEFI mode")
	fs.BoolVar(&f.legacy, "legacy", false, "boot set: boot in legacy BIOS mode")
	fs.BoolVar(&f.persistent, "persistent", false, "boot set: keep the boot device for every boot, not only the next")
	fs.StringVar(&f.kind, "kind", "cd", "media: the virtual media device kind: cd, usb or floppy")
	fs.BoolVar(&f.json, "json", false, "inventory, bios get, media status: print JSON")
	fs.Usage = func() {
		io.WriteString(fs.Output(), bmcUsage)
		fs.PrintDefaults()
	}
	op, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	if err := f.check(fs, op); err != nil {
		fmt.Fprintf(env.Err, "metalsync bmc: %v\n\n", err)
		fs.Usage()
		return exitUsage
	}
	cfg, driver, err := f.config(env)
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync bmc: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	reg := defaultRegistry()
	defer func() {
		// Log out even when ctx ran out: the session would linger on the
		// BMC. The registry keeps sessions across opens; its Close ends them.
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if err := reg.Close(cctx); err != nil {
			fmt.Fprintf(env.Err, "metalsync bmc: warning: %v\n", err)
		}
	}()
	bmc, err := reg.Open(ctx, driver, cfg)
	if err != nil {
		reportBMCError(env, f, "open", err)
		return exitError
	}
	defer bmc.Close(ctx)
	if err := runBMCOp(ctx, bmc, op, f, env.Out, env.Err); err != nil {
		reportBMCError(env, f, strings.Join(op[:min(2, len(op))], " "), err)
		return exitError
	}
	return exitOK
}

// parseInterspersed parses flags found anywhere among args and returns
// the other arguments, or the exit code when parsing stopped the command.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, int) {
	if code := parseFlags(fs, args); code >= 0 {
		return nil, code
	}
	return fs.Args(), -1
}

// check validates the operation's shape and that operation flags go with
// their operation.
func (f *bmcFlags) check(fs *flag.FlagSet, op []string) error {
	if f.url == "" {
		return errors.New("--url is required")
	}
	if f.timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	if len(op) == 0 {
		return errors.New("no operation")
	}
	want := map[string]int{"power": 2, "boot": 3, "media": 2, "inventory": 1, "bios": 2}
	n, ok := want[op[0]]
	if !ok {
		return fmt.Errorf("unknown operation %q", op[0])
	}
	if op[0] == "media" && len(op) >= 2 && op[1] == "insert" {
		n = 3
	}
	if len(op) != n {
		return fmt.Errorf("%s: want %d arguments, got %q", op[0], n-1, op[1:])
	}
	if err := checkOperands(op, f.kind); err != nil {
		return err
	}
	allowed := map[string][]string{
		"uefi": {"boot"}, "legacy": {"boot"}, "persistent": {"boot"},
		"kind": {"media"}, "json": {"inventory", "bios", "media"},
	}
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if ops, ok := allowed[fl.Name]; ok && !slices.Contains(ops, op[0]) && err == nil {
			err = fmt.Errorf("--%s does not apply to %s", fl.Name, op[0])
		}
	})
	if f.uefi && f.legacy {
		return errors.New("--uefi and --legacy exclude each other")
	}
	return err
}

// checkOperands rejects unknown verbs, devices and kinds before anything
// is sent to a BMC.
func checkOperands(op []string, kind string) error {
	oneOf := func(what, got string, valid ...string) error {
		if slices.Contains(valid, got) {
			return nil
		}
		return fmt.Errorf("unknown %s %q (want %s)", what, got, strings.Join(valid, ", "))
	}
	switch op[0] {
	case "power":
		return oneOf("power operation", op[1], "status", "on", "off", "graceful-off", "reboot")
	case "boot":
		if err := oneOf("boot operation", op[1], "set"); err != nil {
			return err
		}
		return oneOf("boot device", op[2], "pxe", "cd", "disk")
	case "media":
		if err := oneOf("media operation", op[1], "insert", "eject", "status"); err != nil {
			return err
		}
		return oneOf("media kind", kind, "cd", "usb", "floppy")
	case "bios":
		return oneOf("bios operation", op[1], "get")
	}
	return nil
}

// config builds the driver config from the flags and the environment.
func (f *bmcFlags) config(env *Env) (drivers.Config, string, error) {
	addr, err := schema.ParseBMCAddress(f.url)
	if err != nil {
		// The address is not echoed: it may hold the very password the
		// error is about.
		return drivers.Config{}, "", fmt.Errorf("--url: %w", err)
	}
	cfg := drivers.Config{
		Endpoint:           addr.Endpoint,
		Username:           f.username,
		InsecureSkipVerify: f.insecure,
		CallTimeout:        min(30*time.Second, f.timeout),
	}
	if f.username != "" {
		pw := env.Getenv(f.passwordEnv)
		if pw == "" {
			return drivers.Config{}, "", fmt.Errorf("--username is set but $%s is empty: put the password there (or name another variable with --password-env)", f.passwordEnv)
		}
		cfg.Password = secret.Value(pw)
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return drivers.Config{}, "", fmt.Errorf("--ca-file: %w", err)
		}
		cfg.CAPEM = pem
	}
	return cfg, addr.Driver, nil
}

// reportBMCError explains a failure, with a hint for the common causes.
func reportBMCError(env *Env, f bmcFlags, op string, err error) {
	fmt.Fprintf(env.Err, "metalsync bmc: %s: %v\n", op, err)
	var hint string
	switch {
	case errors.Is(err, drivers.ErrUnsupported):
		hint = "this BMC (or its driver) cannot do that"
	case errors.Is(err, drivers.ErrAuth):
		hint = fmt.Sprintf("check --username and the password in $%s", f.passwordEnv)
	case errors.Is(err, drivers.ErrUnreachable) && strings.Contains(err.Error(), "TLS certificate"):
		hint = "pass the CA that signed the BMC's certificate with --ca-file, or --insecure to skip verification"
	case errors.Is(err, drivers.ErrUnreachable):
		hint = "check the address, the network path to the BMC, and that it is powered"
	case errors.Is(err, context.DeadlineExceeded):
		hint = fmt.Sprintf("the operation did not finish within --timeout %s", f.timeout)
	}
	if hint != "" {
		fmt.Fprintf(env.Err, "metalsync bmc: hint: %s\n", hint)
	}
}

// runBMCOp runs one operation on an open BMC and prints its result.
func runBMCOp(ctx context.Context, bmc drivers.BMC, op []string, f bmcFlags, out, errOut io.Writer) error {
	switch op[0] {
	case "power":
		return bmcPower(ctx, bmc, op[1], out)
	case "boot":
		if op[1] != "set" {
			return fmt.Errorf("unknown boot operation %q (want set)", op[1])
		}
		bs, ok := bmc.(drivers.BootSetter)
		if !ok {
			return fmt.Errorf("boot devices: %w", drivers.ErrUnsupported)
		}
		dev := drivers.BootDevice(op[2])
		if !slices.Contains([]drivers.BootDevice{drivers.BootPXE, drivers.BootCD, drivers.BootDisk}, dev) {
			return fmt.Errorf("unknown boot device %q (want pxe, cd or disk)", op[2])
		}
		opts := drivers.BootOptions{Device: dev, Persistent: f.persistent}
		switch {
		case f.uefi:
			opts.Mode = drivers.BootModeUEFI
		case f.legacy:
			opts.Mode = drivers.BootModeLegacy
		}
		return bs.SetBoot(ctx, opts)
	case "media":
		return bmcMedia(ctx, bmc, op[1:], f, out)
	case "inventory":
		ir, ok := bmc.(drivers.InventoryReader)
		if !ok {
			return fmt.Errorf("inventory: %w", drivers.ErrUnsupported)
		}
		inv, err := ir.Inventory(ctx)
		if err != nil {
			return err
		}
		// Sections the BMC could not serve: on stderr for people, in the
		// JSON as "warnings".
		for _, w := range inv.Warnings {
			fmt.Fprintf(errOut, "metalsync bmc: warning: inventory: %s\n", w)
		}
		if f.json {
			return bmcWriteJSON(out, inv)
		}
		return bmcWriteInventory(out, inv)
	case "bios":
		if op[1] != "get" {
			return fmt.Errorf("unknown bios operation %q (want get)", op[1])
		}
		bm, ok := bmc.(drivers.BIOSManager)
		if !ok {
			return fmt.Errorf("BIOS settings: %w", drivers.ErrUnsupported)
		}
		attrs, err := bm.BIOSAttributes(ctx)
		if err != nil {
			return err
		}
		if f.json {
			return bmcWriteJSON(out, attrs)
		}
		tw := newBMCTable(out)
		for _, k := range slices.Sorted(maps.Keys(attrs)) {
			v := attrs[k]
			if v == "" {
				v = `""`
			}
			fmt.Fprintf(tw, "%s\t%v\n", k, v)
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown operation %q", op[0])
}

func bmcPower(ctx context.Context, bmc drivers.BMC, verb string, out io.Writer) error {
	actions := map[string]drivers.PowerAction{
		"on": drivers.ActionOn, "off": drivers.ActionOff,
		"graceful-off": drivers.ActionGracefulOff, "reboot": drivers.ActionReboot,
	}
	if verb != "status" {
		a, ok := actions[verb]
		if !ok {
			return fmt.Errorf("unknown power operation %q (want status, on, off, graceful-off or reboot)", verb)
		}
		if err := bmc.SetPower(ctx, a); err != nil {
			return err
		}
	}
	st, err := bmc.PowerState(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, st)
	return err
}

func bmcMedia(ctx context.Context, bmc drivers.BMC, op []string, f bmcFlags, out io.Writer) error {
	mm, ok := bmc.(drivers.MediaManager)
	if !ok {
		return fmt.Errorf("virtual media: %w", drivers.ErrUnsupported)
	}
	kind := drivers.MediaKind(f.kind)
	if !slices.Contains([]drivers.MediaKind{drivers.MediaCD, drivers.MediaUSB, drivers.MediaFloppy}, kind) {
		return fmt.Errorf("unknown media kind %q (want cd, usb or floppy)", f.kind)
	}
	switch op[0] {
	case "insert":
		return mm.InsertMedia(ctx, kind, op[1])
	case "eject":
		return mm.EjectMedia(ctx, kind)
	case "status":
		st, err := mm.MediaStatus(ctx, kind)
		if err != nil {
			return err
		}
		if f.json {
			return bmcWriteJSON(out, st)
		}
		state := "empty"
		if st.Inserted {
			state = "inserted " + st.Image
		}
		_, err = fmt.Fprintf(out, "%s %s: %s\n", st.Kind, st.Device, state)
		return err
	}
	return fmt.Errorf("unknown media operation %q (want insert, eject or status)", op[0])
}

func bmcWriteJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// bmcWriteInventory prints an inventory for people.
func bmcWriteInventory(out io.Writer, inv drivers.Inventory) error {
	tw := newBMCTable(out)
	s := inv.System
	fmt.Fprintf(tw, "system\t%s %s\tserial %s\tuuid %s\n", s.Manufacturer, s.Model, s.Serial, s.UUID)
	if s.BIOSVersion != "" {
		fmt.Fprintf(tw, "bios\t%s\n", s.BIOSVersion)
	}
	for _, c := range inv.CPUs {
		fmt.Fprintf(tw, "cpu\t%s\t%d cores, %d threads\t%s\n", c.Model, c.Cores, c.Threads, c.Arch)
	}
	if inv.MemoryMiB > 0 {
		fmt.Fprintf(tw, "memory\t%d MiB\n", inv.MemoryMiB)
	}
	for _, d := range inv.Disks {
		fmt.Fprintf(tw, "disk\t%s\t%s\t%s\t%s %s\n", d.ID, d.Model, bmcHumanBytes(d.SizeBytes), d.Media, d.Protocol)
	}
	for _, n := range inv.NICs {
		fmt.Fprintf(tw, "nic\t%s\t%s\t%d Mb/s\t%s\n", n.ID, n.MAC, n.SpeedMbps, n.LinkStatus)
	}
	for _, fw := range inv.Firmware {
		fmt.Fprintf(tw, "firmware\t%s\t%s\n", fw.Component, fw.Version)
	}
	return tw.Flush()
}

// bmcTable aligns columns like tabwriter and drops the trailing blanks
// of rows whose last cells are empty.
type bmcTable struct {
	out io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newBMCTable(out io.Writer) *bmcTable {
	t := &bmcTable{out: out}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 4, 2, ' ', 0)
	return t
}

func (t *bmcTable) Write(p []byte) (int, error) { return t.tw.Write(p) }

func (t *bmcTable) Flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for line := range strings.Lines(t.buf.String()) {
		b.WriteString(strings.TrimRight(line, " \n"))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(t.out, b.String())
	return err
}

// bmcHumanBytes writes a size in decimal units, as disk vendors label them.
func bmcHumanBytes(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	f, i := float64(n), 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
