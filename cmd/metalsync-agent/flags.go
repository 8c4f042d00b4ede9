package main

import (
	"errors"
	"flag"
	"io"
)

// options are the flags of a run outside PID 1.
type options struct {
	configDir   string // meta_data.json and network_data.json (openstack/latest/ inside, or directly)
	network     bool   // apply network_data.json
	resolvConf  string
	showVersion bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("metalsync-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configDir, "config-dir", "", "read the media files from `DIR` instead of a config-2 volume")
	fs.BoolVar(&o.network, "network", false, "apply network_data.json (needs root)")
	fs.StringVar(&o.resolvConf, "resolv-conf", "/etc/resolv.conf", "where --network writes DNS `FILE`")
	fs.BoolVar(&o.showVersion, "version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return o, errors.New("unexpected arguments")
	}
	if o.configDir == "" && !o.showVersion {
		fs.Usage()
		return o, errors.New("--config-dir is required outside PID 1")
	}
	return o, nil
}
