// Package ipmisim runs simulated IPMI BMCs in process: go-ipmi's reference
// BMC (pkg/server with the mock hardware layer) listening on UDP, with one
// administrator account. The demo uses it for its IPMI-shaped nodes; tests
// of the IPMI driver use Debian's ipmi_sim as the independent peer.
package ipmisim

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/hal/mock"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/transport/udp"
	"github.com/bougou/go-ipmi/pkg/types"
)

// BMC is one running simulated BMC.
type BMC struct {
	Chassis *mock.Chassis
	addr    net.Addr
	srv     *server.Server
	cancel  context.CancelFunc
	done    chan struct{}
}

// Addr is the UDP address the BMC listens on.
func (b *BMC) Addr() net.Addr { return b.addr }

// Close stops the BMC and waits for it.
func (b *BMC) Close() error {
	b.cancel()
	err := b.srv.Close()
	<-b.done
	return err
}

// softOffChassis obeys an ACPI soft shutdown the way an OS would: the
// reference server maps Chassis Control "soft off" to a warm reset.
type softOffChassis struct{ *mock.Chassis }

func (c softOffChassis) WarmReset(ctx context.Context) error { return c.SetPower(ctx, false) }

type hardware struct {
	*mock.HAL
	ch hal.ChassisHAL
}

func (h hardware) Chassis() hal.ChassisHAL { return h.ch }

// Config configures a simulated BMC.
type Config struct {
	Addr               string // UDP address; "127.0.0.1:0" picks a port
	Username, Password string
	// IgnoreSoftOff simulates an OS that ignores ACPI soft shutdowns.
	IgnoreSoftOff bool
}

// Start runs a BMC with one administrator, speaking IPMI v2.0 (lanplus)
// with cipher suites 3 and 17.
func Start(cfg Config) (*BMC, error) {
	if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("ipmisim: username and password are required")
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ch := &mock.Chassis{}
	var chassis hal.ChassisHAL = softOffChassis{ch}
	if cfg.IgnoreSoftOff {
		chassis = ch
	}
	b := bmc.New(bmc.DeviceInfo{
		DeviceID: 0x20, FirmwareMajor: 3, FirmwareMinor: 0x41, IPMIVersion: 0x20,
		ManufacturerID: 343, ProductID: 1, AdditionalDeviceSupport: 0x80, // chassis device
	}, [16]byte{}, hardware{HAL: mock.New(), ch: chassis})
	u, err := b.Users.Add(2, cfg.Username)
	if err != nil {
		return nil, fmt.Errorf("ipmisim: add user: %w", err)
	}
	u.SetPassword([]byte(cfg.Password))
	u.Enabled = true
	u.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}
	conn, err := udp.Listen(addr)
	if err != nil {
		return nil, fmt.Errorf("ipmisim: listen %s: %w", addr, err)
	}
	srv := server.NewServer(b, conn, server.WithCipherSuites([]types.CipherSuiteID{types.CipherSuiteID3, types.CipherSuiteID17}))
	ctx, cancel := context.WithCancel(context.Background())
	sim := &BMC{Chassis: ch, addr: conn.LocalAddr(), srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sim.done)
		_ = srv.Serve(ctx)
	}()
	return sim, nil
}
