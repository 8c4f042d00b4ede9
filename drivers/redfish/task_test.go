package redfish_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"metalsync.dev/metalsync/drivers"
	"metalsync.dev/metalsync/drivers/redfish"
	"metalsync.dev/metalsync/sim/mockupserver"
)

// taskBMC serves the public-tower mockup with a SimpleUpdate that starts a
// task: its monitor answers 202 for `running` polls, then final.
type taskBMC struct {
	mock    *mockupserver.Server
	running int
	final   func(w http.ResponseWriter)
	polls   atomic.Int64
	body    atomic.Value // the SimpleUpdate body
}

func (tb *taskBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate":
		buf, _ := io.ReadAll(r.Body)
		tb.body.Store(string(buf))
		w.Header().Set("Location", "/redfish/v1/TaskService/TaskMonitors/7")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"@odata.id":"/redfish/v1/TaskService/Tasks/7","TaskState":"New"}`)
	case r.URL.Path == "/redfish/v1/TaskService/TaskMonitors/7":
		if n := tb.polls.Add(1); n <= int64(tb.running) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"TaskState":"Running","PercentComplete":50}`)
			return
		}
		tb.final(w)
	default:
		tb.mock.ServeHTTP(w, r)
	}
}

func TestFirmwareTask(t *testing.T) {
	tests := []struct {
		name    string
		final   func(w http.ResponseWriter)
		wantErr string
	}{
		{"completed", func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"TaskState":"Completed","TaskStatus":"OK"}`)
		}, ""},
		{"no-content", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }, ""},
		{"exception", func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"TaskState":"Exception","TaskStatus":"Critical","Messages":[{"Message":"image signature invalid"}]}`)
		}, "Exception (Critical): image signature invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mockupserver.Open("public-tower", mockupserver.Options{Username: mockUser, Password: mockPass})
			if err != nil {
				t.Fatal(err)
			}
			tb := &taskBMC{mock: m, running: 2, final: tc.final}
			ts := httptest.NewServer(tb)
			defer ts.Close()
			b := openMock(t, mockConfig(t, ts.URL))
			err = b.UpdateFirmware(t.Context(), "https://fw.example/bios.bin", []string{"/redfish/v1/UpdateService/FirmwareInventory/BIOS"})
			if tc.wantErr == "" && err != nil {
				t.Fatalf("UpdateFirmware: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("UpdateFirmware: %v, want %q", err, tc.wantErr)
			}
			if got := tb.polls.Load(); got != 3 {
				t.Errorf("task monitor polled %d times, want 3 (2 running, 1 final)", got)
			}
			want := `{"ImageURI":"https://fw.example/bios.bin","Targets":["/redfish/v1/UpdateService/FirmwareInventory/BIOS"]}`
			if got := tb.body.Load(); got != want {
				t.Errorf("SimpleUpdate body = %v, want %s", got, want)
			}
		})
	}
	// A task that never ends stops at the ctx deadline.
	m, err := mockupserver.Open("public-tower", mockupserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tb := &taskBMC{mock: m, running: 1 << 30}
	ts := httptest.NewServer(tb)
	defer ts.Close()
	b := openMock(t, mockConfig(t, ts.URL))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = b.UpdateFirmware(ctx, "https://fw.example/bios.bin", nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still Running") {
		t.Errorf("UpdateFirmware of a task that never ends: %v", err)
	}
}

// TestSharedPoolBoundsConnections: many BMCs behind one address share
// connections, and never more than MaxConnsPerHost at once.
func TestSharedPoolBoundsConnections(t *testing.T) {
	sim, l := newSim(t, redfishsimSystems(20))
	var cc connCounter
	pool := redfish.NewPool(redfish.PoolOptions{MaxConnsPerHost: 2, Dial: cc.dial})
	defer pool.CloseIdleConnections()
	var bmcs []drivers.BMC
	for _, id := range sim.IDs() {
		b, err := pool.Open(t.Context(), simConfig(t, l, id))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(context.Background())
		bmcs = append(bmcs, b)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(bmcs)*5)
	for range 5 {
		for _, b := range bmcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := b.PowerState(t.Context()); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if peak := cc.peak.Load(); peak > 2 {
		t.Errorf("peak open connections = %d, want at most 2", peak)
	}
}
