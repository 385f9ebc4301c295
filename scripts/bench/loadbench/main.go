// Command loadbench measures what other traffic costs the agent API: rpi-deployd's
// hello throughput (hellos answered per second, each from a new board, each followed
// by a failed result that closes its deployment) while a load runs, against the same
// server with no load, in rounds that alternate quiet and loaded in the same run
// (scripts/bench/15-load.sh runs it). Loads:
//
//   - sse: N dashboards following GET /api/v1/events (every hello and result is
//     published to each of them), read by raw sockets that cost next to nothing
//     (sse_linux.go); they ask for gzip as a browser does (-sse-accept-encoding ""
//     for plain streams);
//   - logins: N clients sending wrong passwords to POST /api/v1/login as fast as they
//     are answered, each request from another loopback address (127.1.x.y), so the
//     per-address failure limit never stops them.
//
// It prints "bench: hello-rate-NAME ours=LOADED baseline=QUIET ratio=R" (hellos/s;
// the ratio is the share of the quiet throughput left under the load).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/scripts/bench/benchkit"
	"github.com/rpi-deploy/rpi-deploy/server/config"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin/rpi-deployd", "rpi-deployd binary")
	workers := flag.Int("workers", 32, "concurrent boards saying hello")
	dur := flag.Duration("duration", 4*time.Second, "length of one measuring round")
	rounds := flag.Int("rounds", 3, "rounds of each (quiet and loaded alternate); the median counts")
	subs := flag.Int("sse", 2000, "event stream subscribers of the sse load (0: skip)")
	sseEncoding := flag.String("sse-accept-encoding", chromiumAcceptEncoding,
		"the streams' Accept-Encoding (\"\": none, plain streams); the default is a browser's")
	logins := flag.Int("logins", 64, "concurrent wrong logins of the logins load (0: skip)")
	pprofAddr := flag.String("pprof", "", "serve rpi-deployd's profiler on this loopback address (serve --pprof)")
	cpuProfile := flag.String("cpuprofile", "", "write this program's own CPU profile (the clients' cost) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	extra := []string{}
	if *pprofAddr != "" {
		extra = append(extra, "--pprof", *pprofAddr)
	}
	ctx := context.Background()

	work, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	img, err := benchkit.MakeImage(work, "bench", bytes.NewReader(make([]byte, 8<<20)), 8<<20)
	if err != nil {
		return err
	}
	token := "bench-token-0123456789abcdef"
	// Every simulated board says hello from 127.0.0.1: the per-address limits are off.
	srv, err := benchkit.StartDeployd(*bin, filepath.Join(work, "data"), token, nil, append([]string{
		"--log-level", "error", "--max-event-streams", strconv.Itoa(max(*subs+16, 64)),
		"--http-max-conns", strconv.Itoa(*subs + *logins + *workers + 256),
		"--http-max-conns-per-source", strconv.Itoa(*subs + *workers + 64)}, append(extra, config.NoSourceLimitsFlags...)...)...)
	if err != nil {
		return err
	}
	defer srv.Stop()
	if _, err := benchkit.Setup(ctx, srv.URL, token, img, "RXP2", 0); err != nil {
		return err
	}
	h := &hellos{url: srv.URL, workers: *workers}
	h.rate(time.Second) // warm up: connections, SQLite pages

	if *subs > 0 {
		quiet, loaded, cpu, err := compare(h, *dur, *rounds, srv.Cmd.Process.Pid, func() (func(), error) {
			return sseLoad(srv.URL, token, *sseEncoding, *subs)
		})
		if err != nil {
			return fmt.Errorf("sse: %w", err)
		}
		benchkit.Line("hello-rate-"+strconv.Itoa(*subs)+"-sse", loaded, quiet)
		// The server's CPU per hello under the load against quiet (µs; the streams'
		// writes count as the hellos'): less swayed than the rates by other work on
		// the machine, which delays rounds but costs the server no CPU time.
		benchkit.Line("hello-cpu-"+strconv.Itoa(*subs)+"-sse", cpu[1].serverPerHello(), cpu[0].serverPerHello())
	}
	if *logins > 0 {
		quiet, loaded, _, err := compare(h, *dur, *rounds, srv.Cmd.Process.Pid, func() (func(), error) { return wrongLogins(srv.URL, *logins), nil })
		if err != nil {
			return fmt.Errorf("logins: %w", err)
		}
		benchkit.Line("hello-rate-"+strconv.Itoa(*logins)+"-wrong-logins", loaded, quiet)
	}
	return nil
}

// sseLoad opens n event streams (sse) and returns what stops them; it also prints the
// server's own count of its writes to the streams meanwhile, where it has one.
func sseLoad(url, token, acceptEncoding string, n int) (stop func(), err error) {
	stopReading, err := sse(url, token, acceptEncoding, n)
	if err != nil {
		return nil, err
	}
	const writes = "rpideploy_event_stream_writes_total"
	w0, t0 := metric(url, token, writes), time.Now()
	return func() {
		if w0 >= 0 {
			perSecond := (metric(url, token, writes) - w0) / time.Since(t0).Seconds()
			fmt.Fprintf(os.Stderr, "loadbench: event stream writes %.0f/s (%.2f/s per stream)\n", perSecond, perSecond/float64(n))
		}
		stopReading()
	}, nil
}

// metric reads one counter or gauge of the server's /metrics (-1: not there).
func metric(url, token, name string) float64 {
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// chromiumAcceptEncoding is what Chromium's EventSource sends (a dashboard).
const chromiumAcceptEncoding = "gzip, deflate, br, zstd"

// compare measures h's rate rounds times quiet and rounds times under the load that
// start starts (and its stop function ends), alternating, and returns the medians
// and the CPU time used in the quiet rounds and in the loaded ones. It prints the
// CPU time per hello, summed over the rounds of each kind, of
// the server (user and system: on loopback a socket write also runs the receiver's
// side of TCP) and of this process (the hellos' clients and the load's).
func compare(h *hellos, d time.Duration, rounds int, pid int, start func() (stop func(), err error)) (quiet, loaded float64, cpu [2]cpuUse, err error) {
	var q, l []float64
	var cq, cl cpuUse
	for range rounds {
		c0 := cpuNow(pid)
		rate, n := h.rate(d)
		cq.add(c0, cpuNow(pid), n)
		q = append(q, rate)
		stop, err := start()
		if err != nil {
			return 0, 0, cpu, err
		}
		fmt.Fprintln(os.Stderr, "loadbench: loaded round")
		c0 = cpuNow(pid)
		rate, n = h.rate(d)
		cl.add(c0, cpuNow(pid), n)
		l = append(l, rate)
		stop()
	}
	fmt.Fprintf(os.Stderr, "loadbench: hellos/s quiet %.0f loaded %.0f\n", q, l)
	fmt.Fprintf(os.Stderr, "loadbench: CPU per hello, quiet: %s; loaded: %s\n", cq, cl)
	return median(q), median(l), [2]cpuUse{cq, cl}, nil
}

// cpuUse sums CPU times over rounds.
type cpuUse struct {
	server, self [2]time.Duration // user, system
	hellos       int64
	writes       int64         // the server's write system calls (/proc/PID/io syscw)
	wrote        int64         // and the bytes they wrote (wchar)
	took         time.Duration // the rounds' length
}

// cpuSample is the CPU time used so far by the server and by this process, and the
// server's writes.
type cpuSample struct {
	server, self  [2]time.Duration
	writes, wrote int64
	at            time.Time
}

func cpuNow(pid int) cpuSample {
	var s cpuSample
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command's closing parenthesis; utime and stime are the
		// 12th and 13th of them, in clock ticks (USER_HZ, 100 on Linux).
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := bytes.Fields(b[i+1:])
			if len(f) > 12 {
				u, _ := strconv.ParseInt(string(f[11]), 10, 64)
				k, _ := strconv.ParseInt(string(f[12]), 10, 64)
				s.server = [2]time.Duration{time.Duration(u) * 10 * time.Millisecond, time.Duration(k) * 10 * time.Millisecond}
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for line := range bytes.Lines(b) {
			name, v, _ := bytes.Cut(bytes.TrimSpace(line), []byte(": "))
			n, _ := strconv.ParseInt(string(v), 10, 64)
			switch string(name) {
			case "syscw":
				s.writes = n
			case "wchar":
				s.wrote = n
			}
		}
	}
	s.at = time.Now()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = [2]time.Duration{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
	}
	return s
}

func (c *cpuUse) add(a, b cpuSample, hellos int64) {
	for i := range 2 {
		c.server[i] += b.server[i] - a.server[i]
		c.self[i] += b.self[i] - a.self[i]
	}
	c.hellos += hellos
	c.writes += b.writes - a.writes
	c.wrote += b.wrote - a.wrote
	c.took += b.at.Sub(a.at)
}

// serverPerHello is the server's CPU time (user and system) per hello, in µs.
func (c cpuUse) serverPerHello() float64 {
	if c.hellos == 0 {
		return 0
	}
	return float64((c.server[0] + c.server[1]).Microseconds()) / float64(c.hellos)
}

func (c cpuUse) String() string {
	per := func(d time.Duration) string {
		if c.hellos == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0fµs", float64(d.Microseconds())/float64(c.hellos))
	}
	return fmt.Sprintf("server user %s sys %s, loadbench user %s sys %s; server writes %.0f/s, %.0f bytes/hello",
		per(c.server[0]), per(c.server[1]), per(c.self[0]), per(c.self[1]),
		float64(c.writes)/c.took.Seconds(), float64(c.wrote)/float64(max(c.hellos, 1)))
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// hellos sends hellos, each from a new board, from workers goroutines.
type hellos struct {
	url     string
	workers int
	next    atomic.Int64
}

// rate sends hellos for d and returns how many were answered with a deployment per
// second, and in all. Each board then closes its deployment with a failed result
// (not counted).
func (h *hellos) rate(d time.Duration) (perSecond float64, n int64) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: h.workers}}
	defer hc.CloseIdleConnections()
	var done atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	t0 := time.Now()
	for range h.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if h.one(hc) {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(t0).Seconds(), done.Load()
}

func (h *hellos) one(hc *http.Client) bool {
	i := h.next.Add(1)
	serial := fmt.Sprintf("5eed%012x", i)
	b, _ := json.Marshal(agentapi.Hello{Serial: serial, MAC: fmt.Sprintf("2c:cf:67:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff),
		Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30}})
	resp, err := hc.Post(h.url+agentapi.PathHello, "application/json", bytes.NewReader(b))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		time.Sleep(10 * time.Millisecond)
		return false
	}
	var hr agentapi.HelloResponse
	json.NewDecoder(resp.Body).Decode(&hr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || hr.Deployment == nil {
		fmt.Fprintln(os.Stderr, "hello: HTTP", resp.StatusCode, hr.Action, hr.Reason)
		time.Sleep(10 * time.Millisecond)
		return false
	}
	rb, _ := json.Marshal(agentapi.Result{Serial: serial, Phase: agentapi.PhaseStreaming, Error: "bench"})
	req, _ := http.NewRequest(http.MethodPost, h.url+fmt.Sprintf(agentapi.PathResult, hr.Deployment.ID), bytes.NewReader(rb))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(agentapi.HeaderSecret, hr.Deployment.Secret)
	if resp, err = hc.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return true
}

// wrongLogins runs n clients that post wrong passwords until stop is called; each
// request comes from the next address of 127.1.0.0/16.
func wrongLogins(url string, n int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var addr atomic.Uint32
	var answered, refused atomic.Int64
	body := []byte(`{"user":"admin","password":"not-the-password"}`)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				a := addr.Add(1)
				d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 1, byte(a>>8), byte(a))}}
				hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v1/login", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					refused.Add(1)
				} else {
					answered.Add(1)
				}
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		fmt.Fprintf(os.Stderr, "loadbench: wrong logins: %d checked, %d refused (429)\n", answered.Load(), refused.Load())
	}
}
