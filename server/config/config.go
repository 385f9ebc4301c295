// Package config is rpi-deployd's configuration: a typed struct whose zero values
// mean the documented defaults, read from a JSON file that operators edit once
// (serve --config FILE), then overridden by the environment and by flags.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config is the server's configuration.
type Config struct {
	// Data is the data directory: the SQLite database and images/. Default
	// /var/lib/rpi-deployd.
	Data string `json:"data,omitempty"`
	// Listen is the HTTP address for the management API, the dashboard, image
	// downloads and (unless AgentListen is set) the agent API. Default ":8080".
	Listen string `json:"listen,omitempty"`
	// AgentListen are extra HTTP addresses on the deployment network. When set, the
	// agent API answers only on these (images are served on all listeners). Default:
	// none, and the agent API answers on Listen.
	AgentListen []string `json:"agent_listen,omitempty"`
	// Token is the admin token for the management API (Authorization: Bearer).
	// Also from RPI_DEPLOY_TOKEN. No default: without a token and without users, the
	// management API refuses everything.
	Token string `json:"token,omitempty"`
	// MaxStreams is how many deployments may stream at once; beyond it a hello is
	// answered "retry". Default 64.
	MaxStreams int `json:"max_streams,omitempty"`
	// RetryAfter is the delay a "retry" answer asks for. Default 10s.
	RetryAfter Duration `json:"retry_after,omitempty"`
	// StaleAfter: an open deployment silent this long no longer counts toward
	// MaxStreams. Default 15m.
	StaleAfter Duration `json:"stale_after,omitempty"`
	// AbandonAfter: an open deployment silent this long is closed as abandoned, which
	// frees its batch slot (the board keeps its name and gets a new deployment when it
	// says hello again). Default 2h.
	AbandonAfter Duration `json:"abandon_after,omitempty"`
	// ClaimWindow: a deployment whose board has not fetched its image yet holds a
	// stream slot this long after its hello. Default 2m.
	ClaimWindow Duration `json:"claim_window,omitempty"`
	// ClaimTimeout: a deployment whose board has not fetched its image this long
	// after its hello is abandoned and its pool name released. Default 10m.
	ClaimTimeout Duration `json:"claim_timeout,omitempty"`
	// MaxOpenPerSource is how many open deployments the hellos from one network
	// address may hold (a board holds one). Default 4; negative: no limit.
	MaxOpenPerSource int `json:"max_open_per_source,omitempty"`
	// NewSerialsPerMinute is how many never seen serials one network address may
	// introduce per minute. Default 120; negative: no limit.
	NewSerialsPerMinute int `json:"new_serials_per_minute,omitempty"`
	// AgentRequestsPerSource is how many agent-API requests of one network address
	// run at once; more wait their turn. Default 4; negative: no limit.
	AgentRequestsPerSource int `json:"agent_requests_per_source,omitempty"`
	// OverLimitDelay is how long the answer to a hello over a per-address limit is
	// held. Default 1s; negative: none.
	OverLimitDelay Duration `json:"over_limit_delay,omitempty"`
	// EventsPerBoard is how many history events are kept per board. Default 1000.
	EventsPerBoard int `json:"events_per_board,omitempty"`
	// ForgetBoardsAfter: a board that never got a deployment nor a name is deleted
	// after this long without a hello. Default 168h.
	ForgetBoardsAfter Duration `json:"forget_boards_after,omitempty"`
	// After is what an agent does once its card is verified: "reboot" into the new
	// system, "poweroff" (boards racked for later), or "wait" (stay up for a
	// technician). Default reboot.
	After string `json:"after,omitempty"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `json:"log_level,omitempty"`
	// Netboot holds the DHCP/TFTP settings (see server/dhcp, server/tftp). Kept raw
	// here so that those packages own their fields.
	Netboot json.RawMessage `json:"netboot,omitempty"`
}

// Defaults.
const (
	DefaultData   = "/var/lib/rpi-deployd"
	DefaultListen = ":8080"
)

// Duration is a time.Duration written as "10s" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "10s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s: want a string like \"10s\"", b)
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON writes "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Load reads a JSON config file; unknown fields are an error.
func Load(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %q: %w", path, err)
	}
	return c, nil
}

// FromEnv fills fields from the environment: RPI_DEPLOY_TOKEN, RPI_DEPLOY_DATA,
// RPI_DEPLOY_LISTEN.
func (c *Config) FromEnv(getenv func(string) string) {
	if v := getenv("RPI_DEPLOY_TOKEN"); v != "" {
		c.Token = v
	}
	if v := getenv("RPI_DEPLOY_DATA"); v != "" {
		c.Data = v
	}
	if v := getenv("RPI_DEPLOY_LISTEN"); v != "" {
		c.Listen = v
	}
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Data == "" {
		c.Data = DefaultData
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 64
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = Duration(10 * time.Second)
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = Duration(15 * time.Minute)
	}
	if c.AbandonAfter <= 0 {
		c.AbandonAfter = Duration(2 * time.Hour)
	}
	if c.ClaimWindow <= 0 {
		c.ClaimWindow = Duration(2 * time.Minute)
	}
	if c.ClaimTimeout <= 0 {
		c.ClaimTimeout = Duration(10 * time.Minute)
	}
	if c.MaxOpenPerSource == 0 {
		c.MaxOpenPerSource = 4
	}
	if c.NewSerialsPerMinute == 0 {
		c.NewSerialsPerMinute = 120
	}
	if c.AgentRequestsPerSource == 0 {
		c.AgentRequestsPerSource = 4
	}
	if c.OverLimitDelay == 0 {
		c.OverLimitDelay = Duration(time.Second)
	}
	if c.EventsPerBoard <= 0 {
		c.EventsPerBoard = 1000
	}
	if c.ForgetBoardsAfter <= 0 {
		c.ForgetBoardsAfter = Duration(7 * 24 * time.Hour)
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.After == "" {
		c.After = "reboot"
	}
	return c
}

// Validate checks values that have no sensible fallback.
func (c Config) Validate() error {
	switch strings.ToLower(c.LogLevel) {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.After {
	case "", "reboot", "poweroff", "wait":
	default:
		return fmt.Errorf("after %q: want reboot, poweroff or wait", c.After)
	}
	if c.Token != "" && len(c.Token) < 16 {
		return fmt.Errorf("token: at least 16 characters")
	}
	return nil
}
