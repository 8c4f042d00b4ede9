package agentimage

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// initramfs returns the gzip'd newc archive: the agent as /init (and as
// /sbin/modprobe, which the kernel's request_module runs), mdadm with its
// libraries, the allow-listed modules with their dependencies and the
// depmod files cut down to them, and /etc/modules-load.list (the modules
// the agent loads at boot). It also returns that list.
func initramfs(root, kver, agent string, modules []string, epoch int64) ([]byte, []string, error) {
	modDir := filepath.Join(root, "lib", "modules", kver)
	src := map[string][]byte{}
	for _, f := range []string{"modules.dep", "modules.alias", "modules.order", "modules.builtin", "modules.builtin.modinfo", "modules.softdep"} {
		b, err := os.ReadFile(filepath.Join(modDir, f))
		if err != nil && !errors.Is(err, fs.ErrNotExist) || err != nil && f == "modules.dep" {
			return nil, nil, fmt.Errorf("kernel %s: %w", kver, err)
		}
		src[f] = b
	}
	md, err := parseModulesDep(src["modules.dep"])
	if err != nil {
		return nil, nil, err
	}
	files, load, err := resolveModules(md, parseBuiltin(src["modules.builtin"]), modules)
	if err != nil {
		return nil, nil, err
	}
	agentBin, err := os.ReadFile(agent)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	entries := []cpioEntry{
		{Name: "init", Mode: modeRegular | 0o755, Data: agentBin},
		{Name: "sbin/modprobe", Mode: modeSymlink | 0o777, Data: []byte("/init")},
		// The kernel opens /dev/console for init before anything mounts
		// devtmpfs.
		{Name: "dev/console", Mode: modeCharDev | 0o600, Major: 5, Minor: 1},
		{Name: "etc/modules-load.list", Mode: modeRegular | 0o644, Data: []byte(strings.Join(load, "\n") + "\n")},
	}
	for _, d := range []string{"proc", "sys", "run", "tmp", "mnt", "root"} {
		entries = append(entries, cpioEntry{Name: d, Mode: modeDir | 0o755})
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(modDir, filepath.FromSlash(f)))
		if err != nil {
			return nil, nil, fmt.Errorf("module %s: %w", moduleName(f), err)
		}
		entries = append(entries, cpioEntry{Name: path.Join("lib/modules", kver, f), Mode: modeRegular | 0o644, Data: b})
	}
	for name, b := range moduleIndexFiles(src, files) {
		entries = append(entries, cpioEntry{Name: path.Join("lib/modules", kver, name), Mode: modeRegular | 0o644, Data: b})
	}
	mdadm, err := binaryWithLibs(root, "/sbin/mdadm")
	if err != nil {
		return nil, nil, err
	}
	entries = append(entries, mdadm...)
	var raw bytes.Buffer
	if err := writeNewc(&raw, entries, epoch); err != nil {
		return nil, nil, err
	}
	// gzip: every kernel decompresses it, and the standard library's
	// output depends only on the input and level. The header carries no
	// name or time.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, nil, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, nil, fmt.Errorf("gzip: %w", err)
	}
	return gz.Bytes(), load, nil
}

// binaryWithLibs returns cpio entries for a dynamic binary of root and
// every shared object it loads, each at its image path.
func binaryWithLibs(root, bin string) ([]cpioEntry, error) {
	deps, err := sharedDeps(root, bin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	var out []cpioEntry
	for _, p := range append([]string{bin}, deps...) {
		host, err := resolveInRoot(root, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bin, err)
		}
		b, err := os.ReadFile(host)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bin, err)
		}
		out = append(out, cpioEntry{Name: p, Mode: modeRegular | 0o755, Data: b})
	}
	return out, nil
}
