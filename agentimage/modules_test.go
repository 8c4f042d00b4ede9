package agentimage

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testModulesDep = `kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/md/raid456.ko: kernel/crypto/async_tx/async_xor.ko kernel/lib/libcrc32c.ko
kernel/crypto/async_tx/async_xor.ko:
kernel/lib/libcrc32c.ko:
kernel/net/8021q/8021q.ko: kernel/net/802/garp.ko
kernel/net/802/garp.ko:
kernel/drivers/net/e1000-x.ko:
`

func TestResolveModules(t *testing.T) {
	md, err := parseModulesDep([]byte(testModulesDep))
	if err != nil {
		t.Fatal(err)
	}
	builtin := parseBuiltin([]byte("kernel/fs/efivarfs/efivarfs.ko\n"))
	tests := []struct {
		name      string
		want      []string
		wantFiles []string
		wantLoad  []string
		wantErr   string
	}{
		{
			name:      "deps added, sorted",
			want:      []string{"virtio_blk", "8021q"},
			wantFiles: []string{"kernel/drivers/block/virtio_blk.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/net/802/garp.ko", "kernel/net/8021q/8021q.ko"},
			wantLoad:  []string{"virtio_blk", "8021q"},
		},
		{
			name:      "built-in skipped, dash is underscore",
			want:      []string{"efivarfs", "e1000-x"},
			wantFiles: []string{"kernel/drivers/net/e1000-x.ko"},
			wantLoad:  []string{"e1000_x"},
		},
		{name: "unknown", want: []string{"virtio_blk", "nosuch"}, wantErr: "nosuch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, load, err := resolveModules(md, builtin, tt.want)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantFiles, files); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLoad, load); diff != "" {
				t.Errorf("load (-want +got):\n%s", diff)
			}
		})
	}
}

// TestModuleIndexFiles: the depmod files keep only the modules in the
// archive, so the agent never looks for one that is not there.
func TestModuleIndexFiles(t *testing.T) {
	src := map[string][]byte{
		"modules.dep":     []byte(testModulesDep),
		"modules.alias":   []byte("alias virtio:d00000002v* virtio_blk\nalias pci:v00008086d0000100E* e1000\nalias net-pf-x 8021q\n"),
		"modules.order":   []byte("kernel/drivers/virtio/virtio.ko\nkernel/drivers/net/e1000-x.ko\n"),
		"modules.builtin": []byte("kernel/fs/efivarfs/efivarfs.ko\n"),
	}
	got := moduleIndexFiles(src, []string{"kernel/drivers/block/virtio_blk.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"})
	want := map[string]string{
		"modules.dep": "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n" +
			"kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio.ko:\n",
		"modules.alias":   "alias virtio:d00000002v* virtio_blk\n",
		"modules.order":   "kernel/drivers/virtio/virtio.ko\n",
		"modules.builtin": "kernel/fs/efivarfs/efivarfs.ko\n",
	}
	gotS := map[string]string{}
	for k, v := range got {
		gotS[k] = string(v)
	}
	if diff := cmp.Diff(want, gotS); diff != "" {
		t.Errorf("index files (-want +got):\n%s", diff)
	}
}
