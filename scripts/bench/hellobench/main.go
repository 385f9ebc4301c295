// Command hellobench measures rpi-deployd's hello under a fleet's burst against a
// bare net/http handler that decodes the same JSON, both as separate processes on
// loopback, in the same run (scripts/bench/12-hello.sh runs it):
//
//   - hello-p50-1000, hello-p99-1000: bursts of -boards hellos sent at once, each
//     from a new board on its own connection, each opening a new deployment;
//   - hello-p50-1000-at-55k, hello-p99-1000-at-55k: the same with -seed open
//     deployments already in the database (written straight through the store
//     before the server starts, not through the API) and --max-streams 100000
//     (-max-streams); with -lapsed N, N of the seeded deployments hold no stream
//     slot (their claim or activity lapsed, seedOpen), so that a seed past
//     -max-streams measures hellos that count the slots and are still admitted;
//   - hello-cpu-ms-per-hello-1000[-at-55k]: the CPU time (user and system) each
//     server process spent per hello in those bursts.
//
// Both scenarios' rpi-deployd run at once; in each round every scenario takes a
// burst to the bare server and then one to its own server (which scenario goes
// first alternates), after -warmup such unmeasured rounds, so that the bare
// server and the load generator are as warm for one scenario as for the other,
// and every server is measured warm. With -profile DIR
// each scenario runs once more while rpi-deployd's CPU profile is taken through
// its --pprof listener, written to DIR/hello-at-SEED.pprof (SEED 0: the empty
// database; read it with go tool pprof). It prints "bench: NAME ours=X baseline=Y ratio=R" lines.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/scripts/bench/benchkit"
	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare" {
		bare()
		return
	}
	run := run
	if len(os.Args) > 1 && os.Args[1] == "pg" {
		run = runPG
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hellobench:", err)
		os.Exit(1)
	}
}

// bare is the baseline: net/http, decode the hello, check the serial, answer a
// fixed deployment with a counter for its ID. It prints its URL on stdout.
func bare() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Printf("http://%s\n", ln.Addr())
	var id atomic.Int64
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hl agentapi.Hello
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&hl); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := agentapi.NormalizeSerial(hl.Serial); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(agentapi.HelloResponse{Action: agentapi.ActionDeploy, Deployment: &agentapi.Deployment{
			ID: id.Add(1), Hostname: "RXP2-BNCH-" + strings.ToUpper(agentapi.ShortSerial(hl.Serial)), Product: "RXP2", Venue: "BNCH",
			Secret: rand.Text(), Image: agentapi.Image{Name: "bench", URL: "/images/bench.img.zst", SHA256: strings.Repeat("0", 64)}}})
	}))
}

type options struct {
	bin        string
	boards     int
	bursts     int
	warmup     int
	seed       int
	lapsed     int
	maxStreams int
	profileDir string
}

// parseFlags reads the command line's options.
func parseFlags() options {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/rpi-deployd", "rpi-deployd binary")
	flag.IntVar(&o.boards, "boards", 1000, "hellos in one burst, all sent at once")
	flag.IntVar(&o.bursts, "bursts", 3, "bursts per server and scenario")
	flag.IntVar(&o.warmup, "warmup", 3, "unmeasured bursts per server and scenario before the measured ones")
	flag.IntVar(&o.seed, "seed", 55000, "open deployments in the database for the second scenario")
	flag.IntVar(&o.lapsed, "lapsed", 0, "of the seeded deployments, how many hold no stream slot (their claim or activity lapsed)")
	flag.IntVar(&o.maxStreams, "max-streams", 100000, "rpi-deployd's --max-streams")
	flag.StringVar(&o.profileDir, "profile", "", "write rpi-deployd's CPU profile under each scenario to this directory")
	flag.Parse()
	return o
}

func run() error {
	o := parseFlags()

	work, err := os.MkdirTemp("", "hellobench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	img, err := benchkit.MakeImage(work, "bench", io.LimitReader(rand.Reader, 1<<20), 1<<20)
	if err != nil {
		return err
	}
	base, err := benchkit.StartURL(exec.Command(os.Args[0], "bare"))
	if err != nil {
		return err
	}
	// Killed, not interrupted: a shell's background job starts with SIGINT ignored.
	defer func() { base.Cmd.Process.Kill(); base.Cmd.Wait() }()

	// Both scenarios' servers run at once and take their bursts in the same rounds,
	// each right after a burst to the bare server: the bare server and this load
	// generator, started once, grow warmer from burst to burst (the bare handler's
	// p99 fell from 113 to 90 ms between a first and a second scenario run one
	// after the other), and a scenario run second was judged against a faster
	// baseline than one run first.
	scs := []*scenarioRun{{seed: 0, name: fmt.Sprintf("-%d", o.boards)}}
	if o.seed > 0 {
		scs = append(scs, &scenarioRun{seed: o.seed, name: fmt.Sprintf("-%d-at-%dk", o.boards, o.seed/1000)})
	}
	for i, sc := range scs {
		sc.n = i
		err := sc.start(o, work, img)
		if sc.srv != nil {
			defer sc.srv.Stop()
		}
		if err != nil {
			return err
		}
	}
	rounds(o, base, scs)
	for _, sc := range scs {
		sc.report(o)
	}
	if o.profileDir == "" {
		return nil
	}
	// Each scenario once more, alone, while rpi-deployd's CPU profile is taken.
	for _, sc := range scs {
		if err := sc.profile(o); err != nil {
			return err
		}
	}
	return nil
}

// rounds sends the warm-up rounds and then the measured ones to every scenario.
func rounds(o options, base *benchkit.Proc, scs []*scenarioRun) {
	// Unmeasured rounds first: the first bursts a process answers find it cold. Its
	// memory is fresh, and each page it touches for the first time is a page
	// fault charged to whatever touched it (goroutine stacks, connection
	// buffers, heap spans, SQLite's page cache, the event bus's ring): rpi-deployd's
	// resident memory grows from ~30 MB to ~95 MB over its first three bursts of
	// 1000 (10 minor faults per hello in the first, 1–2 from the fourth on), and
	// its CPU per hello falls from 0.40 ms to 0.29 and then 0.22–0.26, where it
	// stays; the bare handler needs one burst (docs/operations.md §10, ninth round). A deploy
	// server answers fleets for days: -warmup 3 measures both where they stay.
	// Each warm-up burst's figures still go to stderr, with its faults, so the
	// cold start stays in sight.
	warm := 2 * o.bursts
	for w := range o.warmup {
		for _, sc := range scs {
			sc.round(o, base, fmt.Sprintf("warm-up %d", w+1), warm+2*w, false)
		}
	}
	for b := range o.bursts {
		// Which scenario goes first alternates from round to round.
		for k := range scs {
			sc := scs[(b+k)%len(scs)]
			sc.round(o, base, fmt.Sprintf("burst %d", b+1), 2*b, true)
		}
	}
}

// profile sends the scenario's rpi-deployd bursts for 20 s while its CPU profile is
// taken into -profile's directory.
func (sc *scenarioRun) profile(o options) error {
	out := filepath.Join(o.profileDir, fmt.Sprintf("hello-at-%d.pprof", sc.seed))
	if err := profile(sc.pprofAddr, out, func(round int) {
		burst([]string{sc.srv.URL}, o.boards, sc.n, 2*(o.bursts+o.warmup)+round)
	}); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "hellobench: CPU profile in", out)
	return nil
}

// result is what a scenario measured: every hello's latency in milliseconds and
// the CPU time each server process spent in the bursts, in milliseconds.
type result struct {
	ours, bare       []float64
	oursCPU, bareCPU float64
	// oursGen and bareGen are the load generator's own CPU time in the bursts
	// to each server, in milliseconds.
	oursGen, bareGen float64
	// oursNet and bareNet are the kernel's TCP counters in those bursts.
	oursNet, bareNet tcpCounters
}

// scenarioRun is one scenario: its rpi-deployd on a data directory of its own
// holding seed open deployments, and what its rounds measured.
type scenarioRun struct {
	n, seed   int
	name      string
	srv       *benchkit.Proc
	pprofAddr string
	r         result
}

// start seeds the scenario's data directory and starts its rpi-deployd with the
// bench's image and batch set up.
func (sc *scenarioRun) start(o options, work, img string) (err error) {
	data := filepath.Join(work, fmt.Sprintf("data%d", sc.n))
	if sc.seed > 0 {
		if err := seedOpen(data, sc.seed, o.lapsed); err != nil {
			return err
		}
	}
	args := serveArgs(o.maxStreams)
	if o.profileDir != "" {
		if sc.pprofAddr, err = freePort(); err != nil {
			return err
		}
		args = append(args, "--pprof", sc.pprofAddr)
	}
	if sc.srv, err = benchkit.StartDeployd(o.bin, data, benchToken, os.Stderr, args...); err != nil {
		return err
	}
	sc.r.bareNet, sc.r.oursNet = tcpCounters{}, tcpCounters{}
	_, err = benchkit.Setup(context.Background(), sc.srv.URL, benchToken, img, "RXP2", 0)
	return err
}

// report prints the scenario's bench lines, and on stderr what else shared them.
func (sc *scenarioRun) report(o options) {
	r := &sc.r
	benchkit.Line("hello-p50"+sc.name, benchkit.Percentile(r.ours, 50), benchkit.Percentile(r.bare, 50))
	benchkit.Line("hello-p99"+sc.name, benchkit.Percentile(r.ours, 99), benchkit.Percentile(r.bare, 99))
	// CPU time of the server process per hello: what the latency is made of when
	// the cores are free, and steadier than latency when they are not.
	hellos := float64(o.bursts * o.boards)
	benchkit.Line("hello-cpu-ms-per-hello"+sc.name, r.oursCPU/hellos, r.bareCPU/hellos)
	// What else shares the measurement: the load generator's own CPU, and
	// whether the kernel dropped or retransmitted connection attempts (a
	// dropped SYN costs a 1 s retransmit, whatever the handler).
	fmt.Fprintf(os.Stderr, "hellobench: %s: load generator CPU per hello %.3f ms (rpi-deployd bursts) %.3f ms (bare bursts); kernel in the bursts (whole network namespace): rpi-deployd %s; bare %s\n",
		strings.TrimPrefix(sc.name, "-"), r.oursGen/hellos, r.bareGen/hellos, r.oursNet, r.bareNet)
}

// round sends a burst to the bare server and then one to the scenario's, as
// round r of the scenario's hellos (r and r+1 name their boards), and prints what
// each cost under label; measured, it also counts into the scenario's result.
func (sc *scenarioRun) round(o options, base *benchkit.Proc, label string, r int, measured bool) {
	bare := measureBurst(base, o.boards, sc.n, r)
	ours := measureBurst(sc.srv, o.boards, sc.n, r+1)
	n := float64(o.boards)
	fmt.Fprintf(os.Stderr, "hellobench: seed %d %s: rpi-deployd p99 %.0f ms, %.3f ms CPU and %.1f page faults per hello, %.0f MB resident; bare p99 %.0f ms, %.3f ms, %.1f faults\n",
		sc.seed, label, benchkit.Percentile(ours.lat, 99), ours.proc.cpuMS/n, ours.proc.faults/n, ours.proc.rssMB,
		benchkit.Percentile(bare.lat, 99), bare.proc.cpuMS/n, bare.proc.faults/n)
	if !measured {
		return
	}
	res := &sc.r
	res.bare, res.bareCPU, res.bareGen = append(res.bare, bare.lat...), res.bareCPU+bare.proc.cpuMS, res.bareGen+bare.gen
	res.bareNet.add(bare.netAfter, bare.netBefore)
	res.ours, res.oursCPU, res.oursGen = append(res.ours, ours.lat...), res.oursCPU+ours.proc.cpuMS, res.oursGen+ours.gen
	res.oursNet.add(ours.netAfter, ours.netBefore)
}

// burstCost is what one burst to one server measured: every hello's latency in
// milliseconds, the server process's counters' growth (procCounters.since), the
// load generator's own CPU time in milliseconds, and the kernel's TCP counters
// before and after.
type burstCost struct {
	lat                 []float64
	proc                procCounters
	gen                 float64
	netBefore, netAfter tcpCounters
}

// measureBurst sends p a burst of boards hellos, as round of the scenario's.
func measureBurst(p *benchkit.Proc, boards, scenario, round int) burstCost {
	pid := p.Cmd.Process.Pid
	c, g, k := readProc(pid), selfCPUMS(), readTCPCounters()
	lat := burst([]string{p.URL}, boards, scenario, round)
	return burstCost{lat: lat, proc: readProc(pid).since(c), gen: selfCPUMS() - g, netBefore: k, netAfter: readTCPCounters()}
}

// benchToken is the admin token of the benched servers.
const benchToken = "bench-token-0123456789abcdef"

// serveArgs are the serve flags of a benched rpi-deployd: streams capped at
// maxStreams (the bench's default, 100 000, is no cap for its bursts), no cap on
// connections, warnings only, and, since every simulated board says hello from
// 127.0.0.1, no per-address limits.
func serveArgs(maxStreams int) []string {
	args := []string{"--max-streams", strconv.Itoa(maxStreams), "--log-level", "warn",
		"--http-max-conns", "8192", "--http-max-conns-per-source", "8192"}
	return append(args, config.NoSourceLimitsFlags...)
}

// procCounters are a process's counters at one moment, from /proc/PID/stat: its
// user and system CPU time in milliseconds (fields 14 and 15, in clock ticks of
// 10 ms), its minor page faults (field 10) and its resident memory in MB (field
// 24, in pages). All zero when unreadable.
type procCounters struct {
	cpuMS, faults, rssMB float64
}

func readProc(pid int) procCounters {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCounters{}
	}
	// The command name (field 2) may hold spaces; the fields after it do not:
	// f[0] is field 3.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 22 {
		return procCounters{}
	}
	num := func(field int) float64 {
		v, _ := strconv.ParseFloat(f[field-3], 64)
		return v
	}
	return procCounters{cpuMS: (num(14) + num(15)) * 10, faults: num(10), rssMB: num(24) * float64(os.Getpagesize()) / (1 << 20)}
}

// since is the growth of the counters from before; the resident memory is now's.
func (p procCounters) since(before procCounters) procCounters {
	return procCounters{cpuMS: p.cpuMS - before.cpuMS, faults: p.faults - before.faults, rssMB: p.rssMB}
}

// selfCPUMS is this process's user and system CPU time so far in milliseconds.
func selfCPUMS() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

// tcpCounters are the kernel's TCP counters that tell a connection attempt was
// dropped or retransmitted: TcpExt ListenOverflows and ListenDrops (a full
// accept queue), TCPSynRetrans (SYNs sent again, after 1 s, 3 s, …) and
// TCPReqQFullDrop (a full SYN queue), from /proc/net/netstat.
type tcpCounters map[string]int64

var tcpCounterNames = []string{"ListenOverflows", "ListenDrops", "TCPSynRetrans", "TCPReqQFullDrop"}

// readTCPCounters reads tcpCounters now; missing ones are absent.
func readTCPCounters() tcpCounters {
	c := tcpCounters{}
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return c
	}
	// Lines come in pairs: "TcpExt: Name1 Name2 …" then "TcpExt: v1 v2 …".
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) || values[0] != "TcpExt:" {
			continue
		}
		for j, n := range names[1:] {
			if slices.Contains(tcpCounterNames, n) {
				c[n], _ = strconv.ParseInt(values[j+1], 10, 64)
			}
		}
		break
	}
	return c
}

// add adds the counters' growth from before to after.
func (c tcpCounters) add(after, before tcpCounters) {
	for n, v := range after {
		c[n] += v - before[n]
	}
}

func (c tcpCounters) String() string {
	var s []string
	for _, n := range tcpCounterNames {
		s = append(s, fmt.Sprintf("%s=%d", n, c[n]))
	}
	return strings.Join(s, " ")
}

// freePort is a loopback address with a port free at the moment.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// profile takes a 20 s CPU profile from the pprof listener at addr into out while
// it calls load with rounds 0, 1, … (at least once).
func profile(addr, out string, load func(round int)) error {
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=20")
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(out)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		done <- errors.Join(err, f.Close())
	}()
	for round := 0; ; round++ {
		load(round)
		select {
		case err := <-done:
			return err
		default:
		}
	}
}

// seedOpen writes count open deployments (and their boards) into the database in
// data, half of them streaming and active, half just said hello: all but the
// first lapsed hold a stream slot (those said hello 5 minutes ago and, when
// streaming, were last active an hour ago: past the claim window and stale-after,
// not yet closed by the claim timeout or abandon-after). It goes through the store (which creates and migrates the file) in
// one transaction of set-based inserts, not through the API.
func seedOpen(data string, count, lapsed int) error {
	ctx := context.Background()
	st, err := store.Open(ctx, data)
	if err != nil {
		return err
	}
	defer st.Close()
	// Lapsed: said hello 5 minutes ago (past the claim window, 2 minutes, not yet
	// the claim timeout, 10, that closes them), last active an hour ago when
	// streaming (past stale-after, 15 minutes, not yet abandon-after, 2 hours).
	t := time.Now()
	now, claimed, active := store.FormatTime(t), store.FormatTime(t.Add(-5*time.Minute)), store.FormatTime(t.Add(-time.Hour))
	tx, err := st.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// The seeded deployments belong to a paused batch of venue SEED (which takes no
	// hellos), its in_progress counter kept as AddDeployment keeps it.
	if _, err := tx.ExecContext(ctx, `INSERT INTO venues (code, name, created_at) VALUES ('SEED', 'seeded', ?)`, now); err != nil {
		return fmt.Errorf("seed venue: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO batches (venue, product, state, in_progress, created_at, updated_at)
		VALUES ('SEED', 'RXP2', 'paused', ?, ?, ?)`, count, now, now)
	if err != nil {
		return fmt.Errorf("seed batch: %w", err)
	}
	batch, err := res.LastInsertId()
	if err != nil {
		return err
	}
	const series = `WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) `
	if _, err := tx.ExecContext(ctx, series+`INSERT INTO boards (serial, mac, hostname, last_event, first_seen, last_seen)
		SELECT printf('5eed%012x', x), '2c:cf:67:00:00:00', printf('RXP2-SEED-%08X', x), 'hello', ?, ? FROM n`,
		count, now, now); err != nil {
		return fmt.Errorf("seed boards: %w", err)
	}
	if _, err := tx.ExecContext(ctx, series+`INSERT INTO deployments (serial, batch_id, venue, product, hostname, image, state, phase,
		total, started_at, updated_at, streamed_at, source, secret_sha256)
		SELECT printf('5eed%012x', x), ?, 'SEED', 'RXP2', printf('RXP2-SEED-%08X', x), 'bench', 'open',
			CASE x % 2 WHEN 0 THEN 'streaming' ELSE 'hello' END, 1048576, CASE WHEN x <= ? THEN ? ELSE ? END,
			CASE WHEN x > ? THEN ? WHEN x % 2 = 0 THEN ? ELSE ? END, CASE x % 2 WHEN 0 THEN ? END,
			printf('10.%d.%d.%d', x / 65536, x / 256 % 256, x % 256), printf('%064x', x) FROM n`,
		count, batch, lapsed, claimed, now, lapsed, now, active, claimed, now); err != nil {
		return fmt.Errorf("seed deployments: %w", err)
	}
	return tx.Commit()
}

// burst sends boards hellos at once, each from a new board (serials made of
// scenario, round and index; boards < 2^20) on a connection of its own, board i to urls[i %
// len(urls)], and returns their latencies in milliseconds; a failed hello counts
// as 10 s and is reported.
//
// Each hello is what a booting board's agent sends: a new TCP connection, one
// HTTP/1.1 POST, the answer read to its end. The request bytes are made before
// the burst starts and the answers are decoded and checked after it ends: the
// load generator shares the cores with the server under test (on a deploy
// network a thousand boards bring their own), so it does as little as it can
// while the servers work. net/http's client spent 0.15–0.43 ms of CPU per hello
// here (a dial goroutine and two loops per connection), as much as the bare
// handler's whole hello.
func burst(urls []string, boards, scenario, round int) []float64 {
	lat := make([]float64, boards)
	answers := make([]*http.Response, boards)
	bodies := make([][]byte, boards)
	errs := make([]error, boards)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range boards {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			host := strings.TrimPrefix(urls[i%len(urls)], "http://")
			// The low 32 bits (the board's short serial, hence its serial name) differ
			// from board to board across rounds too, as those of a fleet's boards do:
			// with the index alone there, every board after the first round found its
			// short name taken and was named (and checked) by 12 hex digits.
			serial := fmt.Sprintf("b%03x%04x%08x", scenario, round, uint32(round)<<20|uint32(i))
			body, _ := json.Marshal(agentapi.Hello{Serial: serial, MAC: fmt.Sprintf("2c:cf:67:%02x:%02x:%02x", round, i>>8&0xff, i&0xff),
				Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: "d04170", AgentVersion: "bench",
				Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30, CID: "0353445345333247"}})
			req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hellobench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				agentapi.PathHello, host, len(body), body)
			ready.Done()
			<-start
			t := time.Now()
			answers[i], bodies[i], errs[i] = post(host, req)
			lat[i] = float64(time.Since(t).Microseconds()) / 1000
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	for i := range boards {
		if err := checkHello(answers[i], bodies[i], errs[i]); err != nil {
			fmt.Fprintln(os.Stderr, "hello:", err)
			lat[i] = 10000
		}
	}
	return lat
}

// post writes req, a whole HTTP/1.1 request, on a new connection to host and
// reads the answer to its end.
func post(host string, req []byte) (*http.Response, []byte, error) {
	c, err := net.DialTimeout("tcp", host, time.Minute)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write(req); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// checkHello is nil when a hello was answered 200 with a deployment.
func checkHello(resp *http.Response, body []byte, err error) error {
	if err != nil {
		return err
	}
	var hr agentapi.HelloResponse
	if err := json.Unmarshal(body, &hr); err != nil || resp.StatusCode != http.StatusOK || hr.Deployment == nil {
		return fmt.Errorf("HTTP %d %s %s %v", resp.StatusCode, hr.Action, hr.Reason, err)
	}
	return nil
}
