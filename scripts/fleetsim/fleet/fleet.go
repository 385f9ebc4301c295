// Package fleet simulates a rack of Raspberry Pi 5 boards flashing from rpi-deployd:
// every virtual board is a real rpi-agent process with its own serial, MAC and SD
// card (an image file, or a loop device for a failing card), and a scenario decides
// what goes wrong for it (see Scenario). The simulator checks every board's end
// against the server's deployments and against the card itself: a board ends
// verified, failed with a cause, or stuck — and a run with a stuck board, or with a
// board the server calls verified whose card does not match the image, is a failure.
//
// scripts/fleetsim is the command; docs/fleetsim.md describes it.
package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// Outcome is how a board ended.
type Outcome string

// Outcomes. Stuck, BadVerified and SimError are always wrong; Failed is right only for a bad
// card.
const (
	Verified    Outcome = "verified"         // server says verified and the card matches the image
	Failed      Outcome = "failed"           // failed, with a cause
	Stuck       Outcome = "stuck"            // no end within the timeout, or the server still shows it open
	BadVerified Outcome = "verified-but-bad" // server or agent says verified, but it is not so
	Canceled    Outcome = "canceled"         // the run was stopped first (Ctrl-C)
	SimError    Outcome = "simulator-error"  // the simulator could not set the board up (card, network, agent binary)
)

// Config describes one run. The zero value of an optional field is its documented
// default.
type Config struct {
	Server   string // base URL of rpi-deployd, e.g. http://127.0.0.1:8080 (required)
	Agent    string // path of the rpi-agent binary (required)
	Manifest *manifest.Manifest
	// The image the batch deploys (required): the card size, the bad card's capacity
	// and the check of every verified card come from it.
	Boards  int    // how many boards (default 1)
	Mix     Mix    // scenario shares (default all normal)
	WorkDir string // cards, logs (required; created)

	CardSize   int64         // bytes of each virtual SD card (default image size + 64 MiB)
	SlowRate   int64         // write limit of a slow card, bytes/s (default 8 MB/s)
	SlowFlag   string        // the agent's write-limit flag, given the rate in MB/s (10^6 bytes) as its value (default --write-rate-limit)
	MaxCuts    int           // connections cut per flaky board (default 3)
	RebootAt   float64       // fraction of the image's data written before a reboot board loses power (default 0.3)
	RebootWait time.Duration // how long a rebooting board stays off (default 1s)
	BadFill    float64       // fraction of the image's data a bad card can hold (default 0.4)
	Stagger    time.Duration // delay between board power-ons (default 0: all at once)
	Timeout    time.Duration // a board not ended after this is stuck (default 10m)
	Seed       uint64        // scenario assignment and cut points; 0 = random
	SerialBase uint64        // first board's serial; 0 = random high bits, boards count up
	AgentArgs  []string      // extra arguments for every agent
	// View, if set, is the server's side: the live summary shows its phases, reboot
	// boards are cut by its progress, and every end is checked against it.
	View View
	// Status, if set, receives a summary at every Interval (default 1s) and at the end.
	Status   func(Summary)
	Interval time.Duration
	// Log, if set, receives one line per board event (start, reboot, end).
	Log io.Writer
}

// View is the server's view of the boards, by lower-case serial.
type View interface {
	Boards(ctx context.Context) (map[string]ServerBoard, error)
}

// ServerBoard is the server's view of one board's latest deployment.
type ServerBoard struct {
	Serial       string
	DeploymentID int64
	Hostname     string
	Phase        string // an agentapi.Phase*; PhaseVerified and PhaseFailed are terminal
	Error        string // with PhaseFailed
	Bytes, Total int64  // progress of the phase
}

// Board is one virtual board and, once it ended, what happened.
type Board struct {
	Index    int
	Serial   string // 16 hex digits
	MAC      string
	Scenario Scenario
	Target   string // the card the agent writes
	LogPath  string // the agent's output, all runs appended

	Outcome  Outcome
	Cause    string // why it failed or is stuck or bad
	Hostname string // from the server, if it got one
	Runs     int    // agent processes started (2 after a reboot)
	Reboots  int    // power cuts done
	Cuts     int    // connections the flaky network cut
	Fetched  int64  // bytes through the flaky proxy
	Start    time.Time
	End      time.Time

	mu    sync.Mutex
	local string    // what the simulator sees: waiting, running, off, ended
	proxy *CutProxy // the flaky network, while it runs
}

func (b *Board) setLocal(s string) { b.mu.Lock(); b.local = s; b.mu.Unlock() }

// Duration is how long the board took from power-on to its end.
func (b *Board) Duration() time.Duration {
	if b.End.IsZero() {
		return 0
	}
	return b.End.Sub(b.Start)
}

func (c *Config) defaults() error {
	switch {
	case c.Server == "":
		return errors.New("fleet: no server URL")
	case c.Agent == "":
		return errors.New("fleet: no rpi-agent binary")
	case c.Manifest == nil:
		return errors.New("fleet: no image manifest")
	case c.WorkDir == "":
		return errors.New("fleet: no work directory")
	}
	if _, err := url.Parse(c.Server); err != nil {
		return fmt.Errorf("fleet: server URL %q: %w", c.Server, err)
	}
	if c.Boards <= 0 {
		c.Boards = 1
	}
	if c.Mix == nil {
		c.Mix = Mix{Normal: 100}
	}
	if c.CardSize <= 0 {
		c.CardSize = c.Manifest.Size + 64<<20
	}
	if c.CardSize < c.Manifest.Size {
		return fmt.Errorf("fleet: card size %d is smaller than the image (%d bytes)", c.CardSize, c.Manifest.Size)
	}
	if c.SlowRate <= 0 {
		c.SlowRate = 8e6
	}
	if c.SlowFlag == "" {
		c.SlowFlag = "--write-rate-limit"
	}
	if c.MaxCuts <= 0 {
		c.MaxCuts = 3
	}
	if c.RebootAt <= 0 || c.RebootAt >= 1 {
		c.RebootAt = 0.3
	}
	if c.RebootWait <= 0 {
		c.RebootWait = time.Second
	}
	if c.BadFill <= 0 || c.BadFill >= 1 {
		c.BadFill = 0.4
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.SerialBase == 0 {
		c.SerialBase = uint64(rand.Uint32()|1<<28) << 32
	}
	if c.Mix[BadCard] > 0 && os.Geteuid() != 0 {
		return errors.New("fleet: the badcard scenario needs root (tmpfs + loop device)")
	}
	return nil
}

// Fleet is one run of the simulator.
type Fleet struct {
	cfg    Config
	Boards []*Board
	start  time.Time

	mu   sync.Mutex
	view map[string]ServerBoard // last seen
}

// New prepares a run: assigns identities and scenarios. Nothing starts yet.
func New(cfg Config) (*Fleet, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed>>1|1))
	scen := cfg.Mix.Assign(cfg.Boards, rng)
	f := &Fleet{cfg: cfg}
	for i, sc := range scen {
		serial := cfg.SerialBase + uint64(i)
		f.Boards = append(f.Boards, &Board{
			Index:    i + 1,
			Serial:   fmt.Sprintf("%016x", serial),
			MAC:      macFor(cfg.SerialBase, i),
			Scenario: sc,
			LogPath:  filepath.Join(cfg.WorkDir, "logs", fmt.Sprintf("board-%03d.log", i+1)),
			local:    "waiting",
		})
	}
	return f, nil
}

// macFor is board i's MAC: the Pi 5 OUI 2c:cf:67 and 24 bits that differ for every
// board of a run (i < 2^24) and, through the serial base, from run to run.
func macFor(serialBase uint64, i int) string {
	low := uint32(serialBase>>32)*2654435761 + uint32(serialBase) + uint32(i)
	return fmt.Sprintf("2c:cf:67:%02x:%02x:%02x", byte(low>>16), byte(low>>8), byte(low))
}

// Run powers on every board, waits until each one ended, checks every end against
// the server and the card, and returns the report. It returns early (boards
// Canceled) when ctx ends. The error is for the run itself (work directory,
// agent binary); board failures are in the report.
func (f *Fleet) Run(ctx context.Context) (*Report, error) {
	cfg := &f.cfg
	for _, d := range []string{"cards", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.WorkDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(cfg.Agent); err != nil {
		return nil, fmt.Errorf("fleet: rpi-agent: %w", err)
	}
	f.start = time.Now()

	statusCtx, stopStatus := context.WithCancel(ctx)
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		f.watch(statusCtx)
	}()

	var wg sync.WaitGroup
	for i, b := range f.Boards {
		if i > 0 && cfg.Stagger > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(cfg.Stagger):
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.runBoard(ctx, b)
		}()
	}
	wg.Wait()
	stopStatus()
	<-statusDone

	f.check(context.WithoutCancel(ctx))
	rep := f.report()
	if cfg.Status != nil {
		cfg.Status(f.summary())
	}
	return rep, nil
}

// watch polls the server's view and calls Status at every interval.
func (f *Fleet) watch(ctx context.Context) {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		f.refresh(ctx)
		if f.cfg.Status != nil {
			f.cfg.Status(f.summary())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *Fleet) refresh(ctx context.Context) {
	if f.cfg.View == nil {
		return
	}
	v, err := f.cfg.View.Boards(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.logf("server view: %v", err)
		}
		return
	}
	f.mu.Lock()
	f.view = v
	f.mu.Unlock()
}

func (f *Fleet) serverBoard(serial string) (ServerBoard, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, ok := f.view[serial]
	return sb, ok
}

func (f *Fleet) logf(format string, a ...any) {
	if f.cfg.Log != nil {
		fmt.Fprintf(f.cfg.Log, "fleetsim: "+format+"\n", a...)
	}
}

// runBoard is one board's life: card, network, agent runs, reboots.
func (f *Fleet) runBoard(ctx context.Context, b *Board) {
	cfg := &f.cfg
	b.Start = time.Now()
	defer func() {
		b.End = time.Now()
		b.setLocal("ended")
	}()
	bctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	logf, err := os.OpenFile(b.LogPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		b.Outcome, b.Cause = SimError, err.Error()
		return
	}
	defer logf.Close()

	closeCard, err := f.card(b)
	if err != nil {
		b.Outcome, b.Cause = SimError, err.Error()
		return
	}
	defer closeCard()
	server, closeNet, err := f.network(ctx, b)
	if err != nil {
		b.Outcome, b.Cause = SimError, err.Error()
		return
	}
	defer closeNet()

	args := []string{"--server", server, "--target", b.Target, "--serial", b.Serial, "--mac", b.MAC}
	if b.Scenario == Slow {
		args = append(args, fmt.Sprintf("%s=%g", cfg.SlowFlag, float64(cfg.SlowRate)/1e6))
	}
	args = append(args, cfg.AgentArgs...)

	powerCut := b.Scenario == Reboot
	for {
		b.Runs++
		f.logf("board %03d %s %s: power on (run %d, %s)", b.Index, b.Serial, b.Scenario, b.Runs, b.Target)
		fmt.Fprintf(logf, "=== fleetsim: power on, run %d: %s %s\n", b.Runs, cfg.Agent, strings.Join(args, " "))
		b.setLocal("running")
		tail := &tailBuffer{max: 4096}
		cmd := exec.Command(cfg.Agent, args...)
		cmd.Stdout = io.MultiWriter(logf, tail)
		cmd.Stderr = cmd.Stdout
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			b.Outcome, b.Cause = SimError, fmt.Sprintf("start agent: %v", err)
			return
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		werr, killed, rebooted := f.watchRun(bctx, b, cmd, exited, powerCut, logf)
		if rebooted {
			powerCut = false
			if bctx.Err() == nil {
				continue // boots again, as the same board
			}
			killed = true // stopped or timed out while off
		}
		switch {
		case killed && ctx.Err() != nil:
			b.Outcome, b.Cause = Canceled, "run stopped"
		case killed:
			b.Outcome, b.Cause = Stuck, fmt.Sprintf("no end after %v (agent killed); last output: %s", cfg.Timeout, tail.lastLine())
		case werr != nil:
			b.Outcome, b.Cause = Failed, fmt.Sprintf("agent %v: %s", werr, tail.lastLine())
		default:
			b.Outcome = Verified // provisional: check() holds it against the server and the card
		}
		f.logf("board %03d %s %s: agent ended: %s %s", b.Index, b.Serial, b.Scenario, b.Outcome, b.Cause)
		return
	}
}

// watchRun waits for one agent run (cmd, whose exit comes on exited) to end: by itself;
// killed when bctx ends; or, with powerCut, by a power cut once Config.RebootAt of
// the image is on the card, after which the board stays off for Config.RebootWait.
func (f *Fleet) watchRun(bctx context.Context, b *Board, cmd *exec.Cmd, exited <-chan error, powerCut bool, logf io.Writer) (werr error, killed, rebooted bool) {
	cut := make(<-chan time.Time)
	if powerCut {
		poll := time.NewTicker(100 * time.Millisecond)
		defer poll.Stop()
		cut = poll.C
	}
	for {
		select {
		case werr = <-exited:
			return werr, false, false
		case <-bctx.Done():
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return <-exited, true, false
		case <-cut:
			if f.progress(b) < f.cfg.RebootAt {
				continue
			}
			// Power cut: no chance to report, flush or close anything.
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			b.mu.Lock()
			b.Reboots++
			b.local = "off"
			b.mu.Unlock()
			f.logf("board %03d %s: power cut at %.0f%% of the image", b.Index, b.Serial, 100*f.progress(b))
			fmt.Fprintf(logf, "=== fleetsim: power cut\n")
			select {
			case <-bctx.Done():
			case <-time.After(f.cfg.RebootWait):
			}
			return nil, false, true
		}
	}
}

// card makes board b's SD card and sets b.Target: a fresh sparse image file of
// Config.CardSize bytes, or for BadCard a failing loop device. The returned func
// releases it.
func (f *Fleet) card(b *Board) (func(), error) {
	cfg := &f.cfg
	if b.Scenario == BadCard {
		dir := filepath.Join(cfg.WorkDir, "cards", fmt.Sprintf("board-%03d", b.Index))
		card, err := newBadCard(dir, cfg.CardSize, int64(float64(cfg.Manifest.DataBytes)*cfg.BadFill))
		if err != nil {
			return nil, err
		}
		b.Target = card.dev
		return func() {
			if err := card.Close(); err != nil {
				f.logf("board %03d: %v", b.Index, err)
			}
		}, nil
	}
	b.Target = filepath.Join(cfg.WorkDir, "cards", fmt.Sprintf("board-%03d.img", b.Index))
	if err := os.Remove(b.Target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.WriteFile(b.Target, nil, 0o644); err != nil {
		return nil, err
	}
	if err := os.Truncate(b.Target, cfg.CardSize); err != nil {
		return nil, err
	}
	return func() {}, nil
}

// network returns the server URL board b's agent talks to: the server itself, or for
// Flaky a CutProxy in front of it that runs until the returned func is called.
func (f *Fleet) network(ctx context.Context, b *Board) (string, func(), error) {
	cfg := &f.cfg
	if b.Scenario != Flaky {
		return cfg.Server, func() {}, nil
	}
	u, err := url.Parse(cfg.Server)
	if err != nil {
		return "", nil, err
	}
	proxy := &CutProxy{Upstream: u.Host, MaxCuts: cfg.MaxCuts, MaxCut: max(cfg.Manifest.CompressedSize/2, 1<<20)}
	addr, err := proxy.Listen(cfg.Seed + uint64(b.Index))
	if err != nil {
		return "", nil, fmt.Errorf("proxy: %w", err)
	}
	b.mu.Lock()
	b.proxy = proxy
	b.mu.Unlock()
	pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); proxy.Serve(pctx) }()
	u.Host = addr
	return u.String(), func() {
		stop()
		<-done
		b.Cuts, b.Fetched = proxy.Cuts(), proxy.Bytes()
	}, nil
}

// progress is the fraction of the image's data a board has written, from the
// server's view when there is one, else from the card's allocated blocks.
func (f *Fleet) progress(b *Board) float64 {
	if sb, ok := f.serverBoard(b.Serial); ok && sb.Total > 0 && sb.Phase == "streaming" {
		return float64(sb.Bytes) / float64(sb.Total)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(b.Target, &st); err != nil || f.cfg.Manifest.DataBytes == 0 {
		return 0
	}
	return float64(st.Blocks*512) / float64(f.cfg.Manifest.DataBytes)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

// lastLine returns the last non-empty line written, or "(no output)".
func (t *tailBuffer) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := bytes.Split(bytes.TrimSpace(t.b), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(string(lines[i])); l != "" {
			return l
		}
	}
	return "(no output)"
}
