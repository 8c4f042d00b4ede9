package imagecache

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"metalsync.dev/metalsync/internal/clock/clocktest"
	"metalsync.dev/metalsync/test/tools"
)

// evictions reads the eviction counter from reg.
func evictions(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "metalsync_image_cache_evictions_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no metalsync_image_cache_evictions_total")
	return 0
}

// TestEviction runs steps against a cache bounded in images: every image
// is random (so it takes its size on disk) and as large as the others.
// The clock moves a minute per step, so last uses are in step order.
//
//	prepare X   Prepare image X
//	open X      Open it and keep the file
//	close X     close the files of X
//	restart N   a new Cache over the same directory, bounded to N half images
//	partial     a download in progress the size of an image, in tmp/
func TestEviction(t *testing.T) {
	tests := []struct {
		name  string
		bound int // half images; 0 is no bound
		steps []string
		want  string // the images left, in order
		evict int
	}{
		{"under the bound", 5, []string{"prepare A", "prepare B"}, "AB", 0},
		{"least recently prepared goes", 5, []string{"prepare A", "prepare B", "prepare C"}, "BC", 1},
		{"a prepare hit is a use", 5, []string{"prepare A", "prepare B", "prepare A", "prepare C"}, "AC", 1},
		{"an open is a use", 5, []string{"prepare A", "prepare B", "open A", "close A", "prepare C"}, "AC", 1},
		{"several go at once", 7, []string{"prepare A", "prepare B", "prepare C", "partial", "prepare D"}, "CD", 2},
		{"restart keeps the order", 5, []string{"prepare A", "prepare B", "open A", "close A", "restart 5", "prepare C"}, "AC", 1},
		{"a lowered bound applies at start", 0, []string{"prepare A", "prepare B", "prepare C", "open A", "close A", "restart 3"}, "A", 2},
		{"an open image stays", 5, []string{"prepare A", "open A", "prepare B", "prepare C"}, "AC", 1},
		{"and goes once closed", 5, []string{"prepare A", "open A", "prepare B", "prepare C", "close A", "prepare D"}, "CD", 2},
		{"twice open, once closed", 5, []string{"prepare A", "open A", "open A", "prepare B", "close-one A", "prepare C"}, "AC", 1},
		{"the image just stored stays", 1, []string{"prepare A", "prepare B"}, "B", 1},
		{"everything in use", 1, []string{"prepare A", "open A", "prepare B"}, "AB", 0},
		{"a download in progress counts", 7, []string{"prepare A", "prepare B", "partial", "prepare C"}, "BC", 1},
	}
	const imageSize = 256 << 10
	srv := newServer(t)
	images := map[string][]byte{}
	urls := map[string]string{}
	for i, name := range strings.Split("ABCDE", "") {
		rng := rand.New(rand.NewPCG(uint64(i), 99))
		b := make([]byte, imageSize)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		images[name] = b
		urls[name] = srv.put("/"+name+".raw", b)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := clocktest.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			var logs tools.SyncBuffer
			reg := prometheus.NewRegistry()
			// unit is what one image takes on disk here, learnt from the
			// first one stored.
			var unit int64
			open := func(bound int) *Cache {
				max := int64(bound) * unit / 2
				if bound > 0 && unit == 0 {
					max = int64(bound) * imageSize / 2 // until measured
				}
				reg = prometheus.NewRegistry()
				c, err := New(dir, Options{MaxBytes: max, Clock: clk, Registerer: reg, Log: slog.New(slog.NewTextHandler(&logs, nil))})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			c := open(tt.bound)
			held := map[string][]*os.File{}
			t.Cleanup(func() {
				for _, fs := range held {
					for _, f := range fs {
						f.Close()
					}
				}
			})
			total := 0.0
			for _, step := range tt.steps {
				clk.Advance(time.Minute)
				op, arg, _ := strings.Cut(step, " ")
				switch op {
				case "prepare":
					sha, _, err := c.Prepare(t.Context(), urls[arg], "sha256:"+sum256(images[arg]), "raw")
					if err != nil {
						t.Fatal(err)
					}
					if unit == 0 {
						fi, err := os.Stat(c.rawPath(sha))
						if err != nil {
							t.Fatal(err)
						}
						if unit = diskBytes(fi); unit < imageSize {
							t.Fatalf("a random image of %d bytes takes %d on disk", imageSize, unit)
						}
						c.maxBytes = int64(tt.bound) * unit / 2
					}
				case "open":
					f, err := c.Open(sum256(images[arg]))
					if err != nil {
						t.Fatal(err)
					}
					held[arg] = append(held[arg], f)
				case "close":
					for _, f := range held[arg] {
						f.Close()
					}
					delete(held, arg)
				case "close-one":
					held[arg][0].Close()
					held[arg] = held[arg][1:]
				case "restart":
					total += evictions(t, reg)
					c.Close()
					n, _ := strconv.Atoi(arg)
					c = open(n)
				case "partial":
					if err := os.WriteFile(filepath.Join(dir, "tmp", "download-test"), images["E"], 0o600); err != nil {
						t.Fatal(err)
					}
				default:
					t.Fatalf("unknown step %q", step)
				}
			}
			total += evictions(t, reg)

			var left []string
			for name, b := range images {
				if _, err := os.Stat(c.rawPath(sum256(b))); err == nil {
					left = append(left, name)
				}
			}
			slices.Sort(left)
			if got := strings.Join(left, ""); got != tt.want {
				t.Errorf("images left: %q, want %q", got, tt.want)
			}
			// Each image left has its index entry, and no other has one.
			idx, err := os.ReadDir(filepath.Join(dir, "index"))
			if err != nil {
				t.Fatal(err)
			}
			if len(idx) != len(left) {
				t.Errorf("%d index entries for %d images", len(idx), len(left))
			}
			if int(total) != tt.evict {
				t.Errorf("counted %v evictions, want %d", total, tt.evict)
			}
			if n := strings.Count(logs.String(), "msg=\"image evicted\""); n != tt.evict {
				t.Errorf("logged %d evictions, want %d", n, tt.evict)
			}
			// A file held open still reads the whole image.
			for name, fs := range held {
				for _, f := range fs {
					got, err := io.ReadAll(io.NewSectionReader(f, 0, imageSize+1))
					if err != nil || !bytes.Equal(got, images[name]) {
						t.Errorf("open image %s no longer reads back (%v)", name, err)
					}
				}
			}
		})
	}
}

// TestEvictedIsPreparedAgain: an evicted image is fetched again on the
// next Prepare, and served whole.
func TestEvictedIsPreparedAgain(t *testing.T) {
	srv := newServer(t)
	a, b := testDisk(), bytes.Repeat([]byte("other image "), 100000)
	ua, ub := srv.put("/a.raw", a), srv.put("/b.raw", b)
	clk := clocktest.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	c, err := New(t.TempDir(), Options{MaxBytes: 1, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, step := range []struct {
		url  string
		img  []byte
		hits int
	}{{ua, a, 1}, {ub, b, 1}, {ua, a, 2}} {
		clk.Advance(time.Minute)
		sha, size, err := c.Prepare(t.Context(), step.url, "sha256:"+sum256(step.img), "raw")
		if err != nil {
			t.Fatal(err)
		}
		checkServed(t, c, sha, size, step.img)
		if n := srv.count(strings.TrimPrefix(step.url, srv.URL)); n != step.hits {
			t.Errorf("%s fetched %d times, want %d", step.url, n, step.hits)
		}
	}
}

// BenchmarkEvictionPass: one pass over a cache of n raw images (and their
// index entries) that evicts the oldest one, as after a store.
func BenchmarkEvictionPass(b *testing.B) {
	for _, n := range []int{50, 500} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchEviction(b, n) })
	}
}

func benchEviction(b *testing.B, n int) {
	dir := b.TempDir()
	c, err := New(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	write := func(i int) {
		sha := sum256([]byte(strconv.Itoa(i)))
		if err := os.WriteFile(c.rawPath(sha), make([]byte, 4096), 0o600); err != nil {
			b.Fatal(err)
		}
		t := time.Unix(int64(i), 0)
		if err := os.Chtimes(c.rawPath(sha), t, t); err != nil {
			b.Fatal(err)
		}
		e := []byte(`{"source":"https://img.example.net/x.raw","checksum":"sha256:` + sha + `","format":"raw","sha256":"` + sha + `","size":4096}`)
		if err := os.WriteFile(c.indexPath("sha256-"+sha+".raw"), e, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		write(i)
	}
	fi, err := os.Stat(c.rawPath(sum256([]byte("0"))))
	if err != nil {
		b.Fatal(err)
	}
	c.maxBytes = int64(n-1) * diskBytes(fi)
	next := n
	for b.Loop() {
		c.evict()
		b.StopTimer()
		write(next)
		next++
		b.StartTimer()
	}
}
