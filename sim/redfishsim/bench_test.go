package redfishsim

import (
	"encoding/json"
	"fmt"
	"metalsync.dev/metalsync/test/tools"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkPowerRead serves N systems (METALSYNC_BENCH_NODES, default
// 1000) on one listener and reads every system's PowerState with a plain
// HTTP client at concurrency 64 and 256. One op is one pass over all
// systems. It reports nodes/s, p50/p99 latency and peak open connections;
// with the zero profile it shows the simulator's own ceiling.
func BenchmarkPowerRead(b *testing.B) {
	n := tools.BenchSize(b, "METALSYNC_BENCH_NODES", 1000)
	for _, profile := range []Profile{ProfileIDRAC9, ProfileZero} {
		for _, conc := range []int{64, 256} {
			b.Run(fmt.Sprintf("profile=%s/nodes=%d/conc=%d", profile, n, conc), func(b *testing.B) {
				benchPowerRead(b, profile, n, conc)
			})
		}
	}
}

func benchPowerRead(b *testing.B, profile Profile, n, conc int) {
	sim, err := New(Config{Systems: Systems(n, SystemConfig{Profile: profile, PoweredOn: true}), DisableLog: true})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	l, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ids := sim.IDs()

	var lat []time.Duration
	var mu sync.Mutex
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		work := make(chan string)
		var wg sync.WaitGroup
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for id := range work {
					t := time.Now()
					if err := readPower(client, l.SystemURL(id)); err != nil {
						b.Error(err)
					}
					mine = append(mine, time.Since(t))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		for _, id := range ids {
			work <- id
		}
		close(work)
		wg.Wait()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	_, peak := l.Conns()
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "nodes/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(peak), "peak-conns")
	if got := sim.TotalCounts().Requests; got != int64(len(lat)) {
		b.Errorf("simulator counted %d requests, client sent %d", got, len(lat))
	}
}

func readPower(c *http.Client, url string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth("admin", "password")
	r, err := c.Do(req)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	var d struct{ PowerState string }
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		return err
	}
	if r.StatusCode != 200 || d.PowerState != "On" {
		return fmt.Errorf("%s: %d %q", url, r.StatusCode, d.PowerState)
	}
	return nil
}
