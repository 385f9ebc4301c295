//go:build linux

package main

import (
	"context"

	"github.com/rpi-deploy/rpi-deploy/server/cli"
	"github.com/rpi-deploy/rpi-deploy/server/daemon"
)

// serve runs the server until ctx ends (server/daemon does the work).
func serve(ctx context.Context, args []string, env cli.Env) error {
	opt, err := daemon.Parse(args, env.Getenv, env.Stderr)
	if err != nil {
		return err
	}
	opt.Version, opt.Stderr = env.Version, env.Stderr
	return daemon.Run(ctx, opt)
}
