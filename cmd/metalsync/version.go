package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// buildVersion is what `metalsync version` prints, read from the build
// information Go stamps into every binary (module version, VCS commit).
type buildVersion struct {
	Version  string
	Commit   string
	Time     string
	Modified bool
	Go       string
	Platform string
}

func readBuildVersion() buildVersion {
	v := buildVersion{Version: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	if info.GoVersion != "" {
		v.Go = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (v buildVersion) String() string {
	commit := "unknown (built without VCS information)"
	if v.Commit != "" {
		commit = v.Commit
		if v.Modified {
			commit += " (modified)"
		}
		if v.Time != "" {
			commit += ", " + v.Time
		}
	}
	return fmt.Sprintf("metalsync %s\ncommit: %s\ngo: %s %s\n", v.Version, commit, v.Go, v.Platform)
}

func runVersion(_ context.Context, args []string, env *Env) int {
	fs := newFlags("version", env)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync version\n       metalsync --version\n\nPrints the version, the commit it was built from and the Go version.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Err, "metalsync version: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	fmt.Fprint(env.Out, readBuildVersion())
	return exitOK
}
