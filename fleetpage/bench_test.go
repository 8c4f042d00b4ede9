package fleetpage

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"metalsync.dev/metalsync/daemon"
	"metalsync.dev/metalsync/fleetpage/fleetpagetest"
	"metalsync.dev/metalsync/reconcile"
	"metalsync.dev/metalsync/schema"
	"metalsync.dev/metalsync/test/inventorygen"
)

// BenchmarkFleetPage serves the fleet page and the JSON API of a
// generated fleet (METALSYNC_BENCH_NODES, default 10000) and reports the
// page's size, plain and gzipped. Each iteration also un-gzips the body.
//
//	go test ./fleetpage -run '^$' -bench FleetPage -benchmem
func BenchmarkFleetPage(b *testing.B) {
	n := 10000
	if v := os.Getenv("METALSYNC_BENCH_NODES"); v != "" {
		n, _ = strconv.Atoi(strings.Split(v, ",")[0])
	}
	fsys := fstest.MapFS{}
	for p, data := range inventorygen.Files(inventorygen.Options{Nodes: n, Status: true, Drift: 0.1}) {
		fsys[p] = &fstest.MapFile{Data: data}
	}
	inv, diags := (&schema.Loader{}).Load(fsys)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	f := fleetpagetest.New(daemon.Snapshot{Revision: strings.Repeat("a", 40), Inventory: inv, Observed: reconcile.ObservedFromStatus(inv.Status), Generation: 1})
	h := newHandler(b, f, nil)
	// page: the state unchanged since the last view (served from the
	// cache); page-changed: the state changed before every view.
	for _, tc := range []struct {
		name, path string
		change     bool
	}{{"page", "/", false}, {"page-changed", "/", true}, {"api", "/api/v1/nodes", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var size, zsize int
			for b.Loop() {
				if tc.change {
					f.Update(func(*daemon.Snapshot) {})
				}
				req := httptest.NewRequest(http.MethodGet, tc.path, nil)
				req.Header.Set("Accept-Encoding", "gzip")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
				zsize = rec.Body.Len()
				zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
				if err != nil {
					b.Fatal(err)
				}
				var plain bytes.Buffer
				plain.ReadFrom(zr)
				size = plain.Len()
			}
			b.ReportMetric(float64(size)/1024, "KiB")
			b.ReportMetric(float64(zsize)/1024, "KiB-gzip")
		})
	}
}
