package mediaserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRangedDownloads runs many concurrent downloads of one sparse
// image, each fetched as 8 MiB Range requests the way BMCs read virtual
// media, and reports throughput and heap in use (before, peak during and
// after the downloads; client and server share the process). The heap
// must not grow with the image size nor per download beyond buffers.
// Default: a 16 MiB image, 10 and 100 downloads. METALSYNC_BENCH_BIG=1:
// 100 MiB and 50 and 500 downloads. Run with -benchtime 1x.
func BenchmarkRangedDownloads(b *testing.B) {
	size, counts := int64(16<<20), []int{10, 100}
	if os.Getenv("METALSYNC_BENCH_BIG") == "1" {
		size, counts = 100<<20, []int{50, 500}
	}
	for _, d := range counts {
		b.Run(fmt.Sprintf("size=%dMiB/downloads=%d", size>>20, d), func(b *testing.B) {
			benchDownloads(b, size, d)
		})
	}
}

func benchDownloads(b *testing.B, size int64, downloads int) {
	dir := b.TempDir()
	src := filepath.Join(dir, "sparse.iso")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{Dir: filepath.Join(dir, "media"), BaseURL: BaseURL("http", ln.Addr()), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, nil, 5*time.Second) }()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: downloads}}
	defer func() {
		client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		srv.Close()
	}()
	pub, err := srv.PublishFile("bench", src, time.Hour)
	if err != nil {
		b.Fatal(err)
	}

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()

	const chunk = 8 << 20
	var total atomic.Int64
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		for range downloads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 32<<10)
				for off := int64(0); off < size; off += chunk {
					n, err := getRange(client, pub.URL, off, min(off+chunk, size)-1, buf)
					if err != nil {
						b.Error(err)
						return
					}
					total.Add(n)
				}
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	close(stop)
	<-sampled
	runtime.ReadMemStats(&ms)
	after := ms.HeapInuse
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if total.Load() != int64(b.N)*int64(downloads)*size {
		b.Fatalf("downloaded %d bytes, want %d", total.Load(), int64(b.N)*int64(downloads)*size)
	}
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	b.ReportMetric(float64(total.Load())/(1<<20)/b.Elapsed().Seconds(), "MiB/s")
	b.ReportMetric(mib(before), "heap-before-MiB")
	b.ReportMetric(mib(max(peak.Load(), after)), "heap-peak-MiB")
	b.ReportMetric(mib(ms.HeapInuse), "heap-after-gc-MiB")
	b.ReportMetric(float64(max(peak.Load(), after)-min(before, max(peak.Load(), after)))/1024/float64(downloads), "peak-KiB/download")
}

func getRange(c *http.Client, u string, start, end int64, buf []byte) (int64, error) {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("range %d-%d: status %d", start, end, resp.StatusCode)
	}
	n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
	if err == nil && n != end-start+1 {
		err = fmt.Errorf("range %d-%d: got %d bytes", start, end, n)
	}
	return n, err
}
