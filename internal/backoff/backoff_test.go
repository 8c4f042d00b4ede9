package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		retry  int
		rnd    float64
		want   time.Duration
	}{
		{"first retry, low pick", Policy{Base: time.Second, Max: 10 * time.Second}, 0, 0, 500 * time.Millisecond},
		{"first retry, middle pick", Policy{Base: time.Second, Max: 10 * time.Second}, 0, 0.5, 750 * time.Millisecond},
		{"doubles", Policy{Base: time.Second, Max: 10 * time.Second}, 1, 0, time.Second},
		{"doubles twice", Policy{Base: time.Second, Max: 10 * time.Second}, 2, 0.5, 3 * time.Second},
		{"top pick", Policy{Base: time.Second, Max: 10 * time.Second}, 3, 1, 8 * time.Second},
		{"capped before jitter", Policy{Base: time.Second, Max: 10 * time.Second}, 4, 0, 5 * time.Second},
		{"no overflow far out", Policy{Base: time.Second, Max: 10 * time.Second}, 40, 1, 10 * time.Second},
		{"cap below base", Policy{Base: time.Second, Max: 200 * time.Millisecond}, 0, 0, 100 * time.Millisecond},
		{"git push race", Policy{Base: 20 * time.Millisecond, Max: time.Second}, 6, 1, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Delay(tt.retry, tt.rnd).Round(time.Microsecond)
			if got != tt.want {
				t.Errorf("Delay(%d, %v) = %v, want %v", tt.retry, tt.rnd, got, tt.want)
			}
		})
	}
}

func TestJitteredStaysInUpperHalf(t *testing.T) {
	p := Policy{Base: time.Second, Max: 30 * time.Second}
	for retry := range 8 {
		d := min(p.Base<<retry, p.Max)
		for range 100 {
			if got := p.Jittered(retry); got < d/2 || got > d {
				t.Fatalf("Jittered(%d) = %v, want in [%v, %v]", retry, got, d/2, d)
			}
		}
	}
}
