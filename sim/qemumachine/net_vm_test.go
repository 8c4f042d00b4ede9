package qemumachine_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"metalsync.dev/metalsync/sim/qemumachine"
	"metalsync.dev/metalsync/sim/qemumachine/qemutest"
)

// TestMachineVMForward checks that the guest reaches a host loopback
// port through a Forward, over more than one connection: QEMU's iPXE
// fetches its DHCP boot file over http from 10.0.2.100, and that script
// chains a second URL, which the server forces onto a new connection.
func TestMachineVMForward(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	guest := netip.AddrPortFrom(netip.MustParseAddr("10.0.2.100"), port)
	got := make(chan string, 10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path + " from " + r.RemoteAddr
		w.Header().Set("Connection", "close")
		switch r.URL.Path {
		case "/boot.ipxe":
			fmt.Fprintf(w, "#!ipxe\nchain http://%s/second.ipxe\n", guest)
		default:
			fmt.Fprint(w, "#!ipxe\nexit\n")
		}
	})}
	go srv.Serve(l)
	defer srv.Close()

	m := qemutest.Start(t, qemumachine.Config{
		MAC:      "52:54:00:12:34:57",
		Forwards: []qemumachine.Forward{{Guest: guest, HostPort: port}},
		BootFile: fmt.Sprintf("http://%s/boot.ipxe", guest),
	})
	ctx, cancel := context.WithTimeout(context.Background(), qemutest.BootTimeout)
	defer cancel()
	if err := m.SetBootOrder(ctx, qemumachine.BootPXE); err != nil {
		t.Fatal(err)
	}
	if err := m.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/boot.ipxe", "/second.ipxe"} {
		select {
		case r := <-got:
			t.Logf("server got %s", r)
			if !strings.HasPrefix(r, want) {
				t.Fatalf("request %q, want %s", r, want)
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", want, ctx.Err())
		}
	}
}
