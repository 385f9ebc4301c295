//go:build !linux

package initenv

import (
	"context"
	"log/slog"
)

// Setup is only supported on Linux.
func Setup(ctx context.Context, log *slog.Logger) (*Env, error) { return nil, ErrUnsupported }

// Finish is only supported on Linux.
func Finish(action string) error { return ErrUnsupported }

// Rescue is only supported on Linux.
func Rescue(reason string) error { return ErrUnsupported }
