// Package deploy is one run of the agent: hello, then (when the server says deploy)
// stream the image onto the target, read it back, name the board for its first boot,
// commit the partition table, and report — phases and progress at least every second
// to the server and on the console, the result at the end. A failure at any step is
// reported with its phase and cause and leaves the target unbootable.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/agent/client"
	"github.com/rpi-deploy/rpi-deploy/agent/firstboot"
	"github.com/rpi-deploy/rpi-deploy/agent/flash"
	"github.com/rpi-deploy/rpi-deploy/agent/led"
	"github.com/rpi-deploy/rpi-deploy/agent/retry"
	"github.com/rpi-deploy/rpi-deploy/agent/swarm"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
)

// BootFS opens the FAT file system of the boot partition (size bytes at offset of
// dev) for naming. rpi-agent passes image-tools/fat.
type BootFS func(dev *flash.Device, offset, size int64) (firstboot.FS, error)

// Config is one run. Client, Hello and Target are required.
type Config struct {
	Client *client.Client
	Hello  agentapi.Hello // who this board is
	Target string         // the card: a block device or an image file
	Flash  flash.Options
	BootFS BootFS
	// Mechanism, if set, overrides the first-boot mechanism of the image and of the
	// deployment (a host-mode flag for tests).
	Mechanism string
	// Console receives the one-line status (default os.Stderr); TTY redraws it in
	// place as a bar.
	Console io.Writer
	TTY     bool
	LED     *led.LED
	Log     *slog.Logger
	// Every is the progress report interval (default 1 s).
	Every time.Duration
	// P2P: the board's part in its image's swarm when the server invites it.
	P2P P2P
	// Deployment, if set, is flashed without asking the server (no hello, no events,
	// no result): rpi-agent --image, for benchmarks and bench-top use.
	Deployment *agentapi.Deployment
}

// Outcome is what a run ended with.
type Outcome struct {
	Action     string               // agentapi.ActionDeploy or ActionBootLocal
	Deployment *agentapi.Deployment // with ActionDeploy
	Result     agentapi.Result      // with ActionDeploy
	Stats      flash.Stats
}

// After is what to do next: the deployment's After (default reboot); for boot_local,
// reboot.
func (o *Outcome) After() string {
	if o.Deployment != nil && o.Deployment.After != "" {
		return o.Deployment.After
	}
	return agentapi.AfterReboot
}

// Run does one run. With a deployment, a nil error means the card is verified, named
// and committed and the server has the result.
func Run(ctx context.Context, cfg Config) (*Outcome, error) {
	r := &run{cfg: cfg, log: cfg.Log, start: time.Now()}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Console == nil {
		r.cfg.Console = os.Stderr
	}
	if cfg.Every <= 0 {
		r.cfg.Every = time.Second
	}
	cfg.LED.Set(led.Working)
	r.setPhase(agentapi.PhaseHello)
	resp := &agentapi.HelloResponse{Action: agentapi.ActionDeploy, Deployment: cfg.Deployment}
	if cfg.Deployment == nil {
		r.say("hello to %s as %s (%s)", cfg.Client.Server, cfg.Hello.Serial, cfg.Hello.MAC)
		var err error
		if resp, err = cfg.Client.Hello(ctx, cfg.Hello); err != nil {
			cfg.LED.Set(led.Failed)
			return nil, err
		}
	}
	out := &Outcome{Action: resp.Action}
	if resp.Action == agentapi.ActionBootLocal {
		r.say("server says: boot from the card (%s)", resp.Reason)
		cfg.LED.Set(led.Done)
		return out, nil
	}
	dep := resp.Deployment
	out.Deployment = dep
	r.dep = dep
	r.log = r.log.With("deployment", dep.ID, "hostname", dep.Hostname)
	r.say("deployment %d: %s, image %s", dep.ID, dep.Hostname, dep.Image.Name)
	err := r.flash(ctx, out)
	out.Stats = r.stats()
	res := r.result(err)
	// The result must reach the server even when ctx was cancelled.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if cfg.Deployment == nil { // standalone runs have nobody to tell
		if rerr := cfg.Client.Result(rctx, dep.ID, res); rerr != nil {
			r.log.Error("result not delivered", "err", rerr)
			if err == nil {
				// Only a card the server knows as verified may boot: undo the commit,
				// so that the board comes back for the same deployment.
				err = fmt.Errorf("card verified, but the server has no result: %w", rerr)
				if uerr := r.fl.Uncommit(); uerr != nil {
					err = fmt.Errorf("%w; and making the card unbootable again failed: %w", err, uerr)
				}
				res.Phase = "result"
			}
		}
	}
	if r.sw != nil {
		if err == nil {
			fs, fp, up := r.sw.Counts()
			r.log.Info("swarm bytes", "from_server", fs, "from_peers", fp, "uploaded", up)
			r.say("seeding for the boards still flashing (from server %s, from peers %s, sent %s so far)", progress.Bytes(fs), progress.Bytes(fp), progress.Bytes(up))
			r.sw.Seed(ctx)
		}
		if cerr := r.sw.Close(); cerr != nil {
			r.log.Warn("leave swarm", "err", cerr)
		}
	}
	if r.fl != nil {
		if cerr := r.fl.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	out.Result = res
	if err != nil {
		cfg.LED.Set(led.Failed)
		r.say("FAILED in %s: %v", res.Phase, err)
		return out, err
	}
	cfg.LED.Set(led.Done)
	r.say("verified %s: %d chunks, sha256 %s, %s", dep.Hostname, res.ChunksVerified, res.SHA256, time.Since(r.start).Round(100*time.Millisecond))
	return out, nil
}

type run struct {
	cfg   Config
	log   *slog.Logger
	dep   *agentapi.Deployment
	start time.Time

	sw        *swarm.Swarm // the image's swarm, when the board joined one
	mu        sync.Mutex
	phase     string
	fl        *flash.Flasher
	total     int64      // of the current phase
	done      int64      // read-back progress
	conMu     sync.Mutex // guards the console fields
	width     int        // of the last TTY line
	lastPrint time.Time  // of the last non-TTY status line
}

func (r *run) setPhase(p string) {
	r.mu.Lock()
	r.phase, r.done, r.total = p, 0, 0
	r.mu.Unlock()
	r.log.Info("phase", "phase", p)
	if r.dep != nil && r.cfg.Deployment == nil {
		if err := r.cfg.Client.Event(context.Background(), r.dep.ID, agentapi.Event{Phase: p, Time: time.Now()}); err != nil {
			r.log.Warn("event not delivered", "err", err)
		}
	}
}

func (r *run) getPhase() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.phase
}

func (r *run) stats() flash.Stats {
	r.mu.Lock()
	fl := r.fl
	r.mu.Unlock()
	if fl == nil {
		return flash.Stats{}
	}
	return fl.Stats()
}

// flash runs the phases from streaming to commit; the error carries its phase.
func (r *run) flash(ctx context.Context, out *Outcome) error {
	cfg, dep := r.cfg, r.dep
	r.setPhase(agentapi.PhaseStreaming)
	m, err := cfg.Client.Manifest(ctx, dep.Image.ManifestURL)
	if err != nil {
		return err
	}
	if dep.Image.SHA256 != "" && dep.Image.SHA256 != m.SHA256 {
		return fmt.Errorf("manifest of %q has sha256 %s, the server announced %s", m.Name, m.SHA256, dep.Image.SHA256)
	}
	mech := firstboot.Mechanism(m, dep.FirstBoot)
	if cfg.Mechanism != "" {
		mech = cfg.Mechanism
	}
	part, hasBoot := m.Bootfs()
	switch {
	case mech == manifest.FirstBootNone:
		return fmt.Errorf("%w: image %q has no first-boot mechanism and the deployment names none; cannot give it hostname %q", firstboot.ErrMechanism, m.Name, dep.FirstBoot.Hostname)
	case !hasBoot:
		return fmt.Errorf("image %q has no boot partition in its manifest", m.Name)
	case cfg.BootFS == nil:
		return errors.New("no FAT support wired in (deploy.Config.BootFS)")
	}
	url, err := cfg.Client.Resolve(dep.Image.URL)
	if err != nil {
		return err
	}
	fo := cfg.Flash
	if fo.Log == nil {
		fo.Log = r.log
	}
	if fo.Retry == (retry.Policy{}) {
		fo.Retry = cfg.Client.Retry // the same budget for a lost server, whatever it was doing
	}
	fl, err := flash.Open(cfg.Target, m, fo)
	if err != nil {
		return err
	}
	// Run closes fl after the result: it may have to undo the commit.
	r.mu.Lock()
	r.fl, r.total = fl, m.Size
	r.mu.Unlock()

	stop := r.report(ctx)
	defer stop()
	hs := &flash.HTTPSource{URL: url, Size: m.CompressedSize}
	if dep.Secret != "" {
		hs.Header = http.Header{agentapi.HeaderSecret: {dep.Secret}}
	}
	var src flash.Source = hs
	if sw := r.joinSwarm(ctx, url, m.CompressedSize); sw != nil {
		src = &swarm.Fallback{Swarm: sw, HTTP: hs, Log: r.log}
	}
	if err := fl.Stream(ctx, src); err != nil {
		return err
	}
	r.setPhase(agentapi.PhaseVerifying)
	if _, err := fl.Verify(ctx, func(done, total int64) {
		r.mu.Lock()
		r.done, r.total = done, total
		r.mu.Unlock()
	}); err != nil {
		return err
	}
	r.setPhase(agentapi.PhaseNaming)
	if err := r.name(fl, mech, part); err != nil {
		return err
	}
	r.setPhase(agentapi.PhaseCommit)
	return fl.Commit()
}

func (r *run) name(fl *flash.Flasher, mech string, p manifest.Partition) error {
	dev, err := fl.Device()
	if err != nil {
		return err
	}
	fsys, err := r.cfg.BootFS(dev, p.Start, p.Size)
	if err != nil {
		dev.Close()
		return fmt.Errorf("open boot partition %d at %d: %w", p.Index, p.Start, err)
	}
	s := firstboot.Settings{FirstBoot: r.dep.FirstBoot, DeploymentID: r.dep.ID}
	if s.Hostname == "" {
		s.Hostname = r.dep.Hostname
	}
	if err := firstboot.Apply(fsys, mech, s); err != nil {
		dev.Close()
		return err
	}
	if err := dev.Close(); err != nil {
		return fmt.Errorf("sync boot partition: %w", err)
	}
	r.say("named %s (%s: %v)", s.Hostname, mech, firstboot.Files(mech))
	return nil
}

// result builds the Result for err (nil: success).
func (r *run) result(err error) agentapi.Result {
	st := r.stats()
	res := agentapi.Result{Serial: r.cfg.Hello.Serial,
		BytesWritten: st.Written, BytesFetched: st.Fetched,
		DurationMS: time.Since(r.start).Milliseconds(),
	}
	if err != nil {
		res.Phase, res.Error = r.getPhase(), err.Error()
		return res
	}
	res.Success, res.SHA256, res.ChunksVerified = true, st.SHA256, st.ChunksMatch+1 // + chunk 0, checked at commit
	return res
}

// report sends progress events and redraws the console status every cfg.Every until
// the returned stop is called.
func (r *run) report(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.cfg.Every)
		defer t.Stop()
		var lastBytes int64
		var lastPhase string
		last := time.Now()
		rate := 0.0
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				phase, bytes, total := r.progress()
				if phase != lastPhase {
					lastBytes, rate, lastPhase = 0, 0, phase
				}
				if dt := now.Sub(last).Seconds(); dt > 0 {
					inst := float64(bytes-lastBytes) / dt
					if rate == 0 {
						rate = inst
					} else {
						rate = 0.5*rate + 0.5*inst
					}
				}
				lastBytes, last = bytes, now
				ev := agentapi.Event{Phase: phase, Time: now, Bytes: bytes, Total: total, RateBps: rate}
				if st := r.stats(); phase == agentapi.PhaseStreaming {
					ev.Message = fmt.Sprintf("fetched %d compressed bytes, %d resumes", st.Fetched, st.Resumes)
					if r.sw != nil {
						fs, fp, up := r.sw.Counts()
						ev.Message += fmt.Sprintf("; from server %d, from peers %d, sent to peers %d", fs, fp, up)
					}
				}
				if r.cfg.Deployment == nil {
					if err := r.cfg.Client.Event(ctx, r.dep.ID, ev); err != nil && ctx.Err() == nil {
						r.log.Warn("progress not delivered", "err", err)
					}
				}
				r.status(phase, bytes, total, rate)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		r.conMu.Lock()
		if r.cfg.TTY && r.width > 0 {
			fmt.Fprintln(r.cfg.Console)
			r.width = 0
		}
		r.conMu.Unlock()
	}
}

// progress is the current phase with its done and total bytes.
func (r *run) progress() (string, int64, int64) {
	r.mu.Lock()
	phase, fl, done, total := r.phase, r.fl, r.done, r.total
	r.mu.Unlock()
	if phase == agentapi.PhaseStreaming && fl != nil {
		return phase, fl.Stats().Streamed, total
	}
	return phase, done, total
}

// status prints the one-line status: redrawn in place with a bar on a TTY, a plain
// line every 5 s otherwise.
func (r *run) status(phase string, done, total int64, rate float64) {
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	r.conMu.Lock()
	defer r.conMu.Unlock()
	line := fmt.Sprintf("rpi-agent: %-9s %s / %s  %5.1f%%  %s/s", phase, progress.Bytes(done), progress.Bytes(total), pct, progress.Bytes(int64(rate)))
	if !r.cfg.TTY {
		if time.Since(r.lastPrint) >= 5*time.Second {
			r.lastPrint = time.Now()
			fmt.Fprintln(r.cfg.Console, line)
		}
		return
	}
	const barWidth = 30
	fill := int(pct / 100 * barWidth)
	bar := "[" + repeat('#', fill) + repeat('.', barWidth-fill) + "] "
	s := "\r" + bar + line
	if pad := r.width - len(s); pad > 0 {
		s += repeat(' ', pad)
	}
	r.width = len(s)
	fmt.Fprint(r.cfg.Console, s)
}

func (r *run) say(format string, a ...any) {
	r.conMu.Lock()
	defer r.conMu.Unlock()
	if r.cfg.TTY && r.width > 0 {
		fmt.Fprintln(r.cfg.Console)
		r.width = 0
	}
	fmt.Fprintf(r.cfg.Console, "rpi-agent: "+format+"\n", a...)
}

func repeat(c byte, n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
