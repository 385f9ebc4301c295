//go:build p2pbench

package swarm

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/scripts/bench/benchkit"
)

// TestP2PFleetBench is the fleet bench of scripts/bench/80-p2p.sh (build tag
// p2pbench): N boards (P2P_BOARDS, default 20) flash one image through links of equal
// rate (P2P_RATE, default 20mbit, tc tbf both ways: the server's one link and each
// board's), once with P2P and once HTTP-only, and one board alone with P2P, all in this
// run; it prints the bench lines. The time of a run is from the start of its agents to
// the last "verified" line.
func TestP2PFleetBench(t *testing.T) {
	n := envInt("P2P_BOARDS", 20)
	rate := os.Getenv("P2P_RATE")
	if rate == "" {
		rate = "20mbit"
	}
	zst := fleetImage(t, int64(envInt("P2P_ROOT_MIB", 20)))
	run := func(p2p string, boards int) (seconds float64, served, compressed int64) {
		f := newFleet(t, zst, p2p, rate, boards)
		var bs []*board
		for i := range boards {
			bs = append(bs, f.addBoard(i+1, rate))
		}
		start := time.Now()
		for _, b := range bs {
			f.start(b)
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
		f.finish(t, bs, nil)
		s := last.Sub(start).Seconds()
		var cpu time.Duration
		var declined int64
		for _, b := range bs {
			cpu += b.cpu
			if m := regexp.MustCompile(`web_seed_declined=(\d+)`).FindStringSubmatch(b.out.String()); m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				declined += n
			}
		}
		load, _ := os.ReadFile("/proc/loadavg")
		t.Logf("p2p=%s boards=%d rate=%s: all verified in %.1f s; server sent %d bytes (%.2f images of %d) in %d image requests, %d web seed requests declined (a peer had the piece); server CPU %.1f s; agents' CPU %.1f s in all (seeding included); loadavg %s",
			p2p, boards, rate, s, f.served(), float64(f.served())/float64(f.m.CompressedSize), f.m.CompressedSize,
			f.metric("rpideploy_image_downloads_total"), declined, f.serverCPU().Seconds(), cpu.Seconds(), strings.TrimSpace(string(load)))
		return s, f.served(), f.m.CompressedSize
	}
	one, _, _ := run("on", 1)
	p2p, served, comp := run("on", n)
	httpOnly, httpServed, _ := run("off", n)
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
