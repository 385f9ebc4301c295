// Command attackbench measures what a hostile host on the deploy network costs real
// boards: the p99 hello latency of 20 boards, each from its own loopback address
// (127.0.0.10–29) doing what the agent does (hello, download the image with the
// deployment secret, a streaming event, the verified result), while one host
// (127.0.0.2 and .3) runs the pool-drain attack (random serials, each followed by a
// failed result) and the slot-lockout attack (random hellos that never stream),
// against the same boards without the attack, in the same run. Rounds alternate
// quiet and attack so that other load on the machine hits both alike.
//
// It prints "bench: hello-under-attack ours=P99_MS baseline=P99_MS_QUIET ratio=R"
// and a few lines of counts. Everything goes to loopback only; the attack is bounded
// in requests and time.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/scripts/bench/benchkit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "attackbench:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin/rpi-deployd", "rpi-deployd binary")
	boards := flag.Int("boards", 20, "real boards (one loopback address each)")
	rounds := flag.Int("rounds", 4, "rounds of quiet then attack")
	cycles := flag.Int("cycles", 10, "deployments per board per round and mode")
	maxAttack := flag.Int64("max-attack", 200000, "attack requests at most in all")
	flag.Parse()
	ctx := context.Background()

	work, err := os.MkdirTemp("", "attackbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	img, err := benchkit.MakeImage(work, "attack", rand.Reader, 256<<10) // each cycle downloads it whole
	if err != nil {
		return err
	}
	b := make([]byte, 16)
	rand.Read(b)
	token := hex.EncodeToString(b)
	srv, err := benchkit.StartDeployd(*bin, filepath.Join(work, "data"), token, os.Stderr, "--log-level", "warn")
	if err != nil {
		return err
	}
	defer srv.Stop()
	m, err := benchkit.Setup(ctx, srv.URL, token, img, "KXP2", *boards**rounds**cycles*2+200)
	if err != nil {
		return err
	}

	fleet := make([]*board, *boards)
	for i := range fleet {
		fleet[i] = &board{n: i, hc: from(byte(10 + i)), url: srv.URL, sha: m.SHA256}
	}
	var quiet, attacked []float64
	var att attack
	for r := range *rounds {
		quiet = append(quiet, runBoards(fleet, r*2, *cycles)...)
		stop := att.start(srv.URL, *maxAttack)
		attacked = append(attacked, runBoards(fleet, r*2+1, *cycles)...)
		stop()
	}
	var failed int64
	for _, b := range fleet {
		failed += b.failed
	}
	benchkit.Line("hello-under-attack", benchkit.Percentile(attacked, 99), benchkit.Percentile(quiet, 99))
	benchkit.Line("hello-under-attack-p50", benchkit.Percentile(attacked, 50), benchkit.Percentile(quiet, 50))
	fmt.Printf("attack: %d hellos from the attacker (%d deployments, %d answered retry, %d given up or failed), %d failed results; real boards: %d hellos each mode, %d cycles failed\n",
		att.hellos.Load(), att.deploys.Load(), att.retries.Load(), att.gaveUp.Load(), att.results.Load(), len(quiet), failed)
	if failed > 0 {
		return fmt.Errorf("%d board cycles failed", failed)
	}
	return nil
}

// from is an HTTP client whose connections come from 127.0.0.n.
func from(n byte) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, n)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}}
}

type board struct {
	n      int
	hc     *http.Client
	url    string
	sha    string
	failed int64
}

// runBoards runs cycles deployments on every board at once and returns the hello
// latencies in milliseconds.
func runBoards(fleet []*board, round, cycles int) []float64 {
	var mu sync.Mutex
	var lat []float64
	var wg sync.WaitGroup
	for _, b := range fleet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range cycles {
				ms, err := b.cycle(fmt.Sprintf("b0%03x%04x%07x", b.n, round, k))
				if err != nil {
					fmt.Fprintf(os.Stderr, "board %d: %v\n", b.n, err)
					b.failed++
					continue
				}
				mu.Lock()
				lat = append(lat, ms...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat
}

// cycle is one deployment as the agent does it: hello (again after a retry), the
// first image bytes with the secret, a streaming event, the verified result.
func (b *board) cycle(serial string) ([]float64, error) {
	h := agentapi.Hello{Serial: serial, MAC: fmt.Sprintf("2c:cf:67:00:%02x:01", b.n), Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30}}
	var lat []float64
	var r agentapi.HelloResponse
	for try := 0; ; try++ {
		t := time.Now()
		if code, err := post(b.hc, b.url+agentapi.PathHello, "", h, &r); err != nil || code != 200 {
			return lat, fmt.Errorf("hello: %d %v", code, err)
		}
		lat = append(lat, float64(time.Since(t).Microseconds())/1000)
		if r.Deployment != nil {
			break
		}
		if try > 100 {
			return lat, fmt.Errorf("hello: still %s: %s", r.Action, r.Reason)
		}
		time.Sleep(100 * time.Millisecond) // the bench does not wait retry_after (10 s)
	}
	d := r.Deployment
	req, _ := http.NewRequest(http.MethodGet, d.Image.URL, nil)
	req.Header.Set(agentapi.HeaderSecret, d.Secret)
	resp, err := b.hc.Do(req)
	if err != nil {
		return lat, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || n != d.Image.CompressedSize {
		return lat, fmt.Errorf("image: %s, %d bytes, %v", resp.Status, n, err)
	}
	if code, err := post(b.hc, b.url+fmt.Sprintf(agentapi.PathEvents, d.ID), d.Secret, agentapi.Event{Phase: agentapi.PhaseStreaming, Bytes: n}, nil); err != nil || code != 200 {
		return lat, fmt.Errorf("event: %d %v", code, err)
	}
	res := agentapi.Result{Serial: serial, Success: true, SHA256: b.sha}
	if code, err := post(b.hc, b.url+fmt.Sprintf(agentapi.PathResult, d.ID), d.Secret, res, nil); err != nil || code != 200 {
		return lat, fmt.Errorf("result: %d %v", code, err)
	}
	return lat, nil
}

// attack runs the two attacks until stopped.
type attack struct {
	hellos, deploys, retries, results, gaveUp atomic.Int64
}

// start runs 16 pool-drain workers from 127.0.0.2 and 8 slot-lockout workers from
// 127.0.0.3 until the returned stop is called or max requests were sent in all.
func (a *attack) start(url string, max int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(hc *http.Client, fail bool) {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if a.hellos.Load()+a.results.Load() >= max {
				return
			}
			serial := randomSerial()
			var r agentapi.HelloResponse
			a.hellos.Add(1)
			if code, err := post(hc, url+agentapi.PathHello, "", agentapi.Hello{Serial: serial, MAC: "2c:cf:67:ee:ee:ee"}, &r); err != nil || code != 200 {
				a.gaveUp.Add(1)
				continue
			}
			if r.Deployment == nil {
				a.retries.Add(1)
				continue
			}
			a.deploys.Add(1)
			if fail {
				a.results.Add(1)
				post(hc, url+fmt.Sprintf(agentapi.PathResult, r.Deployment.ID), r.Deployment.Secret,
					agentapi.Result{Serial: serial, Phase: agentapi.PhaseStreaming, Error: "drain"}, nil)
			}
		}
	}
	// The drain host does not wait for slow answers: it gives up after 200 ms and
	// sends the next hello (a new connection), as an impatient flood would.
	drain, lock := from(2), from(3)
	drain.Timeout = 200 * time.Millisecond
	for range 16 {
		wg.Add(1)
		go worker(drain, true)
	}
	for range 8 {
		wg.Add(1)
		go worker(lock, false)
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

func randomSerial() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func post(hc *http.Client, url, secret string, v, out any) (int, error) {
	body, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set(agentapi.HeaderSecret, secret)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode == 200 {
		return resp.StatusCode, json.Unmarshal(data, out)
	}
	return resp.StatusCode, nil
}
