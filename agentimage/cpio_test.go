package agentimage

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type newcRecord struct {
	Name               string
	Ino, Mode, UID     uint64
	Nlink, Mtime, Size uint64
	RdevMajor          uint64
	RdevMinor          uint64
	Data               string
}

// readNewc parses an archive written by writeNewc, checking the framing
// (magic, 4-byte alignment, trailer) on the way.
func readNewc(t *testing.T, b []byte) []newcRecord {
	t.Helper()
	var out []newcRecord
	for off := 0; ; {
		if off%4 != 0 || len(b) < off+110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		var f [13]uint64
		for i := range f {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("header field %d at %d: %v", i, off, err)
			}
			f[i] = v
		}
		nameEnd := off + 110 + int(f[11])
		name := string(b[off+110 : nameEnd-1])
		if b[nameEnd-1] != 0 {
			t.Fatalf("%s: name not NUL terminated", name)
		}
		dataOff := nameEnd + pad4(nameEnd-off)
		data := string(b[dataOff : dataOff+int(f[6])])
		off = dataOff + int(f[6]) + pad4(int(f[6]))
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, newcRecord{Name: name, Ino: f[0], Mode: f[1], UID: f[2] + f[3], Nlink: f[4], Mtime: f[5], Size: f[6], RdevMajor: f[9], RdevMinor: f[10], Data: data})
	}
}

func TestWriteNewc(t *testing.T) {
	var buf bytes.Buffer
	err := writeNewc(&buf, []cpioEntry{
		{Name: "sbin/modprobe", Mode: modeSymlink | 0o777, Data: []byte("/init")},
		{Name: "/init", Mode: modeRegular | 0o755, Data: []byte("agent")},
		{Name: "dev/console", Mode: modeCharDev | 0o600, Major: 5, Minor: 1},
		{Name: "lib/modules/k/a.ko", Mode: modeRegular | 0o644, Data: []byte("12345678")},
	}, 1700000000)
	if err != nil {
		t.Fatal(err)
	}
	const mt = 1700000000
	want := []newcRecord{
		{Name: "dev", Ino: 1, Mode: modeDir | 0o755, Nlink: 2, Mtime: mt},
		{Name: "dev/console", Ino: 2, Mode: modeCharDev | 0o600, Nlink: 1, Mtime: mt, RdevMajor: 5, RdevMinor: 1},
		{Name: "init", Ino: 3, Mode: modeRegular | 0o755, Nlink: 1, Mtime: mt, Size: 5, Data: "agent"},
		{Name: "lib", Ino: 4, Mode: modeDir | 0o755, Nlink: 2, Mtime: mt},
		{Name: "lib/modules", Ino: 5, Mode: modeDir | 0o755, Nlink: 2, Mtime: mt},
		{Name: "lib/modules/k", Ino: 6, Mode: modeDir | 0o755, Nlink: 2, Mtime: mt},
		{Name: "lib/modules/k/a.ko", Ino: 7, Mode: modeRegular | 0o644, Nlink: 1, Mtime: mt, Size: 8, Data: "12345678"},
		{Name: "sbin", Ino: 8, Mode: modeDir | 0o755, Nlink: 2, Mtime: mt},
		{Name: "sbin/modprobe", Ino: 9, Mode: modeSymlink | 0o777, Nlink: 1, Mtime: mt, Size: 5, Data: "/init"},
	}
	if diff := cmp.Diff(want, readNewc(t, buf.Bytes())); diff != "" {
		t.Errorf("archive (-want +got):\n%s", diff)
	}
}

func TestWriteNewcRejects(t *testing.T) {
	tests := []struct {
		name    string
		entries []cpioEntry
		wantIn  string
	}{
		{"duplicate", []cpioEntry{{Name: "a", Mode: modeRegular}, {Name: "/a", Mode: modeRegular}}, "twice"},
		{"escape", []cpioEntry{{Name: "../a", Mode: modeRegular}}, "invalid"},
		{"root", []cpioEntry{{Name: "/", Mode: modeDir}}, "invalid"},
		{"file as parent", []cpioEntry{{Name: "a", Mode: modeRegular}, {Name: "a/b", Mode: modeRegular}}, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := writeNewc(&bytes.Buffer{}, tt.entries, 1)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantIn)
			}
		})
	}
}
