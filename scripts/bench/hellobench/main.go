// Command hellobench measures rpi-deployd's hello under a fleet's burst against a
// bare net/http handler that decodes the same JSON, both as separate processes on
// loopback, in the same run (scripts/bench/12-hello.sh runs it):
//
//   - hello-p50-1000, hello-p99-1000: bursts of -boards hellos sent at once, each
//     from a new board on its own connection, each opening a new deployment;
//   - hello-p50-1000-at-55k, hello-p99-1000-at-55k: the same with -seed open
//     deployments already in the database (written straight through the store
//     before the server starts, not through the API) and --max-streams 100000;
//   - hello-cpu-ms-per-hello-1000[-at-55k]: the CPU time (user and system) each
//     server process spent per hello in those bursts.
//
// The bare handler and rpi-deployd take turns, burst by burst. With -profile DIR
// the second scenario runs once more while rpi-deployd's CPU profile is taken
// through its --pprof listener, written to DIR/hello-at-SEED.pprof (read it with
// go tool pprof). It prints "bench: NAME ours=X baseline=Y ratio=R" lines.
package main

import (
	"bytes"
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	seed       int
	profileDir string
}

func run() error {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/rpi-deployd", "rpi-deployd binary")
	flag.IntVar(&o.boards, "boards", 1000, "hellos in one burst, all sent at once")
	flag.IntVar(&o.bursts, "bursts", 3, "bursts per server and scenario")
	flag.IntVar(&o.seed, "seed", 55000, "open deployments in the database for the second scenario")
	flag.StringVar(&o.profileDir, "profile", "", "write rpi-deployd's CPU profile under the second scenario to this directory")
	flag.Parse()

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

	suffix := fmt.Sprintf("-%d", o.boards)
	for i, seed := range []int{0, o.seed} {
		name := suffix
		if seed > 0 {
			name += fmt.Sprintf("-at-%dk", seed/1000)
		}
		r, err := scenario(o, work, img, base, i, seed)
		if err != nil {
			return err
		}
		benchkit.Line("hello-p50"+name, benchkit.Percentile(r.ours, 50), benchkit.Percentile(r.bare, 50))
		benchkit.Line("hello-p99"+name, benchkit.Percentile(r.ours, 99), benchkit.Percentile(r.bare, 99))
		// CPU time of the server process per hello: what the latency is made of when
		// the cores are free, and steadier than latency when they are not.
		hellos := float64(o.bursts * o.boards)
		benchkit.Line("hello-cpu-ms-per-hello"+name, r.oursCPU/hellos, r.bareCPU/hellos)
	}
	return nil
}

// result is what a scenario measured: every hello's latency in milliseconds and
// the CPU time each server process spent in the bursts, in milliseconds.
type result struct {
	ours, bare       []float64
	oursCPU, bareCPU float64
}

// scenario starts rpi-deployd on a fresh data directory holding seed open
// deployments, and sends o.bursts bursts to it and to the bare server in turn.
func scenario(o options, work, img string, base *benchkit.Proc, n, seed int) (r result, err error) {
	data := filepath.Join(work, fmt.Sprintf("data%d", n))
	if seed > 0 {
		if err := seedOpen(data, seed); err != nil {
			return r, err
		}
	}
	args := serveArgs()
	pprofAddr := ""
	if o.profileDir != "" && seed > 0 {
		if pprofAddr, err = freePort(); err != nil {
			return r, err
		}
		args = append(args, "--pprof", pprofAddr)
	}
	srv, err := benchkit.StartDeployd(o.bin, data, benchToken, os.Stderr, args...)
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	if _, err := benchkit.Setup(context.Background(), srv.URL, benchToken, img, "RXP2", 0); err != nil {
		return r, err
	}
	for b := range o.bursts {
		c := cpuMS(base.Cmd.Process.Pid)
		r.bare = append(r.bare, burst([]string{base.URL}, o.boards, n, 2*b)...)
		r.bareCPU += cpuMS(base.Cmd.Process.Pid) - c
		c = cpuMS(srv.Cmd.Process.Pid)
		r.ours = append(r.ours, burst([]string{srv.URL}, o.boards, n, 2*b+1)...)
		r.oursCPU += cpuMS(srv.Cmd.Process.Pid) - c
	}
	if pprofAddr != "" {
		out := filepath.Join(o.profileDir, fmt.Sprintf("hello-at-%d.pprof", seed))
		if err := profile(pprofAddr, out, func(round int) { burst([]string{srv.URL}, o.boards, n, 2*o.bursts+round) }); err != nil {
			return r, err
		}
		fmt.Fprintln(os.Stderr, "hellobench: CPU profile in", out)
	}
	return r, nil
}

// benchToken is the admin token of the benched servers.
const benchToken = "bench-token-0123456789abcdef"

// serveArgs are the serve flags of a benched rpi-deployd: no cap on streams or
// connections, warnings only, and, since every simulated board says hello from
// 127.0.0.1, no per-address limits.
func serveArgs() []string {
	args := []string{"--max-streams", "100000", "--log-level", "warn",
		"--http-max-conns", "8192", "--http-max-conns-per-source", "8192"}
	return append(args, config.NoSourceLimitsFlags...)
}

// cpuMS is the user and system CPU time of process pid so far in milliseconds
// (fields 14 and 15 of /proc/PID/stat, in clock ticks of 10 ms); 0 when unreadable.
func cpuMS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after it do not.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) * 10
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
// data, half of them streaming and active, half just said hello: all hold a
// stream slot. It goes through the store (which creates and migrates the file) in
// one transaction of set-based inserts, not through the API.
func seedOpen(data string, count int) error {
	ctx := context.Background()
	st, err := store.Open(ctx, data)
	if err != nil {
		return err
	}
	defer st.Close()
	now := store.FormatTime(time.Now())
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
			CASE x % 2 WHEN 0 THEN 'streaming' ELSE 'hello' END, 1048576, ?, ?,
			CASE x % 2 WHEN 0 THEN ? END, printf('10.%d.%d.%d', x / 65536, x / 256 % 256, x % 256), printf('%064x', x) FROM n`,
		count, batch, now, now, now); err != nil {
		return fmt.Errorf("seed deployments: %w", err)
	}
	return tx.Commit()
}

// burst sends boards hellos at once, each from a new board (serials made of
// scenario, round and index) on a connection of its own, board i to urls[i %
// len(urls)], and returns their latencies in milliseconds; a failed hello counts
// as 10 s and is reported.
func burst(urls []string, boards, scenario, round int) []float64 {
	tr := &http.Transport{MaxIdleConnsPerHost: boards}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	lat := make([]float64, boards)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range boards {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			serial := fmt.Sprintf("b%03x%04x%08x", scenario, round, i)
			body, _ := json.Marshal(agentapi.Hello{Serial: serial, MAC: fmt.Sprintf("2c:cf:67:%02x:%02x:%02x", round, i>>8&0xff, i&0xff),
				Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: "d04170", AgentVersion: "bench",
				Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30, CID: "0353445345333247"}})
			ready.Done()
			<-start
			t := time.Now()
			lat[i] = 10000
			resp, err := hc.Post(urls[i%len(urls)]+agentapi.PathHello, "application/json", bytes.NewReader(body))
			if err != nil {
				fmt.Fprintln(os.Stderr, "hello:", err)
				return
			}
			var hr agentapi.HelloResponse
			err = json.NewDecoder(resp.Body).Decode(&hr)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || hr.Deployment == nil {
				fmt.Fprintln(os.Stderr, "hello: HTTP", resp.StatusCode, hr.Action, hr.Reason, err)
				return
			}
			lat[i] = float64(time.Since(t).Microseconds()) / 1000
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return lat
}
