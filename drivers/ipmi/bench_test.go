package ipmi

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bougou/go-ipmi/pkg/client"
)

// BenchmarkPowerState measures one power-status read (Get Chassis Status
// over an open session) against ipmi_sim on loopback.
func BenchmarkPowerState(b *testing.B) {
	bmc := startSim(b, "127.0.0.1").open(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := bmc.PowerState(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeviceID is the same round trip without ipmi_sim's chassis
// script (a fork of sh per power read): Get Device ID, answered by
// ipmi_sim itself, so it shows the driver's and go-ipmi's share.
func BenchmarkDeviceID(b *testing.B) {
	bmc := startSim(b, "127.0.0.1").open(b)
	ctx := context.Background()
	for b.Loop() {
		err := bmc.do(ctx, "get device id", true, func(ctx context.Context, c *client.Client) error {
			_, err := c.GetDeviceID(ctx)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures session setup (Open and Close) with cipher suite 3.
func BenchmarkOpen(b *testing.B) {
	s := startSim(b, "127.0.0.1")
	ctx := context.Background()
	for b.Loop() {
		bmc, err := Open(ctx, s.config(simPassword))
		if err != nil {
			b.Fatal(err)
		}
		if err := bmc.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPowerStateParallel reads power from several BMCs at once, one
// ipmi_sim each (METALSYNC_IPMI_BENCH_BMCS, default 8); ns/op is wall time
// per read across all of them.
func BenchmarkPowerStateParallel(b *testing.B) {
	n := 8
	if v := os.Getenv("METALSYNC_IPMI_BENCH_BMCS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("METALSYNC_IPMI_BENCH_BMCS=%q: want a positive number", v)
		}
	}
	bmcs := make([]*BMC, n)
	for i := range bmcs {
		bmcs[i] = startSim(b, "127.0.0.1").open(b)
	}
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for _, bmc := range bmcs {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := bmc.PowerState(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}
