// Package retry is the agent's backoff policy: exponential delays with jitter, bounded
// by a number of attempts and a total time budget. The API client uses it for hello's
// "retry later" answers and transient errors; the flash pipeline for resuming streams.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// ErrBudget is wrapped when a policy gives up.
var ErrBudget = errors.New("retry budget exhausted")

// Policy is a backoff schedule. The zero value means: first delay 500 ms, doubling up to
// 15 s, ±20 % jitter, no attempt limit, a budget of 5 minutes.
type Policy struct {
	Initial  time.Duration // first delay (default 500 ms)
	Max      time.Duration // longest delay (default 15 s)
	Attempts int           // give up after this many retries (0 = no limit)
	Budget   time.Duration // give up when the next wait would end past this much time since Start (default 5 min; <0 = none)
	Jitter   float64       // ± fraction of each delay (default 0.2; <0 = none)
}

func (p Policy) withDefaults() Policy {
	if p.Initial <= 0 {
		p.Initial = 500 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 15 * time.Second
	}
	if p.Budget == 0 {
		p.Budget = 5 * time.Minute
	}
	if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	return p
}

// Retrier tracks one sequence of attempts under a Policy.
type Retrier struct {
	p       Policy
	start   time.Time
	attempt int
}

// Start begins a sequence of attempts now.
func (p Policy) Start() *Retrier {
	return &Retrier{p: p.withDefaults(), start: time.Now()}
}

// Delay is the wait before retry number n (0-based), before jitter.
func (p Policy) Delay(n int) time.Duration {
	p = p.withDefaults()
	d := p.Initial
	for range n {
		d *= 2
		if d >= p.Max {
			return p.Max
		}
	}
	return d
}

// Attempts is the number of waits so far.
func (r *Retrier) Attempts() int { return r.attempt }

// Reset starts the count and the budget again (after progress was made).
func (r *Retrier) Reset() { r.attempt, r.start = 0, time.Now() }

// Wait sleeps before the next attempt: hint if positive (a server's retry-after),
// else the policy's delay, with jitter. It returns an error wrapping ErrBudget (and
// cause, if given) when the policy gives up, or ctx's error.
func (r *Retrier) Wait(ctx context.Context, hint time.Duration, cause error) error {
	d := hint
	if d <= 0 {
		d = r.p.Delay(r.attempt)
	}
	if j := r.p.Jitter; j > 0 {
		d += time.Duration((rand.Float64()*2 - 1) * j * float64(d))
	}
	switch {
	case r.p.Attempts > 0 && r.attempt >= r.p.Attempts:
		return r.giveUp(cause)
	case r.p.Budget > 0 && time.Since(r.start)+d > r.p.Budget:
		return r.giveUp(cause)
	}
	r.attempt++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *Retrier) giveUp(cause error) error {
	el := time.Since(r.start).Round(time.Millisecond)
	if cause == nil {
		return fmt.Errorf("%w after %d retries in %v", ErrBudget, r.attempt, el)
	}
	return fmt.Errorf("%w after %d retries in %v: %w", ErrBudget, r.attempt, el, cause)
}
