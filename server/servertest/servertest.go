// Package servertest starts a real rpi-deployd process for tests: the binary is
// built once per test binary (go build, without -race, into the temp directory), run
// as `rpi-deployd serve --data DIR --listen 127.0.0.1:0 --http-max-conns-per-source
// 4096` (all simulated boards share 127.0.0.1) with a random admin token,
// and stopped when the test ends.
//
//	srv := servertest.Start(t, servertest.Options{})
//	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 20, Image: packed})
//	// agents talk to srv.URL; management calls go through srv.Client (server/client)
package servertest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/client"
)

// Main packages of the binaries tests run.
const (
	ServerPkg = "github.com/rpi-deploy/rpi-deploy/server/cmd/rpi-deployd"
	AgentPkg  = "github.com/rpi-deploy/rpi-deploy/agent/cmd/rpi-agent"
)

type built struct {
	once sync.Once
	path string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*built{}
)

// Build builds the main package pkg without -race and CGO (once per test binary and
// package) and returns the binary's path. The binary lives in a directory of this
// source tree's own under the temp directory (several checkouts on one machine must
// not run each other's binaries), at one fixed path replaced atomically: test
// binaries running at once build the same code, and nothing is left behind per run.
func Build(pkg string) (string, error) {
	buildsMu.Lock()
	b := builds[pkg]
	if b == nil {
		b = &built{}
		builds[pkg] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		sum := sha256.Sum256([]byte(self))
		dir := filepath.Join(os.TempDir(), "rpi-deploy-servertest", hex.EncodeToString(sum[:6]))
		if b.err = os.MkdirAll(dir, 0o755); b.err != nil {
			return
		}
		name := filepath.Base(pkg)
		tmp := filepath.Join(dir, fmt.Sprintf("%s.%d.tmp", name, os.Getpid()))
		cmd := exec.Command("go", "build", "-o", tmp, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
			return
		}
		b.path = filepath.Join(dir, name)
		b.err = os.Rename(tmp, b.path)
	})
	return b.path, b.err
}

// Binary builds rpi-deployd (once per test binary) and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := Build(ServerPkg)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Options for Start. Zero values mean the defaults.
type Options struct {
	DataDir string   // default t.TempDir()
	Token   string   // default: 32 random hex digits
	Listen  string   // default 127.0.0.1:0
	Args    []string // extra serve flags, e.g. "--max-streams", "10"
	Env     []string // extra environment ("KEY=VALUE")
}

// Server is a running rpi-deployd process.
type Server struct {
	URL string // http://127.0.0.1:PORT
	// AgentURLs are the --agent-listen listeners, in order (empty without them).
	AgentURLs []string
	Token     string
	DataDir   string
	Client    *client.Client // management API client with the admin token
	// Fingerprint is the SHA-256 of the TLS certificate the server printed (serve
	// --tls); "" without TLS. Client pins it.
	Fingerprint string

	t    testing.TB
	opt  Options
	addr string // host:port, kept across restarts

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *logBuf
}

// Start runs rpi-deployd and waits for its "listening on" line.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	if opt.DataDir == "" {
		opt.DataDir = t.TempDir()
	}
	if opt.Token == "" {
		b := make([]byte, 16)
		rand.Read(b)
		opt.Token = hex.EncodeToString(b)
	}
	if opt.Listen == "" {
		opt.Listen = "127.0.0.1:0"
	}
	s := &Server{t: t, opt: opt, Token: opt.Token, DataDir: opt.DataDir, log: &logBuf{}}
	s.start(t, opt.Listen)
	s.Client = client.New(s.URL, s.Token)
	if err := s.Client.SetTLS("", s.Fingerprint); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("rpi-deployd log (last lines):\n%s", s.log.tail(60))
		}
	})
	return s
}

func (s *Server) start(t testing.TB, listen string) {
	t.Helper()
	// Every board a test simulates connects from 127.0.0.1: lift the per-source
	// connection cap (a real board has an address of its own). Args may set it again.
	args := append([]string{"serve", "--data", s.DataDir, "--listen", listen, "--http-max-conns-per-source", "4096"}, s.opt.Args...)
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(append(os.Environ(), "RPI_DEPLOY_TOKEN="+s.Token), s.opt.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	var agents []string
	var fingerprint string
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.log.add(line)
			if fp, ok := strings.CutPrefix(line, "rpi-deployd: TLS certificate sha256 fingerprint "); ok {
				fingerprint = fp
			}
			if u, ok := strings.CutPrefix(line, "rpi-deployd: agent API on "); ok {
				agents = append(agents, u)
			}
			if u, ok := strings.CutPrefix(line, "rpi-deployd: listening on "); ok {
				select {
				case found <- u:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case u := <-found:
		s.mu.Lock()
		s.cmd, s.done = cmd, done
		s.mu.Unlock()
		// URL and AgentURLs are read by clients without a lock: written on the first
		// start only (a restart keeps the address).
		if s.URL == "" {
			s.URL, s.AgentURLs, s.Fingerprint = u, agents, fingerprint
			s.addr = strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
		}
	case <-done:
		t.Fatalf("rpi-deployd exited before listening:\n%s", s.log.tail(40))
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("rpi-deployd did not print its listening line in 30 s:\n%s", s.log.tail(40))
	}
}

// Kill ends the process with SIGKILL (no shutdown at all) and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop ends the process with SIGTERM and waits (SIGKILL after 15 s).
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Restart stops the process if it runs (SIGTERM) and starts it again on the same
// data directory and the same host:port, so clients holding URL reconnect.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := s.tryStart(t)
		if ok || time.Now().After(deadline) {
			if !ok {
				t.Fatalf("restart on %s failed:\n%s", s.addr, s.log.tail(40))
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tryStart starts on s.addr; false when the address is still taken.
func (s *Server) tryStart(t testing.TB) (ok bool) {
	t.Helper()
	ft := &fatalCatcher{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != errFatal {
				panic(r)
			}
		}()
		s.start(ft, s.addr)
	}()
	return !ft.failed
}

var errFatal = fmt.Errorf("servertest: start failed")

type fatalCatcher struct {
	testing.TB
	failed bool
}

func (f *fatalCatcher) Fatalf(format string, a ...any) { f.failed = true; panic(errFatal) }
func (f *fatalCatcher) Fatal(a ...any)                 { f.failed = true; panic(errFatal) }
func (f *fatalCatcher) Helper()                        {}

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// PID is the running process's id (0 when it is not running), for tests that watch
// its descriptors and memory in /proc.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns the server's recent log lines.
func (s *Server) Log() string { return s.log.tail(1000) }

// Healthy waits until /healthz answers 200 (or the timeout passes).
func (s *Server) Healthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		hc := http.DefaultClient
		if s.Client != nil && s.Client.HTTP != nil {
			hc = s.Client.HTTP
		}
		resp, err := hc.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("healthz: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Do is a management API call with the admin token (see client.Client.Do).
func (s *Server) Do(ctx context.Context, method, path string, body, out any) error {
	return s.Client.Do(ctx, method, path, nil, body, out)
}

// logBuf keeps the last lines of the server's output.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > 5000 {
		l.lines = l.lines[len(l.lines)-2000:]
	}
}

func (l *logBuf) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.add(line)
	}
	return len(p), nil
}

func (l *logBuf) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := max(0, len(l.lines)-n)
	return strings.Join(l.lines[from:], "\n")
}
