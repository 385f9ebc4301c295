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
	"bufio"
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/push"
	"github.com/rpi-deploy/rpi-deploy/server/client"
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
	img, err := makeImage(work, *sizeMiB<<20)
	if err != nil {
		return err
	}
	m, err := manifest.Load(manifest.PathFor(img))
	if err != nil {
		return err
	}

	token := "bench-token-0123456789abcdef"
	srv, err := startProc(exec.Command(*bin, "serve", "--data", filepath.Join(work, "data"), "--listen", "127.0.0.1:0",
		"--max-streams", "256", "--log-level", "warn"), "rpi-deployd: listening on ", token)
	if err != nil {
		return err
	}
	defer srv.stop()
	c := client.New(srv.url, token)
	// The bench image is raw data without partitions, so no first-boot mechanism:
	// the server accepts it only with the explicit override.
	if err := push.Push(ctx, push.Options{Server: srv.url, Token: token, Image: img, AllowNoFirstBoot: true}); err != nil {
		return err
	}
	for _, call := range []struct {
		path string
		body any
	}{
		{"/api/v1/images/" + m.Name + "/activate", map[string]any{"product": "RXP2", "allow_no_first_boot": true}},
		{"/api/v1/venues", map[string]string{"code": "BNCH", "name": "bench"}},
		{"/api/v1/batches", map[string]any{"venue": "BNCH", "product": "RXP2", "count": 0, "allow_no_first_boot": true}},
	} {
		if err := c.Post(ctx, call.path, call.body, nil); err != nil {
			return fmt.Errorf("%s: %w", call.path, err)
		}
	}

	// Hello latency.
	base := startBaselineHello(m)
	defer base.Close()
	bp50, bp99 := helloLatency(base.URL, *boards, *hellos, 0, m.SHA256)
	op50, op99 := helloLatency(srv.url, *boards, *hellos, 1, m.SHA256)
	line("hello_p50_ms_200_boards", op50, bp50)
	line("hello_p99_ms_200_boards", op99, bp99)

	// Download throughput: the same file from both, 4 parallel clients, rounds
	// alternating, best of 5 each (the machine may be busy with other work).
	fs, err := startProc(exec.Command(os.Args[0], "fileserve", filepath.Dir(img)), "", "")
	if err != nil {
		return err
	}
	defer fs.stop()
	ourURL := srv.url + "/images/" + m.Name + ".img.zst"
	baseURL := fs.url + "/" + filepath.Base(img)
	fetch(baseURL, 1) // warm the page cache
	var ours, theirs float64
	for range 5 {
		theirs = max(theirs, fetch(baseURL, 4))
		ours = max(ours, fetch(ourURL, 4))
	}
	line("image_download_MBps", ours, theirs)

	// Peak RSS with 50 downloads at once.
	fetch(baseURL, *downloads)
	fetch(ourURL, *downloads)
	line("peak_rss_MiB_50_downloads", hwmMiB(srv.cmd.Process.Pid), hwmMiB(fs.cmd.Process.Pid))
	return nil
}

func line(name string, ours, base float64) {
	r := 0.0
	if base > 0 {
		r = ours / base
	}
	fmt.Printf("bench: %s ours=%.2f baseline=%.2f ratio=%.2f\n", name, ours, base, r)
}

func makeImage(dir string, size int64) (string, error) {
	raw := filepath.Join(dir, "bench.raw")
	f, err := os.Create(raw)
	if err != nil {
		return "", err
	}
	rnd, err := os.Open("/dev/urandom")
	if err != nil {
		return "", err
	}
	defer rnd.Close()
	text := bytes.Repeat([]byte("func main() { fmt.Println(\"rpi-deploy\") } // bench\n"), 1<<14)
	for w := int64(0); w < size; {
		n := min(int64(len(text)), size-w)
		if (w/int64(len(text)))%2 == 0 {
			if _, err := io.CopyN(f, rnd, n); err != nil {
				return "", err
			}
		} else if _, err := f.Write(text[:n]); err != nil {
			return "", err
		}
		w += n
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "img", "bench.img.zst")
	os.MkdirAll(filepath.Dir(out), 0o755)
	if _, err := pack.Pack(context.Background(), pack.Options{Input: raw, Output: out, Level: 1}); err != nil {
		return "", err
	}
	os.Remove(raw)
	return out, nil
}

type proc struct {
	cmd *exec.Cmd
	url string
}

// startProc runs cmd and reads its URL from the line starting with prefix (stderr)
// or, with prefix "", the first line of stdout.
func startProc(cmd *exec.Cmd, prefix, token string) (*proc, error) {
	cmd.Env = append(os.Environ(), "RPI_DEPLOY_TOKEN="+token)
	var r io.Reader
	var err error
	if prefix == "" {
		r, err = cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
	} else {
		r, err = cmd.StderrPipe()
	}
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := sc.Text()
		if u, ok := strings.CutPrefix(l, prefix); ok && strings.HasPrefix(u, "http://") {
			go io.Copy(io.Discard, r)
			return &proc{cmd: cmd, url: u}, nil
		}
		if prefix != "" {
			fmt.Fprintln(os.Stderr, l)
		}
	}
	cmd.Process.Kill()
	return nil, fmt.Errorf("%s: no URL line", cmd.Path)
}

func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
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
				rb, _ := json.Marshal(agentapi.Result{Success: true, SHA256: sha})
				resp, err = hc.Post(url+fmt.Sprintf(agentapi.PathResult, hr.Deployment.ID), "application/json", bytes.NewReader(rb))
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
	sort.Float64s(lat)
	return lat[total/2], lat[total*99/100]
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

// hwmMiB is a process's peak resident set size.
func hwmMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
