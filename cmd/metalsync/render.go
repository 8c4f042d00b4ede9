package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"metalsync.dev/metalsync/render"
)

type renderArgs struct {
	format   render.Format
	dir      string
	node     string
	out      string
	print    bool
	mtime    time.Time
	userData string
	sshKeys  string
}

const renderUsage = `usage: metalsync render configdrive|nocloud --node NAME [DIR] (-o FILE | --print)

Renders the DHCP-less boot media of one node of the inventory in DIR
(default .): an OpenStack config drive (label config-2) or a cloud-init
NoCloud seed (label cidata), as an ISO 9660 image. -o - writes the image to
stdout. --print writes the documents on the image instead, as a txtar
archive. The same inputs always give the same bytes.
`

// parseRender parses flags anywhere among the arguments.
func parseRender(args []string, env *Env) (renderArgs, int) {
	fs := newFlags("render", env)
	a := renderArgs{dir: "."}
	mtime := fs.String("mtime", "1970-01-01T00:00:00Z", "image time (RFC 3339); the default keeps images reproducible")
	fs.StringVar(&a.node, "node", "", "node name (required)")
	fs.StringVar(&a.out, "o", "", "write the ISO image to `FILE` (- for stdout)")
	fs.BoolVar(&a.print, "print", false, "print the documents (txtar) instead of writing an image")
	fs.StringVar(&a.userData, "user-data", "", "put `FILE` on the media as user data")
	fs.StringVar(&a.sshKeys, "ssh-keys", "", "authorized SSH public keys, one per line, from `FILE`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), renderUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	pos := fs.Args()
	usageErr := func(format string, v ...any) (renderArgs, int) {
		fmt.Fprintf(env.Err, "metalsync render: "+format+"\n", v...)
		return a, exitUsage
	}
	if len(pos) == 0 {
		return usageErr("missing media format (configdrive or nocloud)")
	}
	f, err := render.ParseFormat(pos[0])
	if err != nil {
		return usageErr("%v", err)
	}
	a.format = f
	switch len(pos) {
	case 1:
	case 2:
		a.dir = pos[1]
	default:
		return usageErr("at most one directory")
	}
	if a.node == "" {
		return usageErr("--node is required")
	}
	if a.print == (a.out != "") {
		return usageErr("give exactly one of -o FILE and --print")
	}
	if a.mtime, err = time.Parse(time.RFC3339, *mtime); err != nil {
		return usageErr("--mtime %q: want RFC 3339, like 2026-01-02T15:04:05Z", *mtime)
	}
	return a, -1
}

func runRender(ctx context.Context, args []string, env *Env) int {
	a, code := parseRender(args, env)
	if code >= 0 {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(env.Err, "metalsync render: %v\n", err)
		return exitError
	}
	inv, diags := loadInventory(a.dir, env)
	if len(diags) > 0 {
		fmt.Fprint(env.Err, diags.String())
	}
	if diags.HasErrors() {
		return fail(fmt.Errorf("invalid inventory in %s", a.dir))
	}
	node := inv.Node(a.node)
	if node == nil {
		return fail(fmt.Errorf("node %q is not in the inventory %s", a.node, a.dir))
	}
	rn := render.NodeFromSchema(node, inv.Site.Spec.DHCP)
	if a.userData != "" {
		b, err := os.ReadFile(a.userData)
		if err != nil {
			return fail(fmt.Errorf("user data: %w", err))
		}
		rn.UserData = b
	}
	if a.sshKeys != "" {
		b, err := os.ReadFile(a.sshKeys)
		if err != nil {
			return fail(fmt.Errorf("ssh keys: %w", err))
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				rn.PublicKeys = append(rn.PublicKeys, l)
			}
		}
	}
	if a.print {
		files, err := render.Files(a.format, rn)
		if err != nil {
			return fail(err)
		}
		ar := &txtar.Archive{}
		for _, f := range files {
			ar.Files = append(ar.Files, txtar.File{Name: f.Path, Data: f.Data})
		}
		if _, err := env.Out.Write(txtar.Format(ar)); err != nil {
			return fail(err)
		}
		return exitOK
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if a.out == "-" {
		if _, err := render.Write(env.Out, a.format, rn, a.mtime); err != nil {
			return fail(err)
		}
		return exitOK
	}
	size, sum, err := writeImageFile(a.out, func(w io.Writer) (int64, error) {
		return render.Write(w, a.format, rn, a.mtime)
	})
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(env.Err, "wrote %s: %s media of node %s, %d bytes, sha256 %x\n", a.out, a.format, a.node, size, sum)
	return exitOK
}

// writeImageFile writes through a temporary file renamed into place, so
// FILE is never a half-written image.
func writeImageFile(path string, write func(io.Writer) (int64, error)) (int64, []byte, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, nil, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	size, err := write(io.MultiWriter(tmp, h))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return 0, nil, err
	}
	return size, h.Sum(nil), nil
}
