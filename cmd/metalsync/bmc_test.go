package main

import (
	"bytes"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"metalsync.dev/metalsync/sim/ipmisim"
	"metalsync.dev/metalsync/sim/mockupserver"
	"metalsync.dev/metalsync/sim/redfishsim"
)

// TestBMCScripts runs the `metalsync bmc` scripts in testdata/bmc against
// live Redfish services started here, one set per script:
//
//	$BMC_URL         a simulated BMC (one system, InsertMedia actions)
//	$BMC_TLS_URL     the same BMC over HTTPS; $BMC_CA is its CA's PEM file
//	$BMC_MOCKUP_URL  the DMTF public-tower mockup (virtual media by PATCH)
//	$BMC_NOMEDIA_URL the same mockup without any virtual media
//	$IMAGE_URL       an image the simulated BMC can fetch
//	$IPMI_URL        a simulated IPMI BMC (go-ipmi's reference BMC on UDP)
//
// with user $BMC_USER and the password in $METALSYNC_BMC_PASSWORD. They
// are not in testdata/script because that directory's runner has no such
// services.
func TestBMCScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/bmc",
		UpdateScripts: os.Getenv("METALSYNC_UPDATE") == "1",
		Setup:         setupBMCFixtures,
	})
}

const (
	bmcTestUser = "admin"
	bmcTestPass = "fixture-pw-8271"
)

func setupBMCFixtures(e *testscript.Env) error {
	sim, err := redfishsim.New(redfishsim.Config{
		Systems:  redfishsim.Systems(1, redfishsim.SystemConfig{PoweredOn: true, PowerOffDelay: 50 * time.Millisecond}),
		Username: bmcTestUser, Password: bmcTestPass,
	})
	if err != nil {
		return err
	}
	e.Defer(sim.Close)
	h, err := sim.BMC(sim.IDs()[0])
	if err != nil {
		return err
	}
	plain := httptest.NewServer(h)
	e.Defer(plain.Close)
	tlsSrv := httptest.NewUnstartedServer(h)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the scripts fail on purpose
	tlsSrv.StartTLS()
	e.Defer(tlsSrv.Close)

	mock, err := mockupserver.Open("public-tower",
		mockupserver.Options{Username: bmcTestUser, Password: bmcTestPass})
	if err != nil {
		return err
	}
	mockSrv := httptest.NewServer(mock)
	e.Defer(mockSrv.Close)
	// The same mockup with no virtual media anywhere.
	bare, err := mockupserver.Open("public-tower",
		mockupserver.Options{Username: bmcTestUser, Password: bmcTestPass, DropProperties: []string{"VirtualMedia"}})
	if err != nil {
		return err
	}
	bareSrv := httptest.NewServer(bare)
	e.Defer(bareSrv.Close)

	img := bytes.Repeat([]byte{0}, 64<<10)
	imgSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "agent.iso", time.Time{}, bytes.NewReader(img))
	}))
	e.Defer(imgSrv.Close)

	caFile := filepath.Join(e.WorkDir, "bmc-ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		return err
	}
	ipmiBMC, err := ipmisim.Start(ipmisim.Config{Username: bmcTestUser, Password: bmcTestPass})
	if err != nil {
		return err
	}
	e.Defer(func() { ipmiBMC.Close() })
	e.Setenv("IPMI_URL", "ipmi://"+ipmiBMC.Addr().String())
	e.Setenv("BMC_URL", "redfish+"+plain.URL)
	e.Setenv("BMC_TLS_URL", "redfish+"+tlsSrv.URL)
	e.Setenv("BMC_CA", caFile)
	e.Setenv("BMC_MOCKUP_URL", "redfish+"+mockSrv.URL)
	e.Setenv("BMC_NOMEDIA_URL", "redfish+"+bareSrv.URL)
	e.Setenv("IMAGE_URL", imgSrv.URL+"/agent.iso")
	e.Setenv("BMC_USER", bmcTestUser)
	e.Setenv("METALSYNC_BMC_PASSWORD", bmcTestPass)
	return nil
}
