// Package ordered runs numbered jobs on several goroutines and hands their results to
// one consumer in job order: the shape of every chunk pipeline in image-tools (encode or
// decode chunks in parallel, write or hash them in sequence).
package ordered

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// Map calls work(ctx, i) for i in [0, n) on up to workers goroutines and consume(i, v)
// with each result in order of i, on one goroutine. At most about 3×workers results are
// in flight. The first error (from work, consume or ctx) stops everything and is
// returned; work should watch ctx for long jobs.
func Map[T any](ctx context.Context, n, workers int, work func(ctx context.Context, i int) (T, error), consume func(i int, v T) error) error {
	if workers < 1 {
		workers = 1
	}
	type slot struct {
		v    T
		err  error
		done chan struct{}
	}
	type job struct {
		i int
		s *slot
	}
	g, ctx := errgroup.WithContext(ctx)
	queue := make(chan *slot, 2*workers)
	jobs := make(chan job)
	g.Go(func() error {
		defer close(queue)
		defer close(jobs)
		for i := range n {
			s := &slot{done: make(chan struct{})}
			select {
			case queue <- s:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case jobs <- job{i, s}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range workers {
		g.Go(func() error {
			for j := range jobs {
				j.s.v, j.s.err = work(ctx, j.i)
				close(j.s.done)
			}
			return nil
		})
	}
	g.Go(func() error {
		i := 0
		for s := range queue {
			select {
			case <-s.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if s.err != nil {
				return s.err
			}
			if err := consume(i, s.v); err != nil {
				return err
			}
			i++
		}
		return ctx.Err()
	})
	return g.Wait()
}
