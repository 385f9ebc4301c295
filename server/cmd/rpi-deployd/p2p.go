package main

import (
	"log/slog"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/swarm"
)

// newSwarm is the swarm registry when cfg turns P2P on, else nil (HTTP only).
func newSwarm(cfg config.Config, log *slog.Logger) *swarm.Registry {
	if cfg.P2P != "on" {
		return nil
	}
	return swarm.New(swarm.Options{SeedFor: time.Duration(cfg.P2PSeedFor), Log: log.With("part", "swarm")})
}
