package lograte

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCounter(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// at is when each event happens (offset from base); want is what Add returns.
	for _, tc := range []struct {
		name string
		at   []time.Duration
		want []int
	}{
		{"first event reports at once", []time.Duration{0}, []int{1}},
		{"burst within a second is counted for the next line",
			[]time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond, 999 * time.Millisecond, time.Second},
			[]int{1, 0, 0, 0, 4}},
		{"one line a second under a steady flood",
			[]time.Duration{0, 400 * time.Millisecond, 800 * time.Millisecond, 1200 * time.Millisecond, 1600 * time.Millisecond, 2200 * time.Millisecond},
			[]int{1, 0, 0, 3, 0, 2}},
		{"events far apart each report one", []time.Duration{0, 5 * time.Second, time.Minute}, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var now time.Time
			c := Counter{now: func() time.Time { return now }}
			var got []int
			for _, d := range tc.at {
				now = base.Add(d)
				got = append(got, c.Add())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Add results (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCounterConcurrent pins that no event is lost when many goroutines add at
// once: the reported counts and what is still pending sum to the events.
func TestCounterConcurrent(t *testing.T) {
	var c Counter
	var mu sync.Mutex
	reported := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if n := c.Add(); n > 0 {
					mu.Lock()
					reported += n
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if got := reported + c.n; got != 8000 {
		t.Errorf("reported %d + pending %d = %d events, want 8000", reported, c.n, got)
	}
}
