//go:build !linux

package daemon

import (
	"context"
	"errors"
)

// ErrUnsupported is Start's error where the server cannot run (it needs Linux for
// its DHCP and TFTP sockets).
var ErrUnsupported = errors.New("rpi-deployd serve runs on Linux only")

// Daemon is a running server (Linux only).
type Daemon struct {
	URL         string
	AgentURLs   []string
	Fingerprint string
}

// Start fails: the server runs on Linux only.
func Start(context.Context, Options) (*Daemon, error) { return nil, ErrUnsupported }

// Wait returns at once.
func (d *Daemon) Wait() error { return nil }

// Run fails: the server runs on Linux only.
func Run(context.Context, Options) error { return ErrUnsupported }
