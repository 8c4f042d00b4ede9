package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRealSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Real{}).Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestRealSleepZero(t *testing.T) {
	if err := (Real{}).Sleep(context.Background(), 0); err != nil {
		t.Errorf("Sleep(0) = %v, want nil", err)
	}
}

func TestOr(t *testing.T) {
	if _, ok := Or(nil).(Real); !ok {
		t.Errorf("Or(nil) = %T, want Real", Or(nil))
	}
	var c Clock = Real{}
	if Or(c) != c {
		t.Errorf("Or(c) did not return c")
	}
}
