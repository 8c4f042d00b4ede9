package redfish_test

import (
	"context"
	"fmt"
	"metalsync.dev/metalsync/test/tools"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/redfish"
	"metalsync.dev/metalsync/sim/redfishsim"
)

// benchNodes is the simulated fleet size: METALSYNC_BENCH_NODES, default 1000.
func benchNodes(b *testing.B) int {
	return tools.BenchSize(b, "METALSYNC_BENCH_NODES", 1000)
}

// connCounter counts the client's open TCP connections.
type connCounter struct{ open, peak atomic.Int64 }

func (c *connCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	n := c.open.Add(1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	return &countedConn{Conn: conn, c: c}, nil
}

type countedConn struct {
	net.Conn
	c    *connCounter
	once sync.Once
}

func (cc *countedConn) Close() error {
	cc.once.Do(func() { cc.c.open.Add(-1) })
	return cc.Conn.Close()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPowerRead reads the power state of every node of a simulated
// fleet (iDRAC 9 latency profile) once per iteration, through one shared
// Pool, with a global concurrency limit. It reports nodes/s, GETs per node
// (from the simulator's counters), p50/p99 call latency, the client's peak
// open connections and CPU seconds per pass (simulator included: it runs
// in this process).
//
// layout=shared serves every node on one address (path-based), so nodes
// share keep-alive connections; layout=per-bmc gives every node its own
// loopback address, as a rack of BMCs has, and keeps one idle connection
// per BMC between passes (capped at 2000 nodes: three descriptors a node).
func BenchmarkPowerRead(b *testing.B) {
	n := benchNodes(b)
	for _, perBMC := range []bool{false, true} {
		layout, nodes := "shared", n
		if perBMC {
			layout, nodes = "per-bmc", min(n, 2000)
		}
		for _, conc := range []int{64, 256} {
			b.Run(fmt.Sprintf("layout=%s/nodes=%d/conc=%d", layout, nodes, conc), func(b *testing.B) { benchPowerRead(b, nodes, conc, perBMC) })
		}
	}
}

func benchPowerRead(b *testing.B, n, conc int, perBMC bool) {
	sim, err := redfishsim.New(redfishsim.Config{
		Systems:    redfishsim.Systems(n, redfishsim.SystemConfig{PoweredOn: true, Profile: redfishsim.ProfileIDRAC9}),
		Profile:    redfishsim.ProfileIDRAC9,
		Username:   simUser,
		Password:   simPass,
		DisableLog: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	urls := make([]string, n)
	var cc connCounter
	popts := redfish.PoolOptions{Dial: cc.dial}
	if perBMC {
		ls, err := sim.StartBMCs(redfishsim.BMCOptions{SpreadIPs: true})
		if err != nil {
			b.Fatal(err)
		}
		defer ls.Close()
		for i, id := range sim.IDs() {
			urls[i] = ls.Listener(id).URL // no system path: found at open
		}
	} else {
		l, err := sim.Listen("127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		for i, id := range sim.IDs() {
			urls[i] = l.SystemURL(id)
		}
		// Every node shares one address here, so the per-host cap is the
		// concurrency; with one address per BMC the default (4) applies.
		popts.MaxConnsPerHost = conc
	}
	pool := redfish.NewPool(popts)
	defer pool.CloseIdleConnections()

	ctx := context.Background()
	bmcs := make([]drivers.BMC, n)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var openErr atomic.Value
	for i := range urls {
		u, _ := url.Parse(urls[i])
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			bmc, err := pool.Open(ctx, drivers.Config{Endpoint: u, Username: simUser, Password: simPass})
			if err != nil {
				openErr.Store(err)
				return
			}
			bmcs[i] = bmc
		}()
	}
	wg.Wait()
	if err, ok := openErr.Load().(error); ok {
		b.Fatalf("open: %v", err)
	}
	defer func() { // log out concurrently: one by one takes n × latency
		for _, bmc := range bmcs {
			sem <- struct{}{}
			wg.Add(1)
			go func() { defer func() { <-sem; wg.Done() }(); bmc.Close(ctx) }()
		}
		wg.Wait()
	}()

	lat := make([]time.Duration, 0, n*b.N)
	var latMu sync.Mutex
	var readErrs atomic.Int64
	before := sim.TotalCounts()
	cc.peak.Store(cc.open.Load())
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	// The passes stream through the semaphore without a barrier between
	// them, as a daemon's next pass starts while the last stragglers of
	// the previous one finish.
	for range b.N {
		for _, bmc := range bmcs {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				t0 := time.Now()
				st, err := bmc.PowerState(ctx)
				d := time.Since(t0)
				if err != nil || st != drivers.PowerOn {
					readErrs.Add(1)
				}
				latMu.Lock()
				lat = append(lat, d)
				latMu.Unlock()
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	after := sim.TotalCounts()
	if e := readErrs.Load(); e > 0 {
		b.Errorf("%d power reads failed", e)
	}
	reads := float64(n * b.N)
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	mean := sum / time.Duration(len(lat))
	rate := reads / elapsed.Seconds()
	b.ReportMetric(rate, "nodes/s")
	b.ReportMetric(float64(after.Get-before.Get)/reads, "GETs/node")
	b.ReportMetric(float64(after.Requests-before.Requests)/reads, "reqs/node")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(cc.peak.Load()), "peak-conns")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/pass")
	b.ReportMetric(float64(mean.Microseconds())/1000, "mean-ms")
	// Little's law: with conc calls always in flight, the rate is
	// conc / mean latency; this is how close the driver came.
	b.ReportMetric(100*rate/(float64(conc)/mean.Seconds()), "%-of-ideal")
	b.ReportMetric(0, "ns/op")
}

// fdBudget is how many nodes fit in the process's descriptor limit when
// each costs three (its listener, the server's and the client's end of
// its kept connection).
func fdBudget() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1000
	}
	return int(rl.Cur-300) / 3
}

// BenchmarkPowerSweep is the daemon's steady state: every pass opens each
// node's driver through the registry's Pool, reads power and closes it,
// as reconcile/apply does, over N simulated BMCs each on its own loopback
// address, 256 at once. The Pool keeps the sessions and connections, so a
// pass costs one request per node (reqs/node/sweep, from the simulator's
// counters) and no new connection (conns/sweep). Sizes come from
// METALSYNC_BENCH_NODES (default 1000); a size beyond the descriptor limit
// (three per node in this one process) is skipped.
func BenchmarkPowerSweep(b *testing.B) {
	const conc = 256
	for _, n := range tools.BenchSizes(b, "METALSYNC_BENCH_NODES", 1000) {
		for _, prof := range []redfishsim.Profile{redfishsim.ProfileZero, redfishsim.ProfileIDRAC9} {
			b.Run(fmt.Sprintf("nodes=%d/latency=%s/conc=%d", n, prof, conc), func(b *testing.B) {
				if max := fdBudget(); n > max {
					b.Skipf("%d nodes need %d descriptors; the limit allows %d nodes", n, 3*n+300, max)
				}
				benchPowerSweep(b, n, conc, prof)
			})
		}
	}
}

func benchPowerSweep(b *testing.B, n, conc int, prof redfishsim.Profile) {
	sim, err := redfishsim.New(redfishsim.Config{
		Systems:  redfishsim.Systems(n, redfishsim.SystemConfig{PoweredOn: true, Profile: prof}),
		Profile:  prof,
		Username: simUser, Password: simPass, DisableLog: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	ls, err := sim.StartBMCs(redfishsim.BMCOptions{SpreadIPs: true})
	if err != nil {
		b.Fatal(err)
	}
	defer ls.Close()
	cfgs := make([]drivers.Config, n)
	for i, id := range sim.IDs() {
		u, _ := url.Parse(ls.Listener(id).URL) // no system path: found at the first open
		cfgs[i] = drivers.Config{Endpoint: u, Username: simUser, Password: simPass}
	}
	var cc connCounter
	var dials atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return cc.dial(ctx, network, addr)
	}
	pool := redfish.NewPool(redfish.PoolOptions{Dial: dial, MaxIdleConns: n})
	defer pool.Close(context.Background())
	ctx := context.Background()
	var failed atomic.Int64
	sweep := func() {
		sem := make(chan struct{}, conc)
		var wg sync.WaitGroup
		for _, cfg := range cfgs {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				bmc, err := pool.Open(ctx, cfg)
				if err != nil {
					failed.Add(1)
					return
				}
				defer bmc.Close(ctx)
				if st, err := bmc.PowerState(ctx); err != nil || st != drivers.PowerOn {
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	sweep() // first pass: service root, login, system found, power read
	if f := failed.Load(); f > 0 {
		b.Fatalf("first sweep: %d nodes failed", f)
	}
	before, dials0 := sim.TotalCounts(), dials.Load()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		sweep()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Errorf("%d power reads failed", f)
	}
	after := sim.TotalCounts()
	reads := float64(n * b.N)
	b.ReportMetric(reads/elapsed.Seconds(), "nodes/s")
	b.ReportMetric(float64(after.Requests-before.Requests)/reads, "reqs/node/sweep")
	b.ReportMetric(float64(dials.Load()-dials0)/float64(b.N), "conns/sweep")
	b.ReportMetric(float64(pool.Sessions()), "sessions")
	b.ReportMetric(0, "ns/op")
}
