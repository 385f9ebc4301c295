// Package benchkit holds what the rpi-deployd benches (serverbench, netflood,
// attackbench) share: a packed test image, rpi-deployd started on a loopback port,
// the image pushed and made active for a venue's batch, percentiles, the
// "bench: NAME ours=X baseline=Y ratio=R" line and /proc figures of a process.
package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/pack"
	"github.com/rpi-deploy/rpi-deploy/image-tools/push"
	"github.com/rpi-deploy/rpi-deploy/server/client"
)

// MakeImage writes size bytes read from src to a raw file in dir, packs it at zstd
// level 1 as dir/img/NAME.img.zst and removes the raw file. The data has no
// partition table, so it is packed as raw (pack.Options.Raw) and has no first-boot
// mechanism: Setup pushes and uses it with the explicit override.
func MakeImage(dir, name string, src io.Reader, size int64) (string, error) {
	raw := filepath.Join(dir, name+".raw")
	f, err := os.Create(raw)
	if err != nil {
		return "", err
	}
	if _, err := io.CopyN(f, src, size); err != nil {
		f.Close()
		return "", fmt.Errorf("write %q: %w", raw, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "img", name+".img.zst")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	if _, err := pack.Pack(context.Background(), pack.Options{Input: raw, Output: out, Level: 1, Raw: true}); err != nil {
		return "", err
	}
	return out, os.Remove(raw)
}

// Proc is a started server process and the URL it listens on.
type Proc struct {
	Cmd *exec.Cmd
	URL string
}

// ListeningPrefix starts the line on stderr in which rpi-deployd says its URL.
const ListeningPrefix = "rpi-deployd: listening on "

// StartDeployd runs "BIN serve --data DATA --listen 127.0.0.1:0 ARGS…" with
// RPI_DEPLOY_TOKEN set to token and returns once rpi-deployd says where it
// listens. Its stderr before that line goes to os.Stderr; after it, to log (nil:
// discarded).
func StartDeployd(bin, data, token string, log io.Writer, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "RPI_DEPLOY_TOKEN="+token)
	r, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return start(cmd, r, ListeningPrefix, os.Stderr, log)
}

// StartURL runs cmd, a server that prints its http:// URL as a line on stdout,
// and returns once it has. Its stderr goes to os.Stderr.
func StartURL(cmd *exec.Cmd) (*Proc, error) {
	r, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	return start(cmd, r, "", nil, nil)
}

// start starts cmd and reads r up to the line that is prefix followed by an
// http:// URL; lines before it go to early, the rest of r to late (nil: discarded).
func start(cmd *exec.Cmd, r io.Reader, prefix string, early, late io.Writer) (*Proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if late == nil {
		late = io.Discard
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), prefix); ok && strings.HasPrefix(u, "http://") {
			go io.Copy(late, r)
			return &Proc{Cmd: cmd, URL: u}, nil
		}
		if early != nil {
			fmt.Fprintln(early, sc.Text())
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, fmt.Errorf("%s: no line with its URL", cmd.Path)
}

// Stop interrupts the process and waits for it to exit.
func (p *Proc) Stop() {
	p.Cmd.Process.Signal(os.Interrupt)
	p.Cmd.Wait()
}

// Setup pushes the packed image img (with the no-first-boot override: bench
// images are raw data), activates it for product, creates venue BNCH, generates
// pool names for it when poolNames > 0, and opens its batch of unlimited count.
func Setup(ctx context.Context, url, token, img, product string, poolNames int) (*manifest.Manifest, error) {
	m, err := manifest.Load(manifest.PathFor(img))
	if err != nil {
		return nil, err
	}
	if err := push.Push(ctx, push.Options{Server: url, Token: token, Image: img, AllowNoFirstBoot: true}); err != nil {
		return nil, err
	}
	type call struct {
		path string
		body any
	}
	calls := []call{
		{"/api/v1/images/" + m.Name + "/activate", map[string]any{"product": product, "allow_no_first_boot": true}},
		{"/api/v1/venues", map[string]string{"code": "BNCH", "name": "bench"}},
	}
	if poolNames > 0 {
		calls = append(calls, call{"/api/v1/pools/generate", map[string]any{"venue": "BNCH", "product": product, "count": poolNames}})
	}
	calls = append(calls, call{"/api/v1/batches", map[string]any{"venue": "BNCH", "product": product, "count": 0, "allow_no_first_boot": true}})
	c := client.New(url, token)
	for _, call := range calls {
		if err := c.Post(ctx, call.path, call.body, nil); err != nil {
			return nil, fmt.Errorf("%s: %w", call.path, err)
		}
	}
	return m, nil
}

// Percentile is the p-th percentile (0–100) of v, the value at index len(v)*p/100
// of v sorted; 0 for no values. v is not changed.
func Percentile(v []float64, p int) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

// Line prints "bench: NAME ours=X baseline=Y ratio=R" (ratio 0 when the baseline
// is 0).
func Line(name string, ours, base float64) {
	r := 0.0
	if base > 0 {
		r = ours / base
	}
	fmt.Printf("bench: %s ours=%.2f baseline=%.2f ratio=%.2f\n", name, ours, base, r)
}

// StatusMiB is a field of /proc/PID/status given in kB (VmRSS, VmHWM…), in MiB;
// 0 when it cannot be read.
func StatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
