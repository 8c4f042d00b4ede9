package apply

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"metalsync.dev/metalsync/internal/clock"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/test/tools"
)

// pushSink is a status sink shaped like the Git writer: writes are cheap,
// Sync costs one push (latency), and Syncs waiting while a push is under
// way share the next one (group commit).
type pushSink struct {
	MemorySink
	latency time.Duration

	mu      sync.Mutex
	seq     uint64 // writes so far; guarded by mu
	durable uint64 // writes pushed; guarded by mu
	pushMu  sync.Mutex
	pushes  int // guarded by pushMu
}

func (p *pushSink) WriteStatus(node string, st schema.NodeStatusBody) error {
	p.mu.Lock()
	p.seq++
	p.mu.Unlock()
	return p.MemorySink.WriteStatus(node, st)
}

func (p *pushSink) Sync(ctx context.Context) error {
	p.mu.Lock()
	target := p.seq
	p.mu.Unlock()
	p.pushMu.Lock()
	defer p.pushMu.Unlock()
	p.mu.Lock()
	done, upTo := p.durable >= target, p.seq
	p.mu.Unlock()
	if done {
		return nil
	}
	t := time.NewTimer(p.latency)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	p.pushes++
	p.mu.Lock()
	p.durable = max(p.durable, upTo)
	p.mu.Unlock()
	return nil
}

// BenchmarkApply takes new nodes on fake BMCs to active (enroll, inspect,
// clean, deploy: about 23 BMC calls and 5 power transitions each) with
// realistic BMC latency, four systems per BMC, the site's limits of 64
// concurrent nodes and 2 calls per BMC. It reports the makespan against
// the lower bound those limits set, and the peak of concurrent calls any
// BMC saw. 64 nodes by default; METALSYNC_BENCH_APPLY_NODES=1000 for the
// full figure (about 1.5 minutes). METALSYNC_BENCH_PUSH=60ms makes status
// durable through a Git-shaped sink whose every push takes that long
// (write-ahead intents around each destructive step).
func BenchmarkApply(b *testing.B) {
	n := tools.BenchSize(b, "METALSYNC_BENCH_APPLY_NODES", 64)
	const (
		callLatency  = 150 * time.Millisecond
		powerDelay   = 300 * time.Millisecond
		agentLatency = 150 * time.Millisecond
		global       = 64
		perBMC       = 2
		perHost      = 4
	)
	for b.Loop() {
		r := newRig(b)
		r.agent.Latency = agentLatency
		r.ex.Clock = clock.Real{}
		r.ex.Observer = nil
		var ps *pushSink
		if v := os.Getenv("METALSYNC_BENCH_PUSH"); v != "" {
			lat, err := time.ParseDuration(v)
			if err != nil {
				b.Fatalf("METALSYNC_BENCH_PUSH: %v", err)
			}
			ps = &pushSink{latency: lat}
			r.ex.Sink = ps
		}
		inv := loaded(&schema.Inventory{Site: &schema.Site{Spec: schema.SiteSpec{Concurrency: &schema.Concurrency{Global: global, PerBMC: perBMC}}}})
		hostOf := map[string]string{}
		for i := range n {
			name := fmt.Sprintf("node%04d", i)
			host := fmt.Sprintf("bmc%04d", i/perHost)
			hostOf[name] = host
			r.fleet.Add(host+"/"+name).SetLatency(callLatency, powerDelay)
			inv.Nodes = append(inv.Nodes, fakeNode(name, "active", func(s *schema.NodeSpec) { s.BMC.Address = "fake://" + host + "/" + name }))
		}
		p := reconcile.Plan(inv, nil, r.ex.Capabilities(), time.Now())
		start := time.Now()
		rep := r.ex.Apply(b.Context(), inv, p, nil)
		makespan := time.Since(start)
		if !rep.OK() {
			b.Fatalf("apply failed: %v", outcomes(rep))
		}

		// The lower bound: every node's own serial time (BMC calls, power
		// transitions, agent steps) spread over the global workers, and no
		// BMC busier than its slots allow.
		var total, longest time.Duration
		hostBusy := map[string]time.Duration{}
		for _, nd := range inv.Nodes {
			c := r.fleet.System(hostOf[nd.Name()] + "/" + nd.Name()).Counts()
			powers := c.Ops["power on"] + c.Ops["power off"] + c.Ops["reboot"]
			bmc := time.Duration(c.Calls)*callLatency + time.Duration(powers)*powerDelay
			own := bmc + time.Duration(len(r.agent.Ran(nd.Name())))*agentLatency
			total += own
			longest = max(longest, own)
			hostBusy[hostOf[nd.Name()]] += bmc
		}
		bound := max(total/global, longest)
		for _, busy := range hostBusy {
			bound = max(bound, busy/perBMC)
		}
		peak := 0
		for _, p := range r.fleet.PeakPerHost() {
			peak = max(peak, p)
		}
		if peak > perBMC {
			b.Fatalf("a BMC saw %d concurrent calls; the limit is %d", peak, perBMC)
		}
		b.ReportMetric(makespan.Seconds(), "makespan-s")
		b.ReportMetric(bound.Seconds(), "bound-s")
		b.ReportMetric(makespan.Seconds()/bound.Seconds(), "makespan/bound")
		b.ReportMetric(float64(peak), "peak-calls/BMC")
		b.ReportMetric(float64(n), "nodes")
		if ps != nil {
			b.ReportMetric(float64(ps.pushes), "pushes")
		}
	}
}
