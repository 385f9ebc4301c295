// Command fleetsim runs a fleet of virtual Raspberry Pi 5 boards against a running
// rpi-deployd: each board is a real rpi-agent process with its own serial, MAC and SD
// card (an image file), and a mix of scenarios makes things go wrong on purpose —
// slow cards, a flaky network, failing cards, boards that lose power mid-flash. It
// prints a live summary, then a table of outcomes, and exits 0 only if every board
// ended as its scenario expects (none stuck, none verified that is not).
//
//	fleetsim -server http://127.0.0.1:8080 -image demo -boards 20 \
//	    -mix slow=10,flaky=10,badcard=5,reboot=10
//
// See docs/fleetsim.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/scripts/fleetsim/fleet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: 0 every board as expected, 1 not, 2 bad usage or setup,
// 130 stopped by a signal.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg fleet.Config
	var o options
	fs := newFlagSet(&cfg, &o, stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fleetsim: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := o.apply(ctx, &cfg, stderr); err != nil {
		fmt.Fprintf(stderr, "fleetsim: %v\n", err)
		return 2
	}
	cfg.Status = func(s fleet.Summary) { fmt.Fprintf(stdout, "fleetsim: %s\n", s.Line()) }

	f, err := fleet.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "fleetsim: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "fleetsim: %d boards (%s) against %s, image %s (%d MiB raw, %d MiB compressed), work in %s\n",
		len(f.Boards), cfg.Mix, cfg.Server, cfg.Manifest.Name, cfg.Manifest.Size>>20, cfg.Manifest.CompressedSize>>20, cfg.WorkDir)
	rep, err := f.Run(ctx)
	if err == nil {
		fmt.Fprintln(stdout)
		err = rep.WriteTable(stdout)
	}
	if err == nil && o.jsonOut != "" {
		err = writeJSON(o.jsonOut, rep)
	}
	if err != nil {
		fmt.Fprintf(stderr, "fleetsim: %v\n", err)
		return 2
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stdout, "fleetsim: stopped before every board ended")
		return 130
	}
	if !rep.OK() {
		fmt.Fprintf(stdout, "fleetsim: FAIL: %d of %d boards did not end as their scenario expects\n", len(rep.Boards)-rep.Expected, len(rep.Boards))
		return 1
	}
	fmt.Fprintf(stdout, "fleetsim: ok: all %d boards ended as expected in %.1fs\n", len(rep.Boards), rep.Elapsed.Seconds())
	return 0
}

// options are the flags that do not go straight into fleet.Config.
type options struct {
	mix, image, manifestAt, token, jsonOut, serialBase string
	batch                                              int64
	quiet                                              bool
	cardSize, slowRate                                 byteFlag
}

// newFlagSet defines fleetsim's flags over cfg and o.
func newFlagSet(cfg *fleet.Config, o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fleetsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mix, "mix", "", "scenario shares in percent, e.g. slow=10,flaky=10,badcard=5,reboot=10 (the rest is normal)")
	fs.StringVar(&o.image, "image", "", "image NAME: the manifest is fetched from SERVER/images/NAME.manifest.json")
	fs.StringVar(&o.manifestAt, "manifest", "", "image manifest file or URL (instead of -image)")
	fs.StringVar(&o.token, "token", "", "admin token for the server's deployments list (default $RPI_DEPLOY_TOKEN; without one, no server check)")
	fs.Int64Var(&o.batch, "batch", 0, "only look at this batch's deployments")
	fs.StringVar(&o.jsonOut, "json", "", "write the report as JSON to this file")
	fs.BoolVar(&o.quiet, "quiet", false, "no per-board event lines")
	fs.StringVar(&cfg.Server, "server", "http://127.0.0.1:8080", "rpi-deployd base URL")
	fs.StringVar(&cfg.Agent, "agent", defaultAgent(), "rpi-agent binary")
	fs.IntVar(&cfg.Boards, "boards", 20, "number of virtual boards")
	fs.StringVar(&cfg.WorkDir, "workdir", "fleetsim-work", "directory for the boards' cards and logs")
	fs.Var(&o.cardSize, "card-size", "size of each virtual SD card, e.g. 512MiB (default image size + 64 MiB)")
	fs.Var(&o.slowRate, "slow-rate", "write rate of a slow card, e.g. 8MB or 6MiB (per second; default 8MB)")
	fs.StringVar(&cfg.SlowFlag, "slow-flag", "", "the agent's write-rate-limit flag (default --write-rate-limit)")
	fs.IntVar(&cfg.MaxCuts, "max-cuts", 3, "connections the network cuts per flaky board")
	fs.Float64Var(&cfg.RebootAt, "reboot-at", 0.3, "fraction of the image written when a reboot board loses power")
	fs.DurationVar(&cfg.RebootWait, "reboot-wait", time.Second, "how long a rebooting board stays off")
	fs.Float64Var(&cfg.BadFill, "bad-fill", 0.4, "fraction of the image's data a bad card stores before its writes fail")
	fs.DurationVar(&cfg.Stagger, "stagger", 0, "delay between board power-ons")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "a board not ended after this is stuck")
	fs.DurationVar(&cfg.Interval, "interval", time.Second, "live summary interval")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed for scenario assignment and cut points (0 = random)")
	fs.StringVar(&o.serialBase, "serial-base", "", "first board's serial, 16 hex digits (default random; boards count up)")
	return fs
}

// apply checks the parsed options and fills the rest of cfg: the scenario mix, sizes,
// serials, the image's manifest (fetched or read), the server view and the log.
func (o *options) apply(ctx context.Context, cfg *fleet.Config, stderr io.Writer) error {
	var err error
	if cfg.Mix, err = fleet.ParseMix(o.mix); err != nil {
		return err
	}
	cfg.CardSize, cfg.SlowRate = int64(o.cardSize), int64(o.slowRate)
	if o.serialBase != "" {
		if _, err := fmt.Sscanf(o.serialBase, "%016x", &cfg.SerialBase); err != nil || len(o.serialBase) != 16 {
			return fmt.Errorf("-serial-base %q: want 16 hex digits", o.serialBase)
		}
	}
	switch {
	case o.manifestAt != "" && o.image != "":
		return errors.New("give -image or -manifest, not both")
	case o.image != "":
		o.manifestAt = strings.TrimSuffix(cfg.Server, "/") + "/images/" + o.image + ".manifest.json"
	case o.manifestAt == "":
		return errors.New("which image? give -image NAME or -manifest FILE")
	}
	if cfg.Manifest, err = loadManifest(ctx, o.manifestAt); err != nil {
		return err
	}
	if o.token == "" {
		o.token = os.Getenv("RPI_DEPLOY_TOKEN")
	}
	if o.token != "" {
		cfg.View = &fleet.APIView{Server: cfg.Server, Token: o.token, Batch: o.batch}
	} else {
		fmt.Fprintln(stderr, "fleetsim: no admin token: ends are checked against the agents and the cards only, not the server")
	}
	if !o.quiet {
		cfg.Log = stderr
	}
	return nil
}

// defaultAgent is rpi-agent beside this binary, else bin/rpi-agent.
func defaultAgent() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "rpi-agent")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join("bin", "rpi-agent")
}

func loadManifest(ctx context.Context, at string) (*manifest.Manifest, error) {
	if !strings.HasPrefix(at, "http://") && !strings.HasPrefix(at, "https://") {
		return manifest.Load(at)
	}
	req, err := http.NewRequestWithContext(ctx, "GET", at, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("manifest %s: %s", at, resp.Status)
	}
	m, err := manifest.Decode(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", at, err)
	}
	return m, nil
}

// jsonBoard is one board in the JSON report.
type jsonBoard struct {
	Index      int     `json:"index"`
	Serial     string  `json:"serial"`
	MAC        string  `json:"mac"`
	Scenario   string  `json:"scenario"`
	Outcome    string  `json:"outcome"`
	Cause      string  `json:"cause,omitempty"`
	Hostname   string  `json:"hostname,omitempty"`
	Runs       int     `json:"runs"`
	Reboots    int     `json:"reboots,omitempty"`
	Cuts       int     `json:"cuts,omitempty"`
	Seconds    float64 `json:"seconds"`
	EndSeconds float64 `json:"end_seconds"` // from the run's start
}

func writeJSON(path string, rep *fleet.Report) error {
	out := struct {
		OK               bool           `json:"ok"`
		Seconds          float64        `json:"seconds"`
		AllVerifiedAfter float64        `json:"all_verified_after_seconds"`
		Counts           map[string]int `json:"counts"`
		Boards           []jsonBoard    `json:"boards"`
	}{OK: rep.OK(), Seconds: rep.Elapsed.Seconds(), AllVerifiedAfter: rep.AllVerifiedAfter().Seconds(), Counts: map[string]int{}}
	for _, b := range rep.Boards {
		out.Counts[string(b.Outcome)]++
		out.Boards = append(out.Boards, jsonBoard{
			Index: b.Index, Serial: b.Serial, MAC: b.MAC, Scenario: string(b.Scenario), Outcome: string(b.Outcome),
			Cause: b.Cause, Hostname: b.Hostname, Runs: b.Runs, Reboots: b.Reboots, Cuts: b.Cuts,
			Seconds: b.Duration().Seconds(), EndSeconds: b.End.Sub(rep.Boards[0].Start).Seconds(),
		})
	}
	data, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return errors.Join(fmt.Errorf("write report %q", path), err)
	}
	return nil
}
