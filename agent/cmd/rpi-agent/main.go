// Command rpi-agent flashes a Raspberry Pi's card with the image the deployment server
// assigns, verifies it, names the board and reboots. As the initramfs uinit (--uinit)
// it finds everything itself (kernel command line, DHCP, device tree); in host mode
// it flashes a file or block device as a board with the identity given by flags:
//
//	rpi-agent --server URL --target PATH --serial HEX16 --mac MAC
//
// See docs/agent.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/agent/board"
	"github.com/rpi-deploy/rpi-deploy/agent/client"
	"github.com/rpi-deploy/rpi-deploy/agent/deploy"
	"github.com/rpi-deploy/rpi-deploy/agent/flash"
	"github.com/rpi-deploy/rpi-deploy/agent/initenv"
	"github.com/rpi-deploy/rpi-deploy/agent/led"
	"github.com/rpi-deploy/rpi-deploy/agent/mailbox"
	"github.com/rpi-deploy/rpi-deploy/agent/retry"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
)

var version = "dev"

type options struct {
	server, target, serial, mac, root, mechanism  string
	image, hostname                               string
	uinit, verbose, hashFreeSpace, readBackDuring bool
	cpuProfile                                    string
	retryBudget                                   time.Duration
	writeRateMB                                   float64
	decoders, writers, buffers, readBackDepth     int
	p2p, p2pListen                                string
	p2pKeepMiB, p2pReadaheadMiB                   int64
	p2pLie, p2pTrace                              bool
}

func main() {
	var o options
	fs := flag.NewFlagSet("rpi-agent", flag.ExitOnError)
	fs.StringVar(&o.server, "server", "", "rpi-deployd URL, e.g. http://10.0.0.1:8080 (uinit: from rpideploy.server= or DHCP option 224)")
	fs.StringVar(&o.target, "target", "", "card to write: block device or image file (default "+board.DefaultTarget+")")
	fs.StringVar(&o.serial, "serial", "", "board serial, 16 hex digits (default: device tree, /proc/cpuinfo)")
	fs.StringVar(&o.mac, "mac", "", "board MAC (default: eth0)")
	fs.StringVar(&o.root, "root", "/", "where /proc and /sys are (tests)")
	fs.StringVar(&o.mechanism, "mechanism", "", "override the first-boot mechanism: firstrun, cloud-init or custom.toml")
	fs.BoolVar(&o.uinit, "uinit", false, "run as the initramfs uinit: set up modules, network and kernel command line first; reboot, power off or wait at the end")
	fs.DurationVar(&o.retryBudget, "retry-budget", 5*time.Minute, "how long to keep retrying a server that does not answer")
	fs.Float64Var(&o.writeRateMB, "write-rate-limit", 0, "cap target writes at this many MB/s (benchmarks: stands in for an SD card)")
	fs.IntVar(&o.decoders, "decoders", 0, "frames decoded at once (default: all cores)")
	fs.IntVar(&o.writers, "writers", 0, "target writes in flight (default 4)")
	fs.IntVar(&o.readBackDepth, "readback-depth", 0, "chunks read back at once after the stream (default 8)")
	fs.IntVar(&o.buffers, "buffers", 0, "raw chunk buffers in circulation (default: 96 MiB worth)")
	fs.StringVar(&o.image, "image", "", "standalone: flash this .img.zst URL (manifest beside it) without a server's assignment; needs --hostname")
	fs.StringVar(&o.hostname, "hostname", "", "standalone: the hostname to give the board")
	fs.StringVar(&o.p2p, "p2p", "auto", "auto: fetch from the other boards too when the server invites; off: HTTP alone")
	fs.Int64Var(&o.p2pKeepMiB, "p2p-keep", 0, "MiB of compressed pieces kept in RAM to serve other boards (default 512)")
	fs.Int64Var(&o.p2pReadaheadMiB, "p2p-readahead", 0, "MiB the flasher asks the swarm for ahead of itself first (default 4)")
	fs.StringVar(&o.p2pListen, "p2p-listen", "", "TCP address the swarm listens on (default :0, any port)")
	fs.BoolVar(&o.p2pTrace, "p2p-trace", false, "log every swarm piece as it completes (and from whom) and every wait of the flasher for one")
	fs.BoolVar(&o.p2pLie, "p2p-test-corrupt-uploads", false, "TESTS ONLY: serve corrupted pieces to the other boards (a hostile board)")
	fs.BoolVar(&o.readBackDuring, "readback-during-stream", false, "read each chunk back once the stream is 64 MiB past it, while later chunks are written, instead of all after the stream is synced (faster on targets that read while they write, e.g. NVMe; misses a counterfeit card that wraps around within the image)")
	fs.BoolVar(&o.hashFreeSpace, "hash-free-space", false, "prove the image by hashing every byte, free space included (the chain or a whole-image SHA256), instead of the data ranges and a zero check of the rest")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a pprof CPU profile of the run to `FILE` (benchmarks)")
	fs.BoolVar(&o.verbose, "v", false, "debug logs")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Parse(os.Args[1:])
	if o.p2p != "auto" && o.p2p != "off" {
		fmt.Fprintf(os.Stderr, "rpi-agent: --p2p %q: want auto or off\n", o.p2p)
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println("rpi-agent", version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rpi-agent:", err)
		if o.uinit {
			initenv.Rescue(err.Error())
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopProfile()) }()
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var ip string
	if o.uinit {
		env, err := initenv.Setup(ctx, log)
		if err != nil {
			return fmt.Errorf("set up the initramfs: %w", err)
		}
		o.server = first(o.server, env.ServerURL)
		o.target = first(o.target, env.Target)
		o.serial = first(o.serial, env.Serial)
		o.mac = first(o.mac, env.MAC)
		ip = env.IP
	}
	pol := retry.Policy{Budget: o.retryBudget}
	cfg := deploy.Config{
		Client: &client.Client{Server: o.server, Retry: pol, Log: log},
		Target: o.target,
		Flash: flash.Options{Decoders: o.decoders, Writers: o.writers, Buffers: o.buffers, ReadBackDepth: o.readBackDepth, WriteRateLimit: o.writeRateMB * 1e6,
			HashFreeSpace: o.hashFreeSpace, ReadBackDuringStream: o.readBackDuring, Retry: pol, Log: log},
		BootFS:    bootFS,
		Mechanism: o.mechanism,
		P2P: deploy.P2P{Off: o.p2p == "off", Keep: o.p2pKeepMiB << 20, Readahead: o.p2pReadaheadMiB << 20,
			Listen: o.p2pListen, CorruptUploads: o.p2pLie, Trace: o.p2pTrace},
		Console: os.Stderr,
		TTY:     progress.IsTerminal(os.Stderr),
		LED:     led.Find(o.root),
		Log:     log,
	}
	if o.image != "" {
		if err := standalone(&cfg, o); err != nil {
			return err
		}
	} else {
		if cfg.Client.Server == "" {
			return errors.New("no server: give --server (or rpideploy.server= on the kernel command line)")
		}
		if cfg.Target == "" {
			cfg.Target = board.DefaultTarget
		}
		hello, err := board.Identify(board.Options{Root: o.root, Target: cfg.Target, Serial: o.serial, MAC: o.mac})
		if err != nil {
			return err
		}
		hello.AgentVersion, hello.IP = version, ip
		cfg.Hello = hello
		cfg.Log = log.With("serial", hello.Serial, "mac", hello.MAC)
	}
	out, err := deploy.Run(ctx, cfg)
	if out != nil && out.Action == agentapi.ActionDeploy {
		printStats(out.Stats)
	}
	if err != nil {
		return err
	}
	if o.uinit {
		if out.After() == agentapi.AfterReboot {
			why := "verified flash"
			if out.Action == agentapi.ActionBootLocal {
				why = "boot_local"
			}
			nextBootFromCard(log, why, mailbox.SetRebootOrder)
		}
		return initenv.Finish(out.After())
	}
	return nil
}

// standalone sets cfg up to flash --image as --hostname with no server conversation.
func standalone(cfg *deploy.Config, o options) error {
	switch {
	case o.hostname == "":
		return errors.New("--image needs --hostname")
	case o.target == "":
		return errors.New("--image needs --target")
	case !strings.HasSuffix(o.image, ".img.zst"):
		return fmt.Errorf("--image %q: want a URL ending in .img.zst", o.image)
	}
	dep := &agentapi.Deployment{Hostname: o.hostname, After: agentapi.AfterWait, Image: agentapi.Image{
		URL: o.image, ManifestURL: strings.TrimSuffix(o.image, ".img.zst") + ".manifest.json"}}
	dep.FirstBoot.Hostname = o.hostname
	cfg.Deployment, cfg.Client.Server = dep, o.image
	return nil
}

// printStats prints the figures of a flash; scripts/bench/30-agent.sh parses this line.
func printStats(st flash.Stats) {
	fmt.Fprintf(os.Stderr, "rpi-agent: done: written=%d stream_written=%d fetched=%d resumes=%d writes=%d open_s=%.3f stream_s=%.3f sync_s=%.3f readback_s=%.3f name_s=%.3f commit_s=%.3f readback_in_stream=%d readback=%d zero_frames=%d paired=%d buffers=%d syncs=%d direct=%v\n",
		st.Written, st.StreamWritten, st.Fetched, st.Resumes, st.WritesIssued, st.OpenTime.Seconds(), st.StreamTime.Seconds(), st.SyncTime.Seconds(),
		st.VerifyTime.Seconds(), st.NameTime.Seconds(), st.CommitTime.Seconds(), st.ReadBackInStream, st.ReadBack, st.ZeroFrames, st.PairedChunks, st.Buffers, st.Syncs, st.DirectIO)
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// startCPUProfile writes a pprof CPU profile to path until the returned stop is called;
// with path "" it does nothing.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %q: %w", path, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile %q: %w", path, err)
		}
		return nil
	}, nil
}
