//go:build linux

package lease

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestOrphanedLeaseTakenOver: a lease whose holder was a process of this
// machine that is gone (a killed daemon) is taken over at once; one whose
// holder is alive, or ran elsewhere, is not.
func TestOrphanedLeaseTakenOver(t *testing.T) {
	if localMachine() == "" {
		t.Fatal("cannot identify this machine (/proc)")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		machine string
		pid     int
		taken   bool
	}{
		{"killed holder here", localMachine(), dead.Process.Pid, true},
		{"live holder here", localMachine(), os.Getppid(), false},
		{"holder on another machine", "other-host/boot/pid:[1]", dead.Process.Pid, false},
		{"older record without a pid", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := DirStore(t.TempDir())
			now := time.Now()
			old := Record{ID: "0123456789abcdef", Holder: "metalsync serve test", Operation: "serve",
				Since: now.UTC().Truncate(time.Second), Expires: now.Add(time.Hour).UTC().Truncate(time.Second),
				Machine: tc.machine, PID: tc.pid}
			if _, err := store.Swap(t.Context(), "", &old); err != nil {
				t.Fatal(err)
			}
			_, err := New(store, Options{}).Acquire(t.Context(), Request{Holder: "metalsync serve new", Operation: "serve", TTL: time.Minute})
			var held *HeldError
			switch {
			case tc.taken && err != nil:
				t.Errorf("acquire: %v; want the orphaned lease taken over", err)
			case !tc.taken && !errors.As(err, &held):
				t.Errorf("acquire: %v; want it refused as held", err)
			}
		})
	}
}
