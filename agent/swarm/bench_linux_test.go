//go:build p2pbench

package swarm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/scripts/bench/benchkit"
)

// TestP2PFleetBench is the fleet bench of scripts/bench/80-p2p.sh (build tag
// p2pbench): N boards (P2P_BOARDS, default 20) flash one image (P2P_ROOT_MIB of root
// file data, default 10) through links of equal rate (P2P_RATE, default 6mbit, tc tbf
// both ways: the server's one link and each board's), once with P2P and once
// HTTP-only, and one board alone with P2P, all in this run; it prints the bench lines.
// The swarm's pieces are P2P_PIECE_KIB (default 64). A gigabit fleet scaled down: at
// 6 Mbit/s the twenty agents use about 1.4 of this machine's two cores during the P2P
// run (less at lower rates, but HTTP-only then takes far longer than its 5 minutes
// here), and an 11 MB image in 64 KiB pieces keeps the boards' first round of shares
// from the server (20 pieces) at 11 % of one board's time. The time of a run is from
// the start of its agents to the last card verified (rpi-deployd's log), not to the agents' exits, which wait for the
// seeding to end. P2P_RUNS (default "one,p2p,http") picks the runs, for
// looking at one; P2P_PROFILE=DIR has every agent write a CPU profile there.
func TestP2PFleetBench(t *testing.T) {
	n := envInt("P2P_BOARDS", 20)
	rate := os.Getenv("P2P_RATE")
	if rate == "" {
		rate = "6mbit"
	}
	runs := os.Getenv("P2P_RUNS")
	if runs == "" {
		runs = "one,p2p,http"
	}
	profiles := os.Getenv("P2P_PROFILE")
	pieceKiB := envInt("P2P_PIECE_KIB", 64)
	zst := fleetImage(t, int64(envInt("P2P_ROOT_MIB", 10)))
	run := func(p2p string, boards int) (seconds float64, served, compressed int64) {
		f := newFleet(t, zst, p2p, rate, boards, "--p2p-piece-kib", strconv.Itoa(pieceKiB))
		var bs []*board
		for i := range boards {
			bs = append(bs, f.addBoard(i+1, rate))
		}
		// The server's bytes sent, every second of the run (its /metrics).
		var timeline []string
		stopTimeline := make(chan struct{})
		timelineDone := make(chan struct{})
		go func() {
			defer close(timelineDone)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stopTimeline:
					return
				case <-tick.C:
				}
				out, err := f.srv.Run(context.Background(), "curl", "-sf", "-H", "Authorization: Bearer "+f.token, f.url+"/metrics")
				if m := regexp.MustCompile(`(?m)^rpideploy_image_bytes_served_total (\d+)$`).FindStringSubmatch(out); err == nil && m != nil {
					v, _ := strconv.ParseFloat(m[1], 64)
					timeline = append(timeline, fmt.Sprintf("%.1f", v/1e6))
				}
			}
		}()
		start := time.Now()
		for _, b := range bs {
			// HTTP-only, twenty boards share the server's link for minutes: a stream
			// that breaks late must still be resumed (the fleet's 2 m budget counts
			// from the start; one board of twenty failed so at 6 Mbit/s).
			extra := []string{"--retry-budget", "15m"}
			if profiles != "" {
				extra = append(extra, "--cpuprofile", filepath.Join(profiles, fmt.Sprintf("p2p-%s-%d-%s.prof", p2p, boards, b.serial)))
			}
			f.start(b, extra...)
		}
		last := start
		for _, b := range bs {
			for !strings.Contains(b.out.String(), "rpi-agent: verified ") {
				select {
				case <-b.done:
					if strings.Contains(b.out.String(), "rpi-agent: verified ") {
						continue
					}
					t.Fatalf("board %s ended unverified: %v\n%s", b.serial, b.err, tail(b.out.String(), 30))
				case <-time.After(50 * time.Millisecond):
				}
				if time.Since(start) > 20*time.Minute {
					t.Fatalf("board %s not verified after 20 min", b.serial)
				}
			}
			if now := time.Now(); now.After(last) {
				last = now
			}
		}
		close(stopTimeline)
		<-timelineDone
		f.finish(t, bs, nil)
		// The time is to the last card verified: the server's "deployment finished"
		// with state verified (the result delivered, before a board seeds for the
		// others); the agents' exits, seeding included, are logged beside it.
		exited := last.Sub(start).Seconds()
		var verifiedAt time.Time
		for _, m := range regexp.MustCompile(`time=(\S+) level=INFO msg="deployment finished" .*state=verified`).FindAllStringSubmatch(f.srvOut.String(), -1) {
			if at, err := time.Parse(time.RFC3339Nano, m[1]); err == nil && at.After(verifiedAt) {
				verifiedAt = at
			}
		}
		if verifiedAt.IsZero() {
			t.Fatalf("no verified deployment in rpi-deployd's log")
		}
		s := verifiedAt.Sub(start).Seconds()
		t.Logf("p2p=%s boards=%d: last card verified %.1f s after the start, last agent exited (seeding ended) after %.1f s", p2p, boards, s, exited)
		var cpu time.Duration
		var requests int64
		var took []float64
		for _, b := range bs {
			cpu += b.cpu
			out := b.out.String()
			if m := regexp.MustCompile(`server_requests=(\d+)`).FindStringSubmatch(out); m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				requests += n
			}
			// The agent's own time to its verified card (from its start).
			if m := regexp.MustCompile(`rpi-agent: verified .*, (\S+)\n`).FindStringSubmatch(out); m != nil {
				if d, err := time.ParseDuration(m[1]); err == nil {
					took = append(took, d.Seconds())
				}
			}
		}
		slices.Sort(took)
		load, _ := os.ReadFile("/proc/loadavg")
		t.Logf("p2p=%s boards=%d rate=%s: all verified in %.1f s; server sent %d bytes (%.2f images of %d) in %d image requests (%d piece requests from the boards); server CPU %.1f s; agents' CPU %.1f s in all (seeding included); loadavg %s",
			p2p, boards, rate, s, f.served(), float64(f.served())/float64(f.m.CompressedSize), f.m.CompressedSize,
			f.metric("rpideploy_image_downloads_total"), requests, f.serverCPU().Seconds(), cpu.Seconds(), strings.TrimSpace(string(load)))
		if len(took) > 0 {
			t.Logf("p2p=%s boards=%d: each board verified after (s, sorted): %v", p2p, boards, took)
		}
		t.Logf("p2p=%s boards=%d: server MB sent at each second: %s", p2p, boards, strings.Join(timeline, " "))
		return s, f.served(), f.m.CompressedSize
	}
	var one, p2p, httpOnly float64
	var served, httpServed, comp int64
	if strings.Contains(runs, "one") {
		one, _, _ = run("on", 1)
	}
	if strings.Contains(runs, "p2p") {
		p2p, served, comp = run("on", n)
	}
	if strings.Contains(runs, "http") {
		httpOnly, httpServed, comp = run("off", n)
	}
	if runs != "one,p2p,http" {
		return // no bench lines from a partial run
	}
	name := "p2p-fleet-" + strconv.Itoa(n)
	benchkit.Line(name, p2p, httpOnly)
	benchkit.Line(name+"-vs-one", p2p, one)
	benchkit.Line(name+"-server-MB", float64(served)/1e6, float64(int64(n)*comp)/1e6)
	benchkit.Line(name+"-server-MB-http-only", float64(httpServed)/1e6, float64(int64(n)*comp)/1e6)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
