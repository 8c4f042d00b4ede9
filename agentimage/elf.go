package agentimage

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// libDirs are where the dynamic loader looks on Debian amd64, in order.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"}

// sharedDeps returns the image paths of everything binary (an absolute
// path inside root) needs to run: its interpreter and the DT_NEEDED
// closure, resolved in root like ld.so would. It reads ELF headers
// instead of running ldd, so the builder needs no matching host loader.
func sharedDeps(root, binary string) ([]string, error) {
	found := map[string]bool{}
	var walk func(p string) error
	walk = func(p string) error {
		host, err := resolveInRoot(root, p)
		if err != nil {
			return err
		}
		f, err := elf.Open(host)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP {
				continue
			}
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				return fmt.Errorf("%s: interpreter: %w", p, err)
			}
			interp := strings.TrimRight(string(b), "\x00")
			if !found[interp] {
				found[interp] = true
				if err := walk(interp); err != nil {
					return err
				}
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, lib := range libs {
			lp, err := findLib(root, lib)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if !found[lp] {
				found[lp] = true
				if err := walk(lp); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(binary); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(found))
	for p := range found {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

func findLib(root, name string) (string, error) {
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("library %q: paths are not supported", name)
	}
	for _, d := range libDirs {
		p := path.Join(d, name)
		if _, err := resolveInRoot(root, p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("library %s: not in %v of the extracted packages; add its package to the lock", name, libDirs)
}

// resolveInRoot follows symlinks of the image path p inside root (absolute
// targets are relative to root) and returns the host path of the file.
func resolveInRoot(root, p string) (string, error) {
	for range 16 {
		host := filepath.Join(root, filepath.FromSlash(p))
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			if !fi.Mode().IsRegular() {
				return "", fmt.Errorf("%s: not a regular file", p)
			}
			return host, nil
		}
		t, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if !path.IsAbs(t) {
			t = path.Join(path.Dir(p), t)
		}
		p = path.Clean(t)
	}
	return "", errors.New(p + ": too many symlinks")
}
