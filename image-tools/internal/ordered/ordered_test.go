package ordered

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func TestMapOrder(t *testing.T) {
	var got []int
	err := Map(context.Background(), 200, 4,
		func(_ context.Context, i int) (int, error) {
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond) // finish out of order
			return i * i, nil
		},
		func(i, v int) error {
			if v != i*i {
				t.Errorf("result %d for job %d", v, i)
			}
			got = append(got, i)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("consumed job %d at position %d", v, i)
		}
	}
	if len(got) != 200 {
		t.Errorf("consumed %d results, want 200", len(got))
	}
}

func TestMapErrors(t *testing.T) {
	boom := errors.New("boom")
	consumed := 0
	err := Map(context.Background(), 1000, 3,
		func(_ context.Context, i int) (int, error) {
			if i == 17 {
				return 0, boom
			}
			return i, nil
		},
		func(i, v int) error { consumed++; return nil })
	if !errors.Is(err, boom) || consumed != 17 {
		t.Errorf("work error: err %v after %d results, want boom after 17", err, consumed)
	}
	err = Map(context.Background(), 1000, 3,
		func(_ context.Context, i int) (int, error) { return i, nil },
		func(i, v int) error {
			if i == 5 {
				return boom
			}
			return nil
		})
	if !errors.Is(err, boom) {
		t.Errorf("consume error: %v, want boom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = Map(ctx, 1000, 3,
		func(_ context.Context, i int) (int, error) { return i, nil },
		func(i, v int) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
}
