package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"metalsync.dev/metalsync/sim/redfishsim"
)

// simFlags are the flags of `metalsync sim`.
type simFlags struct {
	systems      int
	listen       string
	profile      string
	perSystem    bool
	bmcBase      string
	username     string
	passwordEnv  string
	media        string
	mediaOnSys   bool
	transitional bool
	maxSessions  int
	powerOn      time.Duration
	powerOff     time.Duration
	forDir       string
	out          string
}

// runSim serves simulated Redfish BMCs until ctx ends (SIGINT/SIGTERM).
func runSim(ctx context.Context, args []string, env *Env) int {
	var f simFlags
	fs := newFlags("sim", env)
	fs.IntVar(&f.systems, "systems", 0, "number of simulated systems (sys-0001, sys-0002, ...)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8000", "address of the listener that serves every system, path-based")
	fs.StringVar(&f.profile, "profile", "zero", "latency profile: zero, idrac9 or slow")
	fs.BoolVar(&f.perSystem, "per-system-listeners", false, "also give every system a listener of its own, as its own BMC")
	fs.StringVar(&f.bmcBase, "bmc-base", "", "with -per-system-listeners: first IPv4 loopback address of consecutive per-system addresses on the -listen port (default: a free port each on the -listen host)")
	fs.StringVar(&f.username, "username", "admin", "BMC user name")
	fs.StringVar(&f.passwordEnv, "password-env", "", "environment variable holding the BMC password (default password: \"password\")")
	fs.StringVar(&f.media, "media", "actions", "virtual media style: actions, patch or both")
	fs.BoolVar(&f.mediaOnSys, "media-on-system", false, "put virtual media under the system instead of the manager")
	fs.BoolVar(&f.transitional, "transitional", false, "report PoweringOn/PoweringOff during power transitions")
	fs.IntVar(&f.maxSessions, "max-sessions", 0, "session limit of each per-system BMC (0: none)")
	fs.DurationVar(&f.powerOn, "power-on-delay", -1, "how long powering on takes (default: the profile's)")
	fs.DurationVar(&f.powerOff, "power-off-delay", -1, "how long powering off takes (default: the profile's)")
	fs.StringVar(&f.forDir, "for", "", "simulate the BMCs of every node of the inventory in DIR (with --out)")
	fs.StringVar(&f.out, "out", "", "with --for: new directory for a copy of the inventory pointed at the simulators")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync sim --systems N [flags]\n       metalsync sim --for DIR --out WORK\n\nServes simulated Redfish BMCs until interrupted. With --for it simulates\nthe BMCs of an inventory (Redfish and IPMI, with the nodes' MACs), writes\na copy of it pointed at them into WORK (a new Git repository), and prints\nthe apply and serve commands to try it with.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Err, "metalsync sim: unexpected arguments: %v\n", fs.Args())
		return exitUsage
	}
	if f.forDir != "" || f.out != "" {
		if f.forDir == "" || f.out == "" {
			fmt.Fprintln(env.Err, "metalsync sim: --for and --out go together")
			return exitUsage
		}
		if f.systems != 0 {
			fmt.Fprintln(env.Err, "metalsync sim: --systems and --for exclude each other: --for simulates the inventory's nodes")
			return exitUsage
		}
		if err := runSimFor(ctx, f.forDir, f.out, env); err != nil {
			fmt.Fprintf(env.Err, "metalsync sim: %v\n", err)
			return exitError
		}
		return exitOK
	}
	cfg, err := f.config(env)
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync sim: %v\n", err)
		return exitUsage
	}
	if err := serveSim(ctx, f, cfg, env); err != nil {
		fmt.Fprintf(env.Err, "metalsync sim: %v\n", err)
		return exitError
	}
	return exitOK
}

// config checks the flags and turns them into a simulator configuration.
func (f simFlags) config(env *Env) (redfishsim.Config, error) {
	if f.systems <= 0 || f.systems > 100000 {
		return redfishsim.Config{}, fmt.Errorf("-systems %d: want 1 to 100000", f.systems)
	}
	profile, err := redfishsim.ParseProfile(f.profile)
	if err != nil {
		return redfishsim.Config{}, err
	}
	media, err := redfishsim.ParseMediaStyle(f.media)
	if err != nil {
		return redfishsim.Config{}, err
	}
	if f.bmcBase != "" && !f.perSystem {
		return redfishsim.Config{}, errors.New("-bmc-base needs -per-system-listeners")
	}
	if f.maxSessions < 0 {
		return redfishsim.Config{}, fmt.Errorf("-max-sessions %d: want 0 or more", f.maxSessions)
	}
	password := "password"
	if f.passwordEnv != "" {
		password = env.Getenv(f.passwordEnv)
		if password == "" {
			return redfishsim.Config{}, fmt.Errorf("-password-env %s: the variable is empty or unset", f.passwordEnv)
		}
	}
	on, off := profile.PowerDelays()
	if f.powerOn >= 0 {
		on = f.powerOn
	}
	if f.powerOff >= 0 {
		off = f.powerOff
	}
	return redfishsim.Config{
		Systems: redfishsim.Systems(f.systems, redfishsim.SystemConfig{
			Profile: profile, PowerOnDelay: on, PowerOffDelay: off, ReportTransitional: f.transitional,
			Media: media, MediaOnSystem: f.mediaOnSys, MaxSessions: f.maxSessions, UpdateDuration: 30 * time.Second,
		}),
		Username: f.username,
		Password: password,
		Profile:  profile,
		// A long-running simulator keeps counters, not every request.
		DisableLog: true,
	}, nil
}

// serveSim starts the listeners, prints the URLs and waits for ctx.
func serveSim(ctx context.Context, f simFlags, cfg redfishsim.Config, env *Env) error {
	sim, err := redfishsim.New(cfg)
	if err != nil {
		return err
	}
	defer sim.Close()
	l, err := sim.Listen(f.listen)
	if err != nil {
		return err
	}
	defer l.Close()
	var bmcs *redfishsim.BMCListeners
	if f.perSystem {
		opts, err := bmcOptions(f)
		if err != nil {
			return err
		}
		if bmcs, err = sim.StartBMCs(opts); err != nil {
			return err
		}
		defer bmcs.Close()
	}

	out := bufio.NewWriter(env.Out)
	fmt.Fprintln(out, l.URL)
	for _, id := range sim.IDs() {
		if bmcs != nil {
			fmt.Fprintf(out, "%s %s %s\n", id, l.BMCURL(id), bmcs.Listener(id).BMCURL(id))
		} else {
			fmt.Fprintf(out, "%s %s\n", id, l.BMCURL(id))
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.Err, "metalsync sim: serving %d systems at %s (user %s); interrupt to stop\n", len(cfg.Systems), l.URL, cfg.Username)
	<-ctx.Done()
	c := sim.TotalCounts()
	fmt.Fprintf(env.Err, "metalsync sim: stopped after %d requests (%d errors)\n", c.Requests, c.Errors)
	return nil
}

// bmcOptions places the per-system listeners: consecutive IPv4 loopback
// addresses from -bmc-base on the -listen port, or free ports on the
// -listen host.
func bmcOptions(f simFlags) (redfishsim.BMCOptions, error) {
	host, port, err := net.SplitHostPort(f.listen)
	if err != nil {
		return redfishsim.BMCOptions{}, fmt.Errorf("-listen %q: %w", f.listen, err)
	}
	if f.bmcBase == "" {
		if host == "" {
			host = "127.0.0.1"
		}
		return redfishsim.BMCOptions{Host: host}, nil
	}
	base, err := netip.ParseAddr(f.bmcBase)
	if err != nil || !base.Is4() || !base.IsLoopback() {
		return redfishsim.BMCOptions{}, fmt.Errorf("-bmc-base %q: want an IPv4 loopback address", f.bmcBase)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return redfishsim.BMCOptions{}, fmt.Errorf("-listen %q: bad port", f.listen)
	}
	return redfishsim.BMCOptions{Host: f.bmcBase, SpreadIPs: true, Port: p}, nil
}
