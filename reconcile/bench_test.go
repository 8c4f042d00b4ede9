package reconcile

import (
	"fmt"
	"metalsync.dev/metalsync/test/tools"
	"testing"

	"metalsync.dev/metalsync/schema"
)

// benchSizes are the inventory sizes of BenchmarkPlan: 1,000 nodes by
// default so that `make bench` stays quick; METALSYNC_BENCH_NODES=1000,10000,50000
// runs the larger ones.
func benchSizes(b *testing.B) []int {
	return tools.BenchSizes(b, "METALSYNC_BENCH_NODES", 1000)
}

// benchInventory builds n nodes in 100-node racks, all active with two
// templates, and a recorded status where 90% match and 10% differ (new
// image, power drift, not yet enrolled, or being undeployed).
func benchInventory(n int) (*schema.Inventory, Observed) {
	templates := []*schema.DeployTemplate{
		template("bios", schema.Step{Interface: "bios", Step: "apply_configuration", Priority: 110, Args: &schema.BIOSArgs{Settings: schema.BIOSSettings{"SriovEnable": "Enabled"}}}),
		template("raid", schema.Step{Interface: "raid", Step: "create_configuration", Priority: 105, Args: &schema.RAIDArgs{LogicalDisks: []schema.LogicalDisk{{RAIDLevel: "1"}}}}),
	}
	inv := &schema.Inventory{Templates: templates, Nodes: make([]*schema.Node, 0, n), Site: &schema.Site{Spec: schema.SiteSpec{}.Defaults()}}
	obs := make(Observed, n)
	for i := range n {
		name := fmt.Sprintf("r%03d-n%03d", i/100, i%100)
		addr := fmt.Sprintf("redfish+https://10.%d.%d.%d/redfish/v1/Systems/1", i/65536%256, i/256%256, i%256)
		nd := node(name, addr, "active", func(s *schema.NodeSpec) {
			s.Power = "on"
			s.Provision.DeployTemplates = []string{"bios", "raid"}
		})
		st := settled("active", "on")
		if i%10 == 0 { // the changed 10%
			switch i / 10 % 4 {
			case 0:
				nd.Spec.Provision.Image = newImage
			case 1:
				st.Power = "off"
			case 2:
				inv.Nodes = append(inv.Nodes, nd)
				continue // no status: enrol from scratch
			case 3:
				nd.Spec.Provision.State = "available"
			}
		}
		inv.Nodes = append(inv.Nodes, nd)
		obs[name] = st
	}
	return inv, obs
}

// BenchmarkPlan measures the planner alone (inventory built in Go; the
// loader's validation time is not included).
func BenchmarkPlan(b *testing.B) {
	for _, n := range benchSizes(b) {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			inv, obs := benchInventory(n)
			b.ReportAllocs()
			b.ResetTimer()
			var changed int
			for b.Loop() {
				p := Plan(inv, obs, withAgent, testNow)
				changed = p.Summarize().NodesChanged
			}
			b.ReportMetric(float64(changed), "nodes-changed")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/node")
		})
	}
}
