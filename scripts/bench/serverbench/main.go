// Command serverbench measures rpi-deployd against plain baselines run side by side
// (scripts/bench/10-server.sh runs it):
//
//   - hello latency p50/p99 with 200 concurrent boards (each hello comes from a new
//     board and allocates a deployment, which the board then closes with a verified
//     result, as a fleet does) against a plain net/http handler that decodes the same
//     JSON and answers a fixed deployment;
//   - image download throughput from rpi-deployd against a plain Go file server
//     (http.FileServer, a separate process) serving the same file;
//   - the peak RSS (VmHWM) of each server process while 50 downloads run.
//
// It prints "bench: NAME ours=X baseline=Y ratio=R" lines.
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
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/scripts/bench/benchkit"
	"github.com/rpi-deploy/rpi-deploy/server/config"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "fileserve" {
		fileserve(os.Args[2:])
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "serverbench:", err)
		os.Exit(1)
	}
}

// fileserve is the baseline file server: http.FileServer over a directory.
func fileserve(args []string) {
	dir := args[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Printf("http://%s\n", ln.Addr())
	http.Serve(ln, http.FileServer(http.Dir(dir)))
}

func run() error {
	bin := flag.String("bin", "bin/rpi-deployd", "rpi-deployd binary")
	sizeMiB := flag.Int64("size", 512, "raw image size in MiB for the download test")
	boards := flag.Int("boards", 200, "concurrent boards for the hello test")
	hellos := flag.Int("hellos", 4000, "hellos in total (each from a new board)")
	downloads := flag.Int("downloads", 50, "concurrent downloads for the RSS test")
	flag.Parse()
	ctx := context.Background()

	work, err := os.MkdirTemp("", "serverbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// A packed image: half random (incompressible), half text-like.
	rnd, err := os.Open("/dev/urandom")
	if err != nil {
		return err
	}
	defer rnd.Close()
	img, err := benchkit.MakeImage(work, "bench", &halfText{rnd: rnd}, *sizeMiB<<20)
	if err != nil {
		return err
	}

	token := "bench-token-0123456789abcdef"
	// Every simulated board says hello from 127.0.0.1: the per-address limits are off.
	srv, err := benchkit.StartDeployd(*bin, filepath.Join(work, "data"), token, nil,
		append([]string{"--max-streams", "256", "--log-level", "warn"}, config.NoSourceLimitsFlags...)...)
	if err != nil {
		return err
	}
	defer srv.Stop()
	m, err := benchkit.Setup(ctx, srv.URL, token, img, "RXP2", 0)
	if err != nil {
		return err
	}

	// Hello latency.
	base := startBaselineHello(m)
	defer base.Close()
	bp50, bp99 := helloLatency(base.URL, *boards, *hellos, 0, m.SHA256)
	op50, op99 := helloLatency(srv.URL, *boards, *hellos, 1, m.SHA256)
	benchkit.Line("hello_p50_ms_200_boards", op50, bp50)
	benchkit.Line("hello_p99_ms_200_boards", op99, bp99)

	// Download throughput: the same file from both, 4 parallel clients, rounds
	// alternating, best of 5 each (the machine may be busy with other work).
	fs, err := benchkit.StartURL(exec.Command(os.Args[0], "fileserve", filepath.Dir(img)))
	if err != nil {
		return err
	}
	defer fs.Stop()
	ourURL := srv.URL + "/images/" + m.Name + ".img.zst"
	baseURL := fs.URL + "/" + filepath.Base(img)
	fetch(baseURL, 1) // warm the page cache
	var ours, theirs float64
	for range 5 {
		theirs = max(theirs, fetch(baseURL, 4))
		ours = max(ours, fetch(ourURL, 4))
	}
	benchkit.Line("image_download_MBps", ours, theirs)

	// Peak RSS with 50 downloads at once.
	fetch(baseURL, *downloads)
	fetch(ourURL, *downloads)
	benchkit.Line("peak_rss_MiB_50_downloads", benchkit.StatusMiB(srv.Cmd.Process.Pid, "VmHWM"), benchkit.StatusMiB(fs.Cmd.Process.Pid, "VmHWM"))
	return nil
}

// halfText reads alternately len(text) bytes from rnd and the text: an image half
// incompressible, half text-like.
type halfText struct {
	rnd io.Reader
	off int64
}

var text = bytes.Repeat([]byte("func main() { fmt.Println(\"rpi-deploy\") } // bench\n"), 1<<14)

func (h *halfText) Read(p []byte) (int, error) {
	k := h.off % int64(len(text))
	n := min(int64(len(p)), int64(len(text))-k)
	var err error
	var got int
	if (h.off/int64(len(text)))%2 == 0 {
		got, err = h.rnd.Read(p[:n])
	} else {
		got = copy(p, text[k:k+n])
	}
	h.off += int64(got)
	return got, err
}

// startBaselineHello answers hellos the cheapest way net/http can: decode, check the
// serial, answer a fixed deployment.
func startBaselineHello(m *manifest.Manifest) *httpServer {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	var mu sync.Mutex
	id := int64(0)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != agentapi.PathHello {
			var res agentapi.Result
			json.NewDecoder(r.Body).Decode(&res)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"state":"verified"}`))
			return
		}
		var hl agentapi.Hello
		if err := json.NewDecoder(r.Body).Decode(&hl); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if _, err := agentapi.NormalizeSerial(hl.Serial); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		id++
		n := id
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(agentapi.HelloResponse{Action: agentapi.ActionDeploy, Deployment: &agentapi.Deployment{
			ID: n, Hostname: "RXP2-BNCH-" + strings.ToUpper(agentapi.ShortSerial(hl.Serial)), Product: "RXP2", Venue: "BNCH",
			Image: agentapi.Image{Name: m.Name, SHA256: m.SHA256, Size: m.Size}}})
	})
	s := &httpServer{srv: &http.Server{Handler: h}, URL: "http://" + ln.Addr().String()}
	go s.srv.Serve(ln)
	return s
}

type httpServer struct {
	srv *http.Server
	URL string
}

func (s *httpServer) Close() { s.srv.Close() }

// helloLatency sends total hellos, each from a new board, from workers goroutines;
// each board then posts a verified result (not timed). It returns the hello p50 and
// p99 in milliseconds.
func helloLatency(url string, workers, total, run int, sha string) (p50, p99 float64) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	lat := make([]float64, total)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b, _ := json.Marshal(agentapi.Hello{Serial: fmt.Sprintf("%08x%08x", run+1, i), MAC: fmt.Sprintf("2c:cf:67:%02x:%02x:%02x", run, i>>8&0xff, i&0xff),
					Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30}})
				t := time.Now()
				resp, err := hc.Post(url+agentapi.PathHello, "application/json", bytes.NewReader(b))
				if err != nil {
					fmt.Fprintln(os.Stderr, "hello:", err)
					lat[i] = 1e9
					continue
				}
				var hr agentapi.HelloResponse
				json.NewDecoder(resp.Body).Decode(&hr)
				resp.Body.Close()
				lat[i] = float64(time.Since(t).Microseconds()) / 1000
				if resp.StatusCode != 200 || hr.Deployment == nil {
					fmt.Fprintln(os.Stderr, "hello: HTTP", resp.StatusCode, hr.Action, hr.Reason)
					continue
				}
				// A failure closes the deployment (a success needs the whole image downloaded).
				rb, _ := json.Marshal(agentapi.Result{Serial: fmt.Sprintf("%08x%08x", run+1, i), Phase: agentapi.PhaseStreaming, Error: "bench"})
				req, _ := http.NewRequest(http.MethodPost, url+fmt.Sprintf(agentapi.PathResult, hr.Deployment.ID), bytes.NewReader(rb))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(agentapi.HeaderSecret, hr.Deployment.Secret)
				resp, err = hc.Do(req)
				if err != nil {
					fmt.Fprintln(os.Stderr, "result:", err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for i := range total {
		next <- i
	}
	close(next)
	wg.Wait()
	return benchkit.Percentile(lat, 50), benchkit.Percentile(lat, 99)
}

// fetch downloads url with n clients at once and returns the total MB/s.
func fetch(url string, n int) float64 {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total int64
	t := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(url)
			if err != nil {
				fmt.Fprintln(os.Stderr, "get:", err)
				return
			}
			k, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			total += k
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(total) / time.Since(t).Seconds() / 1e6
}
