package agentimage

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"
)

// DefaultModules is the kernel module allow-list of the agent: what a
// server needs to reach its disks, its network and the boot media.
// Dependencies are added from modules.dep; built-in ones are skipped.
var DefaultModules = []string{
	// storage and boot media
	"virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "sr_mod", "cdrom", "isofs",
	"ahci", "ata_piix", "nvme", "megaraid_sas", "mpt3sas", "smartpqi", "hpsa",
	"usb_storage", "uas", "xhci_pci", "ehci_pci", "uhci_hcd",
	// software RAID (raid456 asks for crc32c through request_module)
	"md_mod", "raid0", "raid1", "raid10", "raid456", "crc32c_generic", "crc32c_intel",
	// network
	"virtio_net", "e1000", "e1000e", "igb", "ixgbe", "i40e", "ice", "bnxt_en", "mlx5_core", "tg3",
	"bonding", "8021q",
	// file systems (config drive, ESP)
	"vfat", "nls_cp437", "nls_iso8859_1", "efivarfs",
}

// moduleName is the kernel's name for a module file: basename without
// .ko*, dashes as underscores.
func moduleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// modDep is a parsed modules.dep: module name -> its file and the files
// it depends on (paths relative to /lib/modules/KVER).
type modDep struct {
	file map[string]string
	deps map[string][]string
}

func parseModulesDep(b []byte) (modDep, error) {
	md := modDep{file: map[string]string{}, deps: map[string][]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		file, deps, ok := strings.Cut(line, ":")
		if !ok || file == "" {
			return modDep{}, fmt.Errorf("modules.dep line %d: no \"file:\"", n)
		}
		name := moduleName(file)
		md.file[name] = file
		md.deps[name] = strings.Fields(deps)
	}
	if err := sc.Err(); err != nil {
		return modDep{}, fmt.Errorf("modules.dep: %w", err)
	}
	return md, nil
}

// resolveModules returns the files (sorted) of want and their
// dependencies, and the names of want that are loadable modules (in want's
// order, for modules-load.list). A name that is neither a module nor
// built in is an error.
func resolveModules(md modDep, builtin map[string]bool, want []string) (files, load []string, err error) {
	seen := map[string]bool{}
	var add func(file string)
	add = func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		files = append(files, file)
		for _, d := range md.deps[moduleName(file)] {
			add(d)
		}
	}
	for _, w := range want {
		name := strings.ReplaceAll(w, "-", "_")
		f, ok := md.file[name]
		switch {
		case ok:
			add(f)
			load = append(load, name)
		case builtin[name]:
		default:
			return nil, nil, fmt.Errorf("kernel module %s: neither in modules.dep nor built in", w)
		}
	}
	sort.Strings(files)
	return files, load, nil
}

// parseBuiltin reads modules.builtin (one file path a line).
func parseBuiltin(b []byte) map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			m[moduleName(line)] = true
		}
	}
	return m
}

// filterLines keeps the lines of a depmod text file that keep says to.
func filterLines(b []byte, keep func(line string) bool) []byte {
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.TrimSpace(line) != "" && keep(strings.TrimRight(line, "\n")) {
			out.WriteString(line)
			if !strings.HasSuffix(line, "\n") {
				out.WriteByte('\n')
			}
		}
	}
	return out.Bytes()
}

// moduleIndexFiles returns the depmod files of the initramfs, cut down to
// the modules it holds so they agree with what is there.
func moduleIndexFiles(src map[string][]byte, files []string) map[string][]byte {
	have := map[string]bool{}
	names := map[string]bool{}
	for _, f := range files {
		have[f] = true
		names[moduleName(f)] = true
	}
	out := map[string][]byte{
		"modules.dep": filterLines(src["modules.dep"], func(l string) bool {
			f, _, _ := strings.Cut(l, ":")
			return have[f]
		}),
		"modules.alias": filterLines(src["modules.alias"], func(l string) bool {
			f := strings.Fields(l)
			return len(f) == 3 && f[0] == "alias" && names[f[2]]
		}),
		"modules.order": filterLines(src["modules.order"], func(l string) bool { return have[strings.TrimSpace(l)] }),
		// Built-in modules satisfy dependencies and aliases: keep them all.
		"modules.builtin":         src["modules.builtin"],
		"modules.builtin.modinfo": src["modules.builtin.modinfo"],
		"modules.softdep":         src["modules.softdep"],
	}
	for k, v := range out {
		if v == nil {
			delete(out, k)
		}
	}
	return out
}
