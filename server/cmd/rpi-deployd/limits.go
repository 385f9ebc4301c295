//go:build linux

package main

import (
	"flag"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/config"
)

// limitFlags are the serve flags of the deployment-level defences and retention
// (docs/operations.md, threat model); unset flags leave the config file's values.
type limitFlags struct {
	claimWindow, claimTimeout, forgetBoards *time.Duration
	overLimitDelay                          *time.Duration
	openPerSource, newSerials, events       *int
	agentPerSource                          *int
}

func deploymentFlags(fs *flag.FlagSet) limitFlags {
	return limitFlags{
		claimWindow:    fs.Duration("claim-window", 0, "how long a deployment whose board has not fetched its image holds a stream slot (default 2m)"),
		claimTimeout:   fs.Duration("claim-timeout", 0, "abandon a deployment whose board has not fetched its image this long after its hello, releasing its pool name (default 10m)"),
		openPerSource:  fs.Int("max-open-per-source", 0, "open deployments the hellos from one address may hold; -1 = no limit (default 4)"),
		newSerials:     fs.Int("new-serials-per-minute", 0, "never seen serials one address may introduce per minute; -1 = no limit (default 120)"),
		events:         fs.Int("events-per-board", 0, "history events kept per board (default 1000)"),
		overLimitDelay: fs.Duration("over-limit-delay", 0, "hold the answer to a hello over a per-address limit this long; negative = not at all (default 1s)"),
		agentPerSource: fs.Int("agent-requests-per-source", 0, "agent-API requests of one address running at once, more wait; -1 = no limit (default 4)"),
		forgetBoards:   fs.Duration("forget-boards-after", 0, "delete boards that never got a deployment nor a name after this long without a hello (default 168h)"),
	}
}

func (l limitFlags) apply(c *config.Config) {
	if *l.claimWindow > 0 {
		c.ClaimWindow = config.Duration(*l.claimWindow)
	}
	if *l.claimTimeout > 0 {
		c.ClaimTimeout = config.Duration(*l.claimTimeout)
	}
	if *l.forgetBoards > 0 {
		c.ForgetBoardsAfter = config.Duration(*l.forgetBoards)
	}
	if *l.openPerSource != 0 {
		c.MaxOpenPerSource = *l.openPerSource
	}
	if *l.newSerials != 0 {
		c.NewSerialsPerMinute = *l.newSerials
	}
	if *l.overLimitDelay != 0 {
		c.OverLimitDelay = config.Duration(*l.overLimitDelay)
	}
	if *l.agentPerSource != 0 {
		c.AgentRequestsPerSource = *l.agentPerSource
	}
	if *l.events > 0 {
		c.EventsPerBoard = *l.events
	}
}
