package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		if got := p.Delay(n); got != want*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want*time.Millisecond)
		}
	}
}

func TestWaitGivesUp(t *testing.T) {
	cause := errors.New("connection refused")
	r := Policy{Initial: time.Millisecond, Attempts: 3}.Start()
	for i := range 3 {
		if err := r.Wait(context.Background(), 0, cause); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	err := r.Wait(context.Background(), 0, cause)
	if !errors.Is(err, ErrBudget) || !errors.Is(err, cause) {
		t.Fatalf("4th wait: err = %v, want ErrBudget wrapping the cause", err)
	}
	r = Policy{Initial: 50 * time.Millisecond, Budget: 60 * time.Millisecond, Jitter: -1}.Start()
	if err := r.Wait(context.Background(), 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(context.Background(), 0, nil); !errors.Is(err, ErrBudget) {
		t.Fatalf("past the budget: err = %v", err)
	}
	r.Reset()
	if err := r.Wait(context.Background(), 0, nil); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Policy{}).Start().Wait(ctx, time.Hour, nil); !errors.Is(err, context.Canceled) && !errors.Is(err, ErrBudget) {
		t.Fatalf("cancelled: err = %v", err)
	}
}

func TestJitterStaysInBounds(t *testing.T) {
	p := Policy{Initial: 10 * time.Millisecond, Jitter: 0.5, Budget: -1}
	r := p.Start()
	for range 5 {
		s := time.Now()
		if err := r.Wait(context.Background(), 10*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(s); el < 5*time.Millisecond {
			t.Errorf("waited %v, jitter ±50%% of 10ms allows ≥ 5ms", el)
		}
	}
}
