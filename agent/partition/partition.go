// Package partition reads MBR and GPT partition tables and adds the
// config drive partition at the end of a disk after a whole-disk image
// was written, as IPA's create_config_drive_partition does: MBR images
// get a new primary partition (type 0x83), GPT images get their backup
// GPT moved to the real end of the disk (the image is smaller than the
// disk) and a partition named config-2. Tables come from the image, which
// is untrusted input: every field is bounds-checked and the parsers are
// fuzzed.
package partition

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// Kind is the partitioning scheme found on a disk.
type Kind string

// Partitioning schemes.
const (
	KindNone Kind = "none"
	KindMBR  Kind = "mbr"
	KindGPT  Kind = "gpt"
)

// ConfigDriveMax is the largest config drive partition (IPA's 64 MiB).
const ConfigDriveMax = 64 << 20

// ConfigDriveLabel names the GPT partition; cloud-init also finds the
// ISO's own volume label config-2.
const ConfigDriveLabel = "config-2"

// LinuxFS is the GPT type of the config drive partition (sgdisk 8300).
var LinuxFS = mustGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")

// ErrNoTable means the disk carries neither MBR nor GPT.
var ErrNoTable = errors.New("no partition table")

const (
	mbrTypeProtective = 0xEE
	mbrTypeLinux      = 0x83
	gptSignature      = "EFI PART"
	gptHeaderSize     = 92
	maxEntryBytes     = 1 << 20 // far above the usual 128*128 = 16 KiB
	alignBytes        = 1 << 20
)

// MBREntry is one primary MBR partition (sectors of 512 bytes).
type MBREntry struct {
	Index    int // 0..3, the slot in the table
	Boot     bool
	Type     byte
	StartLBA uint32
	Sectors  uint32
}

// GPTEntry is one used GPT partition.
type GPTEntry struct {
	Index    int
	Type     [16]byte
	GUID     [16]byte
	FirstLBA uint64
	LastLBA  uint64
	Attrs    uint64
	Name     string
}

// GPT is a parsed GUID partition table (the primary copy).
type GPT struct {
	SectorSize  int64
	DiskGUID    [16]byte
	AltLBA      uint64
	FirstUsable uint64
	LastUsable  uint64
	EntriesLBA  uint64
	NumEntries  uint32
	EntrySize   uint32
	Entries     []GPTEntry
	// raw is the whole entry array, so a rewrite keeps entries (and
	// fields) this package does not interpret.
	raw []byte
}

// Table is what Read found.
type Table struct {
	Kind Kind
	MBR  []MBREntry // used primary entries, for KindMBR
	GPT  *GPT       // for KindGPT
}

// ParseMBR reads the four primary entries of a 512-byte boot sector.
func ParseMBR(sector []byte) ([]MBREntry, error) {
	if len(sector) < 512 {
		return nil, fmt.Errorf("mbr: sector of %d bytes", len(sector))
	}
	if sector[510] != 0x55 || sector[511] != 0xAA {
		return nil, fmt.Errorf("mbr: %w: no 55AA signature", ErrNoTable)
	}
	var es []MBREntry
	for i := range 4 {
		e := sector[446+16*i : 446+16*(i+1)]
		if e[4] == 0 {
			continue
		}
		es = append(es, MBREntry{
			Index:    i,
			Boot:     e[0] == 0x80,
			Type:     e[4],
			StartLBA: binary.LittleEndian.Uint32(e[8:]),
			Sectors:  binary.LittleEndian.Uint32(e[12:]),
		})
	}
	return es, nil
}

// Read finds the partition table of a disk (or image) of size bytes.
// A protective MBR leads to the GPT, which is tried with 512 and 4096
// byte sectors.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	sector := make([]byte, 512)
	if _, err := r.ReadAt(sector, 0); err != nil {
		return nil, fmt.Errorf("read mbr: %w", err)
	}
	mbr, err := ParseMBR(sector)
	if err != nil {
		return &Table{Kind: KindNone}, nil
	}
	protective := len(mbr) > 0 && mbr[0].Type == mbrTypeProtective
	for _, ss := range []int64{512, 4096} {
		g, err := ReadGPT(r, size, ss)
		if err == nil {
			return &Table{Kind: KindGPT, GPT: g}, nil
		}
		if protective && !errors.Is(err, ErrNoTable) {
			return nil, err
		}
	}
	if protective {
		return nil, fmt.Errorf("gpt: protective mbr but no gpt header")
	}
	return &Table{Kind: KindMBR, MBR: mbr}, nil
}

// ReadGPT reads and verifies the primary GPT with the given sector size.
func ReadGPT(r io.ReaderAt, size, sectorSize int64) (*GPT, error) {
	hdr := make([]byte, sectorSize)
	if _, err := r.ReadAt(hdr, sectorSize); err != nil {
		return nil, fmt.Errorf("gpt: read header: %w", err)
	}
	g, err := parseGPTHeader(hdr, size, sectorSize)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, int64(g.NumEntries)*int64(g.EntrySize))
	if _, err := r.ReadAt(raw, int64(g.EntriesLBA)*sectorSize); err != nil {
		return nil, fmt.Errorf("gpt: read entries: %w", err)
	}
	if crc32.ChecksumIEEE(raw) != binary.LittleEndian.Uint32(hdr[88:]) {
		return nil, fmt.Errorf("gpt: entry array checksum mismatch")
	}
	g.raw = raw
	for i := range int(g.NumEntries) {
		e := raw[i*int(g.EntrySize) : (i+1)*int(g.EntrySize)]
		var typ [16]byte
		copy(typ[:], e[:16])
		if typ == ([16]byte{}) {
			continue
		}
		ent := GPTEntry{Index: i, Type: typ,
			FirstLBA: binary.LittleEndian.Uint64(e[32:]),
			LastLBA:  binary.LittleEndian.Uint64(e[40:]),
			Attrs:    binary.LittleEndian.Uint64(e[48:]),
			Name:     decodeName(e[56:128]),
		}
		copy(ent.GUID[:], e[16:32])
		if ent.LastLBA < ent.FirstLBA {
			return nil, fmt.Errorf("gpt: entry %d ends (%d) before it starts (%d)", i, ent.LastLBA, ent.FirstLBA)
		}
		g.Entries = append(g.Entries, ent)
	}
	return g, nil
}

func parseGPTHeader(b []byte, size, sectorSize int64) (*GPT, error) {
	if len(b) < gptHeaderSize || string(b[:8]) != gptSignature {
		return nil, fmt.Errorf("gpt: %w: no EFI PART signature", ErrNoTable)
	}
	hsize := binary.LittleEndian.Uint32(b[12:])
	if hsize < gptHeaderSize || int64(hsize) > sectorSize || int(hsize) > len(b) {
		return nil, fmt.Errorf("gpt: header size %d", hsize)
	}
	h := append([]byte(nil), b[:hsize]...)
	want := binary.LittleEndian.Uint32(h[16:])
	clear(h[16:20])
	if crc32.ChecksumIEEE(h) != want {
		return nil, fmt.Errorf("gpt: header checksum mismatch")
	}
	g := &GPT{
		SectorSize:  sectorSize,
		AltLBA:      binary.LittleEndian.Uint64(b[32:]),
		FirstUsable: binary.LittleEndian.Uint64(b[40:]),
		LastUsable:  binary.LittleEndian.Uint64(b[48:]),
		EntriesLBA:  binary.LittleEndian.Uint64(b[72:]),
		NumEntries:  binary.LittleEndian.Uint32(b[80:]),
		EntrySize:   binary.LittleEndian.Uint32(b[84:]),
	}
	copy(g.DiskGUID[:], b[56:72])
	if g.EntrySize < 128 || g.EntrySize%8 != 0 || uint64(g.NumEntries)*uint64(g.EntrySize) > maxEntryBytes {
		return nil, fmt.Errorf("gpt: %d entries of %d bytes", g.NumEntries, g.EntrySize)
	}
	sectors := uint64(size / sectorSize)
	if g.EntriesLBA < 2 || g.EntriesLBA >= sectors || g.LastUsable >= sectors || g.FirstUsable > g.LastUsable {
		return nil, fmt.Errorf("gpt: header places entries at %d and usable %d-%d on %d sectors",
			g.EntriesLBA, g.FirstUsable, g.LastUsable, sectors)
	}
	return g, nil
}

func decodeName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func encodeName(dst []byte, s string) {
	clear(dst)
	for i, c := range utf16.Encode([]rune(s)) {
		if 2*i+1 >= len(dst) {
			break
		}
		binary.LittleEndian.PutUint16(dst[2*i:], c)
	}
}

// Placement is where a new partition went, in bytes from the disk start.
type Placement struct {
	Kind   Kind
	Offset int64
	Size   int64
	Index  int // MBR slot or GPT entry index
}

// Disk is what AddConfigDrive needs of a disk or image file.
type Disk interface {
	io.ReaderAt
	io.WriterAt
}

// AddConfigDrive adds a partition of up to ConfigDriveMax bytes (at least
// need bytes) at the end of a disk of diskSize bytes, after every existing
// partition and after the first keep bytes (the image just written, whose
// partition table may not cover all of it), and returns where it is. The
// caller writes the config drive into it and re-reads the table.
func AddConfigDrive(d Disk, diskSize, need, keep int64) (Placement, error) {
	if need <= 0 || need > ConfigDriveMax {
		return Placement{}, fmt.Errorf("config drive of %d bytes: must be 1 byte to 64 MiB", need)
	}
	t, err := Read(d, diskSize)
	if err != nil {
		return Placement{}, err
	}
	switch t.Kind {
	case KindGPT:
		return addGPT(d, diskSize, need, keep, t.GPT)
	case KindMBR:
		return addMBR(d, diskSize, need, keep, t.MBR)
	default:
		return Placement{}, fmt.Errorf("add config drive: %w on the image", ErrNoTable)
	}
}

// place returns the first sector of a partition that ends at sector last,
// starts after sector used, and holds up to ConfigDriveMax bytes but at
// least need. The start is rounded up to 1 MiB when that leaves room
// for need, as sgdisk and parted align.
func place(used, last uint64, ss, need int64) (uint64, error) {
	want := uint64(ConfigDriveMax / ss)
	least := uint64((need + ss - 1) / ss)
	if last < used || last-used < least {
		return 0, fmt.Errorf("config drive: %d bytes free after the last partition, need %d",
			int64(last-min2(used, last))*ss, need)
	}
	start := last + 1 - min2(want, last-used)
	a := uint64(alignBytes / ss)
	if aligned := (start + a - 1) / a * a; aligned <= last && last+1-aligned >= least {
		start = aligned
	}
	return start, nil
}

func min2(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return b
}

// keptSector is the last sector of the first keep bytes.
func keptSector(keep, ss int64) uint64 {
	if keep <= 0 {
		return 0
	}
	return uint64((keep+ss-1)/ss) - 1
}

func addMBR(d Disk, diskSize, need, keep int64, es []MBREntry) (Placement, error) {
	var sector [512]byte
	if _, err := d.ReadAt(sector[:], 0); err != nil {
		return Placement{}, fmt.Errorf("mbr: read: %w", err)
	}
	slots := [4]bool{}
	used := keptSector(keep, 512)
	for _, e := range es {
		slots[e.Index] = true
		if e.Sectors == 0 {
			continue
		}
		used = max(used, uint64(e.StartLBA)+uint64(e.Sectors)-1)
	}
	slot := -1
	for i, s := range slots {
		if !s {
			slot = i
			break
		}
	}
	if slot < 0 {
		return Placement{}, fmt.Errorf("mbr: all four primary partitions are used")
	}
	// MBR addresses 2^32 sectors: on bigger disks the partition ends at 2 TiB.
	last := min2(uint64(diskSize/512), 1<<32) - 1
	start, err := place(used, last, 512, need)
	if err != nil {
		return Placement{}, fmt.Errorf("mbr: %w", err)
	}
	e := sector[446+16*slot : 446+16*(slot+1)]
	clear(e)
	// CHS fields as "beyond CHS" (FE FF FF): LBA is what every loader uses.
	copy(e[1:4], []byte{0xFE, 0xFF, 0xFF})
	e[4] = mbrTypeLinux
	copy(e[5:8], []byte{0xFE, 0xFF, 0xFF})
	binary.LittleEndian.PutUint32(e[8:], uint32(start))
	binary.LittleEndian.PutUint32(e[12:], uint32(last-start+1))
	if _, err := d.WriteAt(sector[:], 0); err != nil {
		return Placement{}, fmt.Errorf("mbr: write: %w", err)
	}
	return Placement{Kind: KindMBR, Offset: int64(start) * 512, Size: int64(last-start+1) * 512, Index: slot}, nil
}

func addGPT(d Disk, diskSize, need, keep int64, g *GPT) (Placement, error) {
	ss := g.SectorSize
	sectors := uint64(diskSize / ss)
	entrySectors := (uint64(len(g.raw)) + uint64(ss) - 1) / uint64(ss)
	if sectors < 2+2*entrySectors+2 {
		return Placement{}, fmt.Errorf("gpt: disk of %d sectors too small", sectors)
	}
	backupEntries := sectors - 1 - entrySectors
	lastUsable := backupEntries - 1
	used := max(max(g.FirstUsable, 1)-1, keptSector(keep, ss))
	slot := -1
	for i := range int(g.NumEntries) {
		e := g.raw[i*int(g.EntrySize):]
		if [16]byte(e[:16]) == ([16]byte{}) {
			if slot < 0 {
				slot = i
			}
			continue
		}
		used = max(used, binary.LittleEndian.Uint64(e[40:]))
	}
	if slot < 0 {
		return Placement{}, fmt.Errorf("gpt: all %d entries are used", g.NumEntries)
	}
	start, err := place(used, lastUsable, ss, need)
	if err != nil {
		return Placement{}, fmt.Errorf("gpt: %w", err)
	}
	e := g.raw[slot*int(g.EntrySize) : (slot+1)*int(g.EntrySize)]
	clear(e)
	copy(e[:16], LinuxFS[:])
	// A GUID derived from the disk's: unique per disk, same on a rerun.
	sum := sha256.Sum256(append(g.DiskGUID[:], ConfigDriveLabel...))
	sum[7] = sum[7]&0x0f | 0x40 // version 4 (mixed-endian field 3 high byte)
	sum[8] = sum[8]&0x3f | 0x80 // variant
	copy(e[16:32], sum[:16])
	binary.LittleEndian.PutUint64(e[32:], start)
	binary.LittleEndian.PutUint64(e[40:], lastUsable)
	encodeName(e[56:128], ConfigDriveLabel)

	oldAlt := g.AltLBA
	g.LastUsable = lastUsable
	g.AltLBA = sectors - 1
	if err := writeGPT(d, g, sectors, backupEntries); err != nil {
		return Placement{}, err
	}
	// The image's backup header now sits in free space: clear it so no
	// tool takes it for the real one.
	if oldAlt != g.AltLBA && oldAlt > 1 && oldAlt < start {
		if _, err := d.WriteAt(make([]byte, ss), int64(oldAlt)*ss); err != nil {
			return Placement{}, fmt.Errorf("gpt: clear old backup header: %w", err)
		}
	}
	if err := fixProtectiveMBR(d, sectors, ss); err != nil {
		return Placement{}, err
	}
	return Placement{Kind: KindGPT, Offset: int64(start) * ss, Size: int64(lastUsable-start+1) * ss, Index: slot}, nil
}

// MoveBackupGPT moves the backup GPT of a whole-disk image to the end of
// a disk bigger than the image (what sgdisk -e does, and IPA after every
// write) and makes the space up to it usable. It reports whether it
// changed anything: MBR disks, disks without a table and GPTs already at
// the end are left alone.
func MoveBackupGPT(d Disk, diskSize int64) (bool, error) {
	t, err := Read(d, diskSize)
	if err != nil {
		return false, err
	}
	if t.Kind != KindGPT {
		return false, nil
	}
	g := t.GPT
	sectors := uint64(diskSize / g.SectorSize)
	if g.AltLBA == sectors-1 {
		return false, nil
	}
	entrySectors := (uint64(len(g.raw)) + uint64(g.SectorSize) - 1) / uint64(g.SectorSize)
	backupEntries := sectors - 1 - entrySectors
	var used uint64
	for _, e := range g.Entries {
		used = max(used, e.LastLBA)
	}
	if backupEntries <= used || backupEntries <= g.EntriesLBA+entrySectors {
		return false, fmt.Errorf("gpt: partitions reach sector %d, past where the backup table goes (%d)", used, backupEntries)
	}
	oldAlt := g.AltLBA
	g.LastUsable = backupEntries - 1
	g.AltLBA = sectors - 1
	if err := writeGPT(d, g, sectors, backupEntries); err != nil {
		return false, err
	}
	if oldAlt > 1 && oldAlt < backupEntries && oldAlt > used {
		if _, err := d.WriteAt(make([]byte, g.SectorSize), int64(oldAlt)*g.SectorSize); err != nil {
			return false, fmt.Errorf("gpt: clear old backup header: %w", err)
		}
	}
	return true, fixProtectiveMBR(d, sectors, g.SectorSize)
}

// writeGPT writes the entry array and both headers.
func writeGPT(d Disk, g *GPT, sectors, backupEntries uint64) error {
	ss := g.SectorSize
	crc := crc32.ChecksumIEEE(g.raw)
	header := func(my, alt, entries uint64) []byte {
		h := make([]byte, ss)
		copy(h, gptSignature)
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], gptHeaderSize)
		binary.LittleEndian.PutUint64(h[24:], my)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], g.FirstUsable)
		binary.LittleEndian.PutUint64(h[48:], g.LastUsable)
		copy(h[56:72], g.DiskGUID[:])
		binary.LittleEndian.PutUint64(h[72:], entries)
		binary.LittleEndian.PutUint32(h[80:], g.NumEntries)
		binary.LittleEndian.PutUint32(h[84:], g.EntrySize)
		binary.LittleEndian.PutUint32(h[88:], crc)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:gptHeaderSize]))
		return h
	}
	writes := []struct {
		what string
		b    []byte
		lba  uint64
	}{
		{"primary entries", g.raw, g.EntriesLBA},
		{"backup entries", g.raw, backupEntries},
		{"backup header", header(sectors-1, 1, backupEntries), sectors - 1},
		{"primary header", header(1, sectors-1, g.EntriesLBA), 1},
	}
	for _, w := range writes {
		if _, err := d.WriteAt(w.b, int64(w.lba)*ss); err != nil {
			return fmt.Errorf("gpt: write %s: %w", w.what, err)
		}
	}
	return nil
}

func fixProtectiveMBR(d Disk, sectors uint64, ss int64) error {
	var sector [512]byte
	if _, err := d.ReadAt(sector[:], 0); err != nil {
		return fmt.Errorf("protective mbr: read: %w", err)
	}
	e := sector[446:462]
	if e[4] != mbrTypeProtective {
		return nil
	}
	binary.LittleEndian.PutUint32(e[12:], uint32(min2(sectors-1, 0xFFFFFFFF)))
	if _, err := d.WriteAt(sector[:], 0); err != nil {
		return fmt.Errorf("protective mbr: write: %w", err)
	}
	return nil
}

// NewGPT writes an empty GPT (protective MBR, 128 entries) with the given
// partitions onto a disk of diskSize bytes and 512-byte sectors. It
// exists for building test disks and fresh layouts; names are ASCII.
func NewGPT(d Disk, diskSize int64, diskGUID [16]byte, parts []GPTEntry) error {
	const ss = 512
	sectors := uint64(diskSize / ss)
	if sectors < 68 {
		return fmt.Errorf("gpt: disk of %d sectors too small", sectors)
	}
	g := &GPT{SectorSize: ss, DiskGUID: diskGUID, FirstUsable: 34, LastUsable: sectors - 34,
		EntriesLBA: 2, NumEntries: 128, EntrySize: 128, raw: make([]byte, 128*128)}
	for i, p := range parts {
		if i >= 128 || p.FirstLBA < g.FirstUsable || p.LastLBA > g.LastUsable || p.LastLBA < p.FirstLBA {
			return fmt.Errorf("gpt: partition %d (%d-%d) outside %d-%d", i, p.FirstLBA, p.LastLBA, g.FirstUsable, g.LastUsable)
		}
		e := g.raw[i*128 : (i+1)*128]
		copy(e[:16], p.Type[:])
		copy(e[16:32], p.GUID[:])
		binary.LittleEndian.PutUint64(e[32:], p.FirstLBA)
		binary.LittleEndian.PutUint64(e[40:], p.LastLBA)
		binary.LittleEndian.PutUint64(e[48:], p.Attrs)
		encodeName(e[56:128], p.Name)
	}
	var mbr [512]byte
	e := mbr[446:462]
	copy(e[1:4], []byte{0x00, 0x02, 0x00})
	e[4] = mbrTypeProtective
	copy(e[5:8], []byte{0xFE, 0xFF, 0xFF})
	binary.LittleEndian.PutUint32(e[8:], 1)
	binary.LittleEndian.PutUint32(e[12:], uint32(min2(sectors-1, 0xFFFFFFFF)))
	mbr[510], mbr[511] = 0x55, 0xAA
	if _, err := d.WriteAt(mbr[:], 0); err != nil {
		return fmt.Errorf("protective mbr: write: %w", err)
	}
	return writeGPT(d, g, sectors, sectors-33)
}

func mustGUID(s string) [16]byte {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err) // constants only
	}
	return g
}

// ParseGUID parses the text form into GPT's mixed-endian byte order.
func ParseGUID(s string) ([16]byte, error) {
	var g [16]byte
	var raw []byte
	for _, c := range []byte(s) {
		if c != '-' {
			raw = append(raw, c)
		}
	}
	if len(raw) != 32 {
		return g, fmt.Errorf("guid %q: want 32 hex digits", s)
	}
	var b [16]byte
	for i := range 16 {
		hi, ok1 := unhex(raw[2*i])
		lo, ok2 := unhex(raw[2*i+1])
		if !ok1 || !ok2 {
			return g, fmt.Errorf("guid %q: not hex", s)
		}
		b[i] = hi<<4 | lo
	}
	g = b
	// First three fields are little-endian on disk.
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	return g, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
