// Package dhcp4 is the deploy agent's DHCPv4 client, for a node whose
// boot media carries no static network: one DISCOVER, OFFER, REQUEST, ACK
// exchange (RFC 2131) on one NIC. It sets the broadcast flag, so replies
// reach a NIC that has no address yet, and it renews nothing: the agent
// lives for one deployment, and leases last hours.
package dhcp4

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Ports of DHCPv4.
const (
	ServerPort = 67
	ClientPort = 68
)

// Lease is what the server's ACK gave.
type Lease struct {
	Addr    netip.Prefix // the address, with the subnet's length
	Server  netip.Addr   // the server that gave it
	Routers []netip.Addr
	DNS     []netip.Addr
	Time    time.Duration // lease time; 0 when the server said none
}

// ErrNAK says the server refused the REQUEST.
var ErrNAK = errors.New("dhcp server sent NAK")

// Message types (option 53).
const (
	msgDiscover = 1
	msgOffer    = 2
	msgRequest  = 3
	msgACK      = 5
	msgNAK      = 6
)

// Options the client reads or writes.
const (
	optPad         = 0
	optSubnetMask  = 1
	optRouter      = 3
	optDNS         = 6
	optRequestedIP = 50
	optLeaseTime   = 51
	optMsgType     = 53
	optServerID    = 54
	optParams      = 55
	optEnd         = 255
)

const (
	headerLen   = 236
	opRequest   = 1
	opReply     = 2
	flagBcast   = 0x8000
	magicCookie = 0x63825363
)

// message is the part of a DHCPv4 message the client uses.
type message struct {
	op      byte
	xid     uint32
	flags   uint16
	yiaddr  netip.Addr
	chaddr  net.HardwareAddr
	options map[byte][]byte
}

// parse reads a DHCPv4 message from the wire. Input is untrusted: every
// length is checked.
func parse(b []byte) (message, error) {
	if len(b) < headerLen+4 {
		return message{}, fmt.Errorf("dhcp message: %d bytes, too short", len(b))
	}
	if binary.BigEndian.Uint32(b[headerLen:]) != magicCookie {
		return message{}, errors.New("dhcp message: no magic cookie")
	}
	hlen := int(b[2])
	if hlen > 16 {
		return message{}, fmt.Errorf("dhcp message: hardware address length %d", hlen)
	}
	m := message{
		op:      b[0],
		xid:     binary.BigEndian.Uint32(b[4:]),
		flags:   binary.BigEndian.Uint16(b[10:]),
		yiaddr:  netip.AddrFrom4([4]byte(b[16:20])),
		chaddr:  net.HardwareAddr(append([]byte(nil), b[28:28+hlen]...)),
		options: map[byte][]byte{},
	}
	opts := b[headerLen+4:]
	for len(opts) > 0 {
		code := opts[0]
		if code == optEnd {
			break
		}
		if code == optPad {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return message{}, fmt.Errorf("dhcp message: option %d runs past the end", code)
		}
		n := int(opts[1])
		// Options may come split in several parts (RFC 3396).
		m.options[code] = append(m.options[code], opts[2:2+n]...)
		opts = opts[2+n:]
	}
	return m, nil
}

// marshal writes m as a client message.
func (m message) marshal() []byte {
	b := make([]byte, headerLen+4, 300)
	b[0], b[1], b[2] = m.op, 1, byte(len(m.chaddr)) // htype ethernet
	binary.BigEndian.PutUint32(b[4:], m.xid)
	binary.BigEndian.PutUint16(b[10:], m.flags)
	copy(b[28:44], m.chaddr)
	binary.BigEndian.PutUint32(b[headerLen:], magicCookie)
	// Message type first, as some servers expect.
	codes := []byte{optMsgType}
	for c := range m.options {
		if c != optMsgType {
			codes = append(codes, c)
		}
	}
	slices.Sort(codes[1:]) // a message's bytes depend only on its contents
	for _, c := range codes {
		v := m.options[c]
		for first := true; first || len(v) > 0; first = false {
			n := min(len(v), 255) // longer ones go in parts (RFC 3396)
			b = append(b, c, byte(n))
			b = append(b, v[:n]...)
			v = v[n:]
		}
	}
	b = append(b, optEnd)
	for len(b) < 300 { // BOOTP's minimum, which old relays insist on
		b = append(b, optPad)
	}
	return b
}

func (m message) msgType() byte {
	if v := m.options[optMsgType]; len(v) == 1 {
		return v[0]
	}
	return 0
}

func addr4(v []byte) (netip.Addr, bool) {
	if len(v) != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(v)), true
}

func addrs4(v []byte) []netip.Addr {
	var out []netip.Addr
	for len(v) >= 4 {
		out = append(out, netip.AddrFrom4([4]byte(v[:4])))
		v = v[4:]
	}
	return out
}

// lease reads the lease out of an ACK.
func (m message) lease() (Lease, error) {
	if !m.yiaddr.IsValid() || m.yiaddr.IsUnspecified() {
		return Lease{}, errors.New("dhcp ack: no address")
	}
	bits := 32
	if mask, ok := m.options[optSubnetMask]; ok {
		if len(mask) != 4 {
			return Lease{}, errors.New("dhcp ack: bad subnet mask")
		}
		ones, total := net.IPMask(mask).Size()
		if total != 32 {
			return Lease{}, fmt.Errorf("dhcp ack: subnet mask %v is not contiguous", net.IP(mask))
		}
		bits = ones
	}
	l := Lease{Addr: netip.PrefixFrom(m.yiaddr, bits), Routers: addrs4(m.options[optRouter]), DNS: addrs4(m.options[optDNS])}
	l.Server, _ = addr4(m.options[optServerID])
	if v := m.options[optLeaseTime]; len(v) == 4 {
		l.Time = time.Duration(binary.BigEndian.Uint32(v)) * time.Second
	}
	return l, nil
}

// Exchange gets a lease for the NIC with hardware address mac over conn, a
// UDP socket on the client port bound to that NIC; dst is where requests
// go (255.255.255.255:67). Unanswered messages are sent again, 1 s apart
// doubling up to 8 s, until ctx ends.
func Exchange(ctx context.Context, conn net.PacketConn, dst net.Addr, mac net.HardwareAddr) (Lease, error) {
	if len(mac) == 0 || len(mac) > 16 {
		return Lease{}, fmt.Errorf("dhcp: hardware address %q", mac)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	base := message{op: opRequest, xid: rand.Uint32(), flags: flagBcast, chaddr: mac}
	params := []byte{optSubnetMask, optRouter, optDNS, optLeaseTime}

	discover := base
	discover.options = map[byte][]byte{optMsgType: {msgDiscover}, optParams: params}
	offer, err := roundTrip(ctx, conn, dst, discover, func(m message) bool { return m.msgType() == msgOffer })
	if err != nil {
		return Lease{}, fmt.Errorf("dhcp discover: %w", err)
	}
	server, ok := addr4(offer.options[optServerID])
	if !ok || !offer.yiaddr.Is4() {
		return Lease{}, errors.New("dhcp offer: no server identifier or address")
	}
	request := base
	request.options = map[byte][]byte{optMsgType: {msgRequest}, optParams: params,
		optRequestedIP: offer.yiaddr.AsSlice(), optServerID: server.AsSlice()}
	ack, err := roundTrip(ctx, conn, dst, request, func(m message) bool {
		t := m.msgType()
		return t == msgACK || t == msgNAK
	})
	if err != nil {
		return Lease{}, fmt.Errorf("dhcp request: %w", err)
	}
	if ack.msgType() == msgNAK {
		return Lease{}, ErrNAK
	}
	return ack.lease()
}

// roundTrip sends req until a reply to it that want accepts arrives.
func roundTrip(ctx context.Context, conn net.PacketConn, dst net.Addr, req message, want func(message) bool) (message, error) {
	out := req.marshal()
	buf := make([]byte, 1500)
	wait := time.Second
	for {
		if err := ctx.Err(); err != nil {
			return message{}, err
		}
		if _, err := conn.WriteTo(out, dst); err != nil {
			return message{}, err
		}
		deadline := time.Now().Add(wait)
		if err := conn.SetReadDeadline(deadline); err != nil {
			return message{}, err
		}
		if err := ctx.Err(); err != nil {
			return message{}, err // ended while the deadline was set
		}
		for {
			n, _, err := conn.ReadFrom(buf)
			if ctx.Err() != nil {
				return message{}, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // send again
			}
			if err != nil {
				return message{}, err
			}
			m, err := parse(buf[:n])
			if err != nil || m.op != opReply || m.xid != req.xid || string(m.chaddr) != string(req.chaddr) || !want(m) {
				continue // another client's, or noise
			}
			return m, nil
		}
		wait = min(2*wait, 8*time.Second)
	}
}
