package render

import (
	"io"
	"os"
	"testing"
)

// BenchmarkWrite renders the bond+vlan topology's media in parallel (run
// with -cpu 2 for the 2-core figure). isos/s is the rate over all
// goroutines; bytes/node is the image size. kdomanski/iso9660 stages files
// in a directory under $TMPDIR, so the "tmpfs" variants (TMPDIR=/dev/shm)
// show what a tmpfs staging directory buys over the default /tmp.
func BenchmarkWrite(b *testing.B) {
	n := topologies()[3].node
	for _, tmp := range []string{"", "/dev/shm"} {
		name := "tmpdir"
		if tmp != "" {
			if st, err := os.Stat(tmp); err != nil || !st.IsDir() {
				continue
			}
			name = "tmpfs"
		}
		for _, f := range []Format{ConfigDrive, NoCloud} {
			b.Run(name+"/"+string(f), func(b *testing.B) {
				if tmp != "" {
					b.Setenv("TMPDIR", tmp)
				}
				benchWrite(b, f, n)
			})
		}
	}
}

func benchWrite(b *testing.B, f Format, n Node) {
	size, err := Write(io.Discard, f, n, testModTime)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := Write(io.Discard, f, n, testModTime); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "isos/s")
	b.ReportMetric(float64(size), "bytes/node")
}

// BenchmarkDocuments is the pure document cost without the ISO.
func BenchmarkDocuments(b *testing.B) {
	n := topologies()[3].node
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NetworkData(n.Network); err != nil {
			b.Fatal(err)
		}
		if _, err := NetworkConfig(n.Network); err != nil {
			b.Fatal(err)
		}
	}
}
