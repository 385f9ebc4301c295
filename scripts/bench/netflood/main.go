// Command netflood measures what an HTTP connection flood costs rpi-deployd's boards
// (scripts/bench/70-netflood.sh runs it). One rpi-deployd with its default limits; 20
// boards say hello again and again and download the image, first with the network
// quiet (the baseline), then while 80 loopback addresses hold as many connections as
// they can get, up to 200 each (16 000 in all: a third idle keep-alive, a third with
// headers that never end, a third with bodies that never end) — the attack of issue 13,
// where 20 000 such connections held 20 000 descriptors and hello timed out.
//
// It prints "bench: NAME ours=X baseline=Y ratio=R" lines: ours under the flood, the
// baseline quiet, in the same run.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/scripts/bench/benchkit"
	"github.com/rpi-deploy/rpi-deploy/server/config"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "netflood:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin/rpi-deployd", "rpi-deployd binary")
	sources := flag.Int("sources", 80, "attacking loopback addresses (127.0.2.1 …)")
	perSource := flag.Int("per-source", 200, "connections each attacking address tries to hold")
	boards := flag.Int("boards", 20, "boards measured")
	rounds := flag.Int("rounds", 10, "hellos per board in each phase")
	flag.Parse()
	ctx := context.Background()

	work, err := os.MkdirTemp("", "netflood-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	img, err := benchkit.MakeImage(work, "flood", rand.Reader, 16<<20)
	if err != nil {
		return err
	}
	token := "bench-token-0123456789abcdef"
	// The measured boards all say hello from 127.0.0.1: the per-address deployment
	// limits (issue 13's other defences, measured by attackbench) are off, so that
	// this bench measures the connection limits alone.
	srv, err := benchkit.StartDeployd(*bin, filepath.Join(work, "data"), token, nil,
		append([]string{"--log-level", "error"}, config.NoSourceLimitsFlags...)...)
	if err != nil {
		return err
	}
	defer srv.Stop()
	url, pid := srv.URL, srv.Cmd.Process.Pid
	m, err := benchkit.Setup(ctx, url, token, img, "RXP2", 0)
	if err != nil {
		return err
	}

	measure(url, 1, 1, m) // warm up: page cache, SQLite connections
	quiet := measure(url, *boards, *rounds, m)
	qfds, qrss := procStats(pid)

	fl := flood(url, *sources, *perSource)
	defer fl.close()
	time.Sleep(2 * time.Second) // silent new connections become reclaimable after 1 s
	loud := measure(url, *boards, *rounds, m)
	lfds, lrss := procStats(pid)

	fmt.Printf("netflood: %d connections tried from %d addresses, %d kept open by the server, %d refused or closed, %d dial errors\n",
		fl.tried, *sources, fl.open(), fl.tried-fl.open()-fl.dialErrs, fl.dialErrs)
	if loud.errors > 0 || quiet.errors > 0 {
		fmt.Printf("netflood: board errors: %d quiet, %d under the flood (first: %v)\n", quiet.errors, loud.errors, loud.first)
	}
	benchkit.Line("httpflood-hello-p99-ms", loud.p99, quiet.p99)
	benchkit.Line("httpflood-download-MBps", loud.mbps, quiet.mbps)
	benchkit.Line("httpflood-server-fds", float64(lfds), float64(qfds))
	benchkit.Line("httpflood-server-rss-MiB", lrss, qrss)
	return nil
}

type result struct {
	p99, mbps float64
	errors    int
	first     error
}

// measure runs the boards from 127.0.0.1: each says hello rounds times, then all
// download the image at once.
func measure(url string, boards, rounds int, m *manifest.Manifest) result {
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: boards}}
	var mu sync.Mutex
	var lat []float64
	var r result
	fail := func(err error) {
		mu.Lock()
		r.errors++
		if r.first == nil {
			r.first = err
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for b := range boards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := agentapi.Hello{Serial: fmt.Sprintf("10000000ee%06x", b), MAC: fmt.Sprintf("2c:cf:67:ee:00:%02x", b),
				Model: "Raspberry Pi 5 Model B Rev 1.0", Revision: "d04170",
				Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30}, AgentVersion: "bench"}
			body, _ := json.Marshal(h)
			for range rounds {
				t0 := time.Now()
				resp, err := hc.Post(url+agentapi.PathHello, "application/json", bytes.NewReader(body))
				if err != nil {
					fail(err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail(fmt.Errorf("hello: %s", resp.Status))
					continue
				}
				mu.Lock()
				lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.p99 = benchkit.Percentile(lat, 99)
	t0 := time.Now()
	var total atomic.Int64
	for range boards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Get(url + "/images/" + m.Name + ".img.zst")
			if err != nil {
				fail(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != m.CompressedSize {
				fail(fmt.Errorf("download: %d of %d bytes", n, m.CompressedSize))
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	r.mbps = float64(total.Load()) / 1e6 / time.Since(t0).Seconds()
	return r
}

type flooder struct {
	mu              sync.Mutex
	conns           []net.Conn
	tried, dialErrs int
	closed          atomic.Int64
}

// flood opens the attacking connections, perSource from each of sources addresses,
// and notices when the server closes one.
func flood(url string, sources, perSource int) *flooder {
	f := &flooder{}
	reqs := []string{
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow:",
		"POST " + agentapi.PathHello + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
	}
	addr := strings.TrimPrefix(url, "http://")
	var wg sync.WaitGroup
	for s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 2, byte(1+s))}, Timeout: 2 * time.Second}
			for i := range perSource {
				c, err := d.Dial("tcp", addr)
				f.mu.Lock()
				f.tried++
				if err != nil {
					f.dialErrs++
					f.mu.Unlock()
					continue
				}
				f.conns = append(f.conns, c)
				f.mu.Unlock()
				c.Write([]byte(reqs[i%len(reqs)]))
				go func() { // read what comes; EOF or reset: the server closed it
					br := bufio.NewReader(c)
					for {
						if _, err := br.ReadString('\n'); err != nil {
							f.closed.Add(1)
							return
						}
					}
				}()
			}
		}()
	}
	wg.Wait()
	return f
}

func (f *flooder) open() int { return len(f.conns) - int(f.closed.Load()) }

func (f *flooder) close() {
	for _, c := range f.conns {
		c.Close()
	}
}

func procStats(pid int) (fds int, rssMiB float64) {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), benchkit.StatusMiB(pid, "VmRSS")
}
