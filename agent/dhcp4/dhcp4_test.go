package dhcp4

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// server answers DHCP on conn as a server would: an OFFER of addr to a
// DISCOVER, an ACK (or a NAK, with nak) to a REQUEST for it. It ignores
// the first drop messages, so that the client must send again.
type server struct {
	conn  net.PacketConn
	addr  netip.Addr
	nak   bool
	drop  int
	other bool // answer each message first with another client's reply
}

func (s *server) serve(t *testing.T) {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := parse(buf[:n])
		if err != nil {
			t.Errorf("server: %v", err)
			return
		}
		if s.drop > 0 {
			s.drop--
			continue
		}
		id := netip.MustParseAddr("192.0.2.1").AsSlice()
		reply := message{op: opReply, xid: m.xid, flags: m.flags, chaddr: m.chaddr, yiaddr: s.addr, options: map[byte][]byte{optServerID: id}}
		switch m.msgType() {
		case msgDiscover:
			reply.options[optMsgType] = []byte{msgOffer}
		case msgRequest:
			if got, _ := addr4(m.options[optRequestedIP]); got != s.addr {
				t.Errorf("server: request for %v, offered %v", got, s.addr)
			}
			if got, _ := addr4(m.options[optServerID]); got.String() != "192.0.2.1" {
				t.Errorf("server: request names server %v", got)
			}
			reply.options[optMsgType] = []byte{msgACK}
			if s.nak {
				reply.options[optMsgType] = []byte{msgNAK}
			}
			reply.options[optSubnetMask] = []byte{255, 255, 255, 0}
			reply.options[optRouter] = []byte{192, 0, 2, 1}
			reply.options[optDNS] = []byte{192, 0, 2, 53, 192, 0, 2, 54}
			reply.options[optLeaseTime] = binary.BigEndian.AppendUint32(nil, 3600)
		default:
			t.Errorf("server: message type %d", m.msgType())
			return
		}
		if s.other {
			o := reply
			o.xid++
			s.conn.WriteTo(o.marshalReply(), from)
		}
		s.conn.WriteTo(reply.marshalReply(), from)
	}
}

// marshalReply is marshal with the address the server gives.
func (m message) marshalReply() []byte {
	b := m.marshal()
	copy(b[16:20], m.yiaddr.AsSlice())
	return b
}

func listen(t *testing.T) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestExchange(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	want := Lease{Addr: netip.MustParsePrefix("192.0.2.10/24"), Server: netip.MustParseAddr("192.0.2.1"),
		Routers: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		DNS:     []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")}, Time: time.Hour}
	tests := []struct {
		name    string
		srv     server
		want    Lease
		wantErr error
	}{
		{"lease", server{}, want, nil},
		{"lost discover sent again", server{drop: 1}, want, nil},
		{"other client's replies skipped", server{other: true}, want, nil},
		{"nak", server{nak: true}, Lease{}, ErrNAK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv
			srv.conn, srv.addr = listen(t), netip.MustParseAddr("192.0.2.10")
			go srv.serve(t)
			got, err := Exchange(t.Context(), listen(t), srv.conn.LocalAddr(), mac)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Exchange: %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("lease (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExchangeEndsWithContext: no server answers; the exchange ends with
// its context.
func TestExchangeEndsWithContext(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	silent := listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := Exchange(ctx, listen(t), silent.LocalAddr(), mac)
		done <- err
	}()
	buf := make([]byte, 1500)
	if _, _, err := silent.ReadFrom(buf); err != nil { // the first DISCOVER
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Exchange = %v, want context.Canceled", err)
	}
}

func TestParseRoundTrip(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	m := message{op: opRequest, xid: 0xdeadbeef, flags: flagBcast, chaddr: mac,
		options: map[byte][]byte{optMsgType: {msgRequest}, optRequestedIP: {10, 0, 0, 5}, optParams: {1, 3}}}
	b := m.marshal()
	if len(b) < 300 {
		t.Errorf("message of %d bytes, want at least 300", len(b))
	}
	if b[headerLen+4] != optMsgType {
		t.Errorf("first option %d, want the message type", b[headerLen+4])
	}
	got, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	m.yiaddr = netip.AddrFrom4([4]byte{})
	if diff := cmp.Diff(m, got, cmp.AllowUnexported(message{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseRejects(t *testing.T) {
	good := message{op: opReply, chaddr: make(net.HardwareAddr, 6), options: map[byte][]byte{optMsgType: {msgOffer}}}.marshal()
	tests := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:100] }},
		{"no cookie", func(b []byte) []byte { b[headerLen] = 0; return b }},
		{"long hardware address", func(b []byte) []byte { b[2] = 17; return b }},
		{"option past the end", func(b []byte) []byte { return append(b[:headerLen+4], optRouter, 8, 1, 2) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parse(tt.edit(append([]byte(nil), good...))); err == nil {
				t.Error("parsed")
			}
		})
	}
}

func TestLeaseRejects(t *testing.T) {
	tests := []struct {
		name string
		m    message
	}{
		{"no address", message{options: map[byte][]byte{}}},
		{"bad mask length", message{yiaddr: netip.MustParseAddr("10.0.0.5"), options: map[byte][]byte{optSubnetMask: {255, 255}}}},
		{"holey mask", message{yiaddr: netip.MustParseAddr("10.0.0.5"), options: map[byte][]byte{optSubnetMask: {255, 0, 255, 0}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := tt.m.lease(); err == nil {
				t.Errorf("lease %+v", l)
			}
		})
	}
}

// FuzzParse: no input from the wire panics the parser, and what it reads
// is read back the same after marshalling.
func FuzzParse(f *testing.F) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	f.Add(message{op: opReply, chaddr: mac, yiaddr: netip.MustParseAddr("10.0.0.5"),
		options: map[byte][]byte{optMsgType: {msgACK}, optSubnetMask: {255, 255, 255, 0}, optRouter: {10, 0, 0, 1}}}.marshalReply())
	f.Add(make([]byte, headerLen+4))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parse(b)
		if err != nil {
			return
		}
		_, _ = m.lease()
		again, err := parse(m.marshal())
		if err != nil {
			t.Fatalf("marshalled message does not parse: %v", err)
		}
		for c, v := range m.options {
			if string(again.options[c]) != string(v) {
				t.Errorf("option %d: %x, then %x", c, v, again.options[c])
			}
		}
	})
}
