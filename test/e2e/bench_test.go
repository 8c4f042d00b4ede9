package e2e

import (
	"bytes"
	"fmt"
	"metalsync.dev/metalsync/test/tools"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/sim/redfishsim"
	"metalsync.dev/metalsync/test/inventorygen"
)

// BenchmarkPushToAction measures the time from a finished `git push` of a
// one-node change to the first BMC request for that node, on a settled
// fleet (METALSYNC_BENCH_NODES nodes, default 1000), with the webhook and
// with polling every second. Run with -benchtime Nx for N pushes.
func BenchmarkPushToAction(b *testing.B) {
	n := tools.BenchSize(b, "METALSYNC_BENCH_NODES", 1000)
	for _, mode := range []string{"webhook", "poll"} {
		b.Run(fmt.Sprintf("nodes=%d/%s", n, mode), func(b *testing.B) { benchPushToAction(b, n, mode) })
	}
}

func benchPushToAction(b *testing.B, n int, mode string) {
	var systems []redfishsim.SystemConfig
	for i := range n {
		systems = append(systems, redfishsim.SystemConfig{ID: inventorygen.NodeName(i, 40), PoweredOn: true})
	}
	sim, err := redfishsim.New(redfishsim.Config{Systems: systems, Username: bmcUser, Password: bmcPass, LogLimit: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sim.Close)
	l, err := sim.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	files := map[string]string{}
	for p, data := range inventorygen.Files(inventorygen.Options{Nodes: n, Status: true}) {
		s := string(data)
		if strings.HasPrefix(p, "nodes/") {
			name := strings.TrimSuffix(filepath.Base(p), ".yaml")
			s = addressLine.ReplaceAllLiteralString(s, "    address: "+l.BMCURL(name))
		}
		files[p] = s
	}
	srv := gittest.Daemon(b)
	gittest.Seed(b, srv.Base, "inv.git", files)
	poll := "1h"
	if mode == "poll" {
		poll = "1s"
	}
	d := startDaemonArgs(b, srv.URL("inv.git"), freePort(b), "--poll", poll)
	work := gittest.Clone(b, srv.URL("inv.git"))

	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		node := inventorygen.NodeName((i*7919)%n, 40) // spread over racks
		p := filepath.Join(work, "nodes", fmt.Sprintf("rack%04d", ((i*7919)%n)/40), node+".yaml")
		data, _ := os.ReadFile(p)
		os.WriteFile(p, bytes.Replace(data, []byte(`power: "on"`), []byte(`power: "off"`), 1), 0o644)
		gittest.Git(b, work, "commit", "-qam", "power off "+node)
		pushWithRebase(b, work)
		pushed := time.Now()
		if mode == "webhook" {
			body := []byte(`{"ref":"refs/heads/main"}`)
			req, _ := http.NewRequest(http.MethodPost, "http://"+d.addr+"/webhook", bytes.NewReader(body))
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-Hub-Signature-256", sign(body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
		var first time.Time
		waitFor(b, "a BMC request for "+node, func() bool {
			for _, r := range sim.RequestsFor(node) {
				if r.Time.After(pushed) {
					first = r.Time
					return true
				}
			}
			return false
		})
		lat = append(lat, first.Sub(pushed))
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
