package domain

import (
	"testing"
	"time"
)

// TestSourceLimiter: each address has its own bucket of perMinute new serials,
// refilled evenly (perMinute/60 a second) up to perMinute; negative is no limit; in-
// process callers (no address) are never limited.
func TestSourceLimiter(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	l := &sourceLimiter{perMinute: 120}
	for i := range 120 {
		if !l.allow("10.0.0.9", t0) {
			t.Fatalf("new serial %d of a fresh address refused", i+1)
		}
	}
	if l.allow("10.0.0.9", t0) {
		t.Fatal("serial 121 in the same instant allowed")
	}
	if !l.allow("10.0.0.10", t0) {
		t.Fatal("another address is limited by the first one's budget")
	}
	if !l.allow("10.0.0.9", t0.Add(500*time.Millisecond)) || l.allow("10.0.0.9", t0.Add(500*time.Millisecond)) {
		t.Fatal("after 0.5 s: want exactly one more (2 a second)")
	}
	n := 0
	for l.allow("10.0.0.9", t0.Add(time.Hour)) {
		n++
	}
	if n != 120 {
		t.Fatalf("after an hour: %d allowed, want the full bucket of 120", n)
	}
	if !l.allow("", t0) || !(&sourceLimiter{perMinute: -1}).allow("10.0.0.9", t0) {
		t.Fatal("no address, or a negative limit, must not be limited")
	}
	// A unit given back (the hello's serial was not new) is there again, and
	// refunds never fill a bucket beyond its budget.
	l.refund("10.0.0.9")
	if !l.allow("10.0.0.9", t0.Add(time.Hour)) || l.allow("10.0.0.9", t0.Add(time.Hour)) {
		t.Fatal("after one refund: want exactly one more")
	}
	l.allow("10.0.0.12", t0.Add(time.Hour))
	for range 500 {
		l.refund("10.0.0.12")
	}
	if b := l.buckets["10.0.0.12"]; b == nil || b.tokens > 120 {
		t.Fatalf("bucket after 500 refunds: %+v, want at most the budget of 120", b)
	}
	// Full buckets are forgotten: a flood of addresses does not grow the map for ever.
	l.allow("10.0.0.11", t0.Add(2*time.Hour))
	if _, ok := l.buckets["10.0.0.10"]; ok {
		t.Error("the bucket of an address silent for two hours is still kept")
	}
}
