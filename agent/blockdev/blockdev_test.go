package blockdev

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestZeroRangeFile(t *testing.T) {
	tests := []struct {
		name      string
		size      int64
		off, n    int64
		wantSize  int64
		wantZeros [2]int64 // range that must read as zeros
	}{
		{name: "inside, aligned", size: 3 * MiB, off: MiB, n: MiB, wantSize: 3 * MiB, wantZeros: [2]int64{MiB, 2 * MiB}},
		{name: "inside, odd", size: 3*MiB + 7, off: 5, n: 1000, wantSize: 3*MiB + 7, wantZeros: [2]int64{5, 1005}},
		{name: "to the end", size: 2*MiB + 3, off: MiB + 3, n: MiB, wantSize: 2*MiB + 3, wantZeros: [2]int64{MiB + 3, 2*MiB + 3}},
		{name: "past the end extends by writing", size: MiB, off: MiB - 10, n: 20, wantSize: MiB + 10, wantZeros: [2]int64{MiB - 10, MiB + 10}},
		{name: "nothing", size: 100, off: 10, n: 0, wantSize: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(p, bytes.Repeat([]byte{0x5A}, int(tt.size)), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := ZeroRange(f, tt.off, tt.n); err != nil {
				t.Fatal(err)
			}
			size, err := Size(f)
			if err != nil || size != tt.wantSize {
				t.Fatalf("Size = %d, %v; want %d", size, err, tt.wantSize)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			z := b[tt.wantZeros[0]:tt.wantZeros[1]]
			if bytes.Count(z, []byte{0}) != len(z) {
				t.Error("range not zero")
			}
			rest := append(append([]byte(nil), b[:tt.wantZeros[0]]...), b[tt.wantZeros[1]:]...)
			if tt.n == 0 {
				rest = b
			}
			if bytes.Count(rest, []byte{0x5A}) != len(rest) {
				t.Error("bytes outside the range changed")
			}
		})
	}
}

func TestRereadPartitionsFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := RereadPartitions(f); err != nil {
		t.Errorf("on a file: %v", err)
	}
	if blk, err := IsBlock(f); err != nil || blk {
		t.Errorf("IsBlock(file) = %v, %v", blk, err)
	}
}
