package api

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoginBudget pins the finding of issue 18 that password checks competed with
// the boards' hellos for the CPU: one check runs at a time; a check's caller is
// answered when its check is done, and the next check starts only after a rest as
// long as the check took; past the queue a login waits admitWait for a place and is
// then refused with errLoginBusy (it is neither queued nor checked); a caller whose
// request ends while it waits is let go without a check.
func TestLoginBudget(t *testing.T) {
	const queue, wait = 3, 30 * time.Millisecond
	b := newLoginBudget(queue, wait)
	release := make(chan struct{})
	var running, most, checked atomic.Int32
	check := func() {
		if n := running.Add(1); n > most.Load() {
			most.Store(n)
		}
		<-release
		checked.Add(1)
		running.Add(-1)
	}
	// queue+1 logins in: one checking, queue waiting.
	var wg sync.WaitGroup
	errs := make(chan error, queue+1)
	for range queue + 1 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- b.do(context.Background(), check) }()
	}
	for len(b.admit) < queue+1 {
		time.Sleep(time.Millisecond)
	}
	t0 := time.Now()
	if err := b.do(context.Background(), func() { t.Error("a login past the queue was checked") }); !errors.Is(err, errLoginBusy) {
		t.Errorf("login past a full queue: %v, want errLoginBusy", err)
	}
	if waited := time.Since(t0); waited < wait {
		t.Errorf("login past a full queue refused after %v, want after %v", waited, wait)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("queued login: %v", err)
		}
	}
	if most.Load() != 1 || checked.Load() != queue+1 {
		t.Errorf("%d checks at once at most, %d checked; want 1 and %d", most.Load(), checked.Load(), queue+1)
	}

	// The rest: a check of d keeps the next one from starting for at least d more.
	b = newLoginBudget(queue, wait)
	const d = 50 * time.Millisecond
	start := time.Now()
	if err := b.do(context.Background(), func() { time.Sleep(d) }); err != nil {
		t.Fatal(err)
	}
	var second time.Time
	if err := b.do(context.Background(), func() { second = time.Now() }); err != nil {
		t.Fatal(err)
	}
	if second.Sub(start) < 2*d {
		t.Errorf("second check started %v after the first, want at least %v (check + rest)", second.Sub(start), 2*d)
	}

	// A caller that gives up while waiting is not checked.
	b = newLoginBudget(queue, wait)
	hold := make(chan struct{})
	go b.do(context.Background(), func() { <-hold })
	for len(b.run) == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.do(ctx, func() { t.Error("a cancelled login was checked") }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled while waiting: %v, want context.Canceled", err)
	}
	close(hold)
}
