package agentimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Files taken from the extracted packages (paths inside the root).
const (
	debVmlinuz   = "boot/vmlinuz-" // + kernel release
	debIsolinux  = "usr/lib/ISOLINUX/isolinux.bin"
	debIsohybrid = "usr/lib/ISOLINUX/isohdpfx.bin"
	debLdlinux   = "usr/lib/syslinux/modules/bios/ldlinux.c32"
	debShim      = "usr/lib/shim/shimx64.efi.signed"
	debGrubCD    = "usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed"
)

// SlotFile is a slot file's template content for the slot at path: valid
// JSON naming the slot (a unique marker), then spaces up to SlotSize. The
// builder finds it exactly once in the ISO to cross-check xorriso's
// extent report.
func SlotFile(path string) []byte {
	m := []byte(`{"metalsync_template_slot":"` + path + `","id":"4f1b0c7e9a2d"}`)
	return append(m, bytes.Repeat([]byte{' '}, SlotSize-len(m))...)
}

// stageISO lays out the ISO tree in stage, every file and directory
// stamped with the epoch.
func stageISO(ctx context.Context, root, stage, kver string, initrd []byte, version string, epoch int64) error {
	isolinuxCfg := "SERIAL 0 115200\nDEFAULT agent\nPROMPT 0\nTIMEOUT 0\nLABEL agent\n" +
		"  KERNEL /vmlinuz\n  INITRD /initrd.gz\n  APPEND " + Cmdline + "\n"
	grubCfg := "set default=0\nset timeout=0\nmenuentry \"metalsync agent\" {\n" +
		"  linux /vmlinuz " + Cmdline + "\n  initrd /initrd.gz\n}\n"
	gen := map[string][]byte{
		"initrd.gz":             initrd,
		"isolinux/isolinux.cfg": []byte(isolinuxCfg),
		"boot/grub/grub.cfg":    []byte(grubCfg),
		// gcdx64 finds its own volume by this file.
		".disk/info":        []byte("metalsync deploy agent " + version + "\n"),
		SlotMetaData[1:]:    SlotFile(SlotMetaData),
		SlotNetworkData[1:]: SlotFile(SlotNetworkData),
	}
	copied := map[string]string{
		"vmlinuz":               debVmlinuz + kver,
		"isolinux/isolinux.bin": debIsolinux,
		"isolinux/ldlinux.c32":  debLdlinux,
	}
	for dst, b := range gen {
		if err := writeStaged(stage, dst, b); err != nil {
			return err
		}
	}
	for dst, src := range copied {
		b, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			return fmt.Errorf("stage %s: %w", dst, err)
		}
		if err := writeStaged(stage, dst, b); err != nil {
			return err
		}
	}
	if err := efiBoot(ctx, root, filepath.Join(stage, "boot", "efiboot.img"), epoch); err != nil {
		return err
	}
	t := time.Unix(epoch, 0)
	return filepath.WalkDir(stage, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, t, t)
	})
}

func writeStaged(stage, name string, b []byte) error {
	p := filepath.Join(stage, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	return nil
}

// efiBoot writes the El Torito UEFI image: a FAT file system with shim as
// the removable-media loader and the CD GRUB next to it, which shim
// chain-loads. mkfs.vfat --invariant and mtools under SOURCE_DATE_EPOCH
// (with the sources' mtimes set to it) give the same bytes every time,
// with no process-wide environment change in the builder.
func efiBoot(ctx context.Context, root, img string, epoch int64) error {
	t := time.Unix(epoch, 0)
	var total int64
	files := map[string]string{"::/EFI/BOOT/BOOTX64.EFI": debShim, "::/EFI/BOOT/grubx64.efi": debGrubCD}
	srcs := map[string]string{}
	for dst, src := range files {
		p := filepath.Join(root, src)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("efiboot: %w", err)
		}
		if err := os.Chtimes(p, t, t); err != nil {
			return fmt.Errorf("efiboot: %w", err)
		}
		total += fi.Size()
		srcs[dst] = p
	}
	// Room for the files, FAT overhead and cluster slack.
	kib := (total/1024 + 512 + 1023) / 1024 * 1024
	if err := os.MkdirAll(filepath.Dir(img), 0o755); err != nil {
		return fmt.Errorf("efiboot: %w", err)
	}
	env := append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10), "MTOOLSRC=/dev/null", "MTOOLS_SKIP_CHECK=1")
	if _, err := run(ctx, env, "", "mkfs.vfat", "--invariant", "-n", "EFIBOOT", "-C", img, strconv.FormatInt(kib, 10)); err != nil {
		return fmt.Errorf("efiboot: %w", err)
	}
	if _, err := run(ctx, env, "", "mmd", "-i", img, "::/EFI", "::/EFI/BOOT"); err != nil {
		return fmt.Errorf("efiboot: %w", err)
	}
	for _, dst := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/EFI/BOOT/grubx64.efi"} {
		if _, err := run(ctx, env, "", "mcopy", "-m", "-i", img, srcs[dst], dst); err != nil {
			return fmt.Errorf("efiboot: %w", err)
		}
	}
	return nil
}

// makeISO runs xorriso: ISO 9660 + Rock Ridge + Joliet labelled config-2,
// El Torito BIOS (isolinux, boot info table) and UEFI entries, isohybrid
// MBR and GPT for BMCs that present media as a USB disk.
// SOURCE_DATE_EPOCH fixes the volume times and UUID.
func makeISO(ctx context.Context, root, stage, iso string, epoch int64) error {
	env := append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10))
	_, err := run(ctx, env, "", "xorriso", "-as", "mkisofs", "-o", iso,
		"-V", "config-2", "-r", "-J",
		"-c", "isolinux/boot.cat",
		"-b", "isolinux/isolinux.bin", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
		"-eltorito-alt-boot", "-e", "boot/efiboot.img", "-no-emul-boot",
		"-isohybrid-mbr", filepath.Join(root, debIsohybrid), "-isohybrid-gpt-basdat",
		stage)
	if err != nil {
		return fmt.Errorf("xorriso: %w", err)
	}
	return nil
}

// LocateSlots locates the slot files' data in iso with xorriso and checks
// each against its SlotFile marker, which must occur exactly once, right
// there.
func LocateSlots(ctx context.Context, iso string) (map[string]Slot, error) {
	b, err := os.ReadFile(iso)
	if err != nil {
		return nil, fmt.Errorf("slots: %w", err)
	}
	slots := map[string]Slot{}
	for _, p := range []string{SlotMetaData, SlotNetworkData} {
		out, err := run(ctx, nil, "", "xorriso", "-indev", iso, "-find", p, "-exec", "report_lba", "--")
		if err != nil {
			return nil, fmt.Errorf("slot %s: xorriso: %w", p, err)
		}
		s, err := parseReportLBA(out, p)
		if err != nil {
			return nil, fmt.Errorf("slot %s: %w", p, err)
		}
		m := SlotFile(p)
		if n := bytes.Count(b, m[:bytes.IndexByte(m, '}')+1]); n != 1 {
			return nil, fmt.Errorf("slot %s: marker found %d times, want 1", p, n)
		}
		if s.Offset+s.Length > int64(len(b)) || !bytes.Equal(b[s.Offset:s.Offset+s.Length], m) {
			return nil, fmt.Errorf("slot %s: xorriso's extent at byte %d does not hold the marker", p, s.Offset)
		}
		slots[p] = s
	}
	return slots, nil
}

// parseReportLBA reads xorriso's "-exec report_lba" output for one file:
//
//	File data lba:  0 ,     3460 ,       32 ,    65536 , '/openstack/latest/meta_data.json'
//
// (extent number, start block, blocks, file size, path). The slot must be
// one extent of SlotSize bytes.
func parseReportLBA(out, path string) (Slot, error) {
	var found []Slot
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "File data lba:")
		if !ok {
			continue
		}
		f := strings.SplitN(rest, ",", 5)
		if len(f) != 5 {
			return Slot{}, fmt.Errorf("report_lba: malformed line %q", line)
		}
		var n [4]int64
		for i := range n {
			v, err := strconv.ParseInt(strings.TrimSpace(f[i]), 10, 64)
			if err != nil || v < 0 {
				return Slot{}, fmt.Errorf("report_lba: malformed line %q", line)
			}
			n[i] = v
		}
		if got := strings.Trim(strings.TrimSpace(f[4]), "'"); got != path {
			return Slot{}, fmt.Errorf("report_lba: line for %q, want %q", got, path)
		}
		if n[1] > (1<<62)/2048 {
			return Slot{}, fmt.Errorf("report_lba: block %d out of range", n[1])
		}
		found = append(found, Slot{Offset: n[1] * 2048, Length: n[3]})
	}
	switch {
	case len(found) == 0:
		return Slot{}, errors.New("report_lba: file not in the image")
	case len(found) > 1:
		return Slot{}, fmt.Errorf("report_lba: %d extents, want one", len(found))
	case found[0].Length != SlotSize:
		return Slot{}, fmt.Errorf("report_lba: size %d, want %d", found[0].Length, SlotSize)
	}
	return found[0], nil
}
