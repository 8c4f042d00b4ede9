package mediaserver

import (
	"context"
	"fmt"
	"testing"

	"metalsync.dev/metalsync/render"
)

// BenchmarkPublishTemplate publishes node views of a 32 MiB template (the
// agent ISO is ~24 MiB): per publish the documents are rendered, the two
// 64 KiB slot buffers allocated and the view hashed once for its ETag;
// nothing is written to disk. B/op is what a node costs in memory; MB/s
// is the hashing rate over the view.
func BenchmarkPublishTemplate(b *testing.B) {
	const size, slot = 32 << 20, 64 << 10
	p0, _ := synthTemplate(b, size, 16<<20, 16<<20+slot, slot, true)
	tpl, err := LoadTemplate(p0)
	if err != nil {
		b.Fatal(err)
	}
	defer tpl.Close()
	srv, err := New(Config{Dir: b.TempDir(), BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewPublisher(srv, nil, PublisherOptions{Template: tpl, Agent: func(node, _ string) (*render.Agent, error) {
		return &render.Agent{URL: "https://192.0.2.1:9443", Token: "tok-" + node}, nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	node := testNode(nil)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		node.Metadata.Name = fmt.Sprintf("n%d", i%100)
		if _, _, err := p.Publish(context.Background(), node, "e1"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	srv.Close()
}
