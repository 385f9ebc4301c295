// Package servertest starts a real rpi-deployd for tests: by default in the test's
// own process (server/daemon, the code `rpi-deployd serve` runs), so that `go test
// -race` checks the handlers and the domain under the test's load; with
// Options.Process as a child process (built once per test binary, with -race when
// the test binary has it) for tests that SIGKILL it or watch its descriptors. Either
// way it runs as `serve --data DIR --listen 127.0.0.1:0 --http-max-conns-per-source
// 4096` (all simulated boards share 127.0.0.1) over a real SQLite file, with a random
// admin token, and is stopped when the test ends.
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
	"errors"
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

	"github.com/rpi-deploy/rpi-deploy/internal/logbuf"
	"github.com/rpi-deploy/rpi-deploy/server/client"
	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/daemon"
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
func Build(pkg string) (string, error) { return build(pkg, false) }

// build is Build, with the race detector (and CGO, which it needs) when race is set;
// the race-enabled binary has a name of its own ("-race" appended).
func build(pkg string, race bool) (string, error) {
	key := fmt.Sprintf("%s race=%v", pkg, race)
	buildsMu.Lock()
	b := builds[key]
	if b == nil {
		b = &built{}
		builds[key] = b
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
		args, cgo := []string{"build"}, "CGO_ENABLED=0"
		if race {
			name += "-race"
			args, cgo = append(args, "-race"), "CGO_ENABLED=1"
		}
		tmp := filepath.Join(dir, fmt.Sprintf("%s.%d.tmp", name, os.Getpid()))
		cmd := exec.Command("go", append(args, "-o", tmp, pkg)...)
		cmd.Env = append(os.Environ(), cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
			return
		}
		b.path = filepath.Join(dir, name)
		b.err = os.Rename(tmp, b.path)
	})
	return b.path, b.err
}

// Binary builds rpi-deployd (once per test binary) and returns its path. It has the
// race detector when the test binary has it (go test -race): a data race in the
// child then ends it with exit status 66 and the race report in its log.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := build(ServerPkg, raceEnabled)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Options for Start. Zero values mean the defaults.
type Options struct {
	DataDir string   // default t.TempDir()
	DB      string   // serve --db: a PostgreSQL URL (e.g. pgtest.DB); default SQLite in DataDir
	Token   string   // default: 32 random hex digits
	Listen  string   // default 127.0.0.1:0
	Args    []string // extra serve flags, e.g. "--max-streams", "10"
	Env     []string // extra environment ("KEY=VALUE")
	// Site is the server's site name passed as --site; "" = the server's default.
	Site string
	// NoSourceLimits adds config.NoSourceLimitsFlags (before Args, which may set them
	// again).
	NoSourceLimits bool
	// Process runs rpi-deployd as a child process (Binary) instead of in the test's
	// process. Kill and PID need it; so do tests that measure the server's own
	// descriptors or memory, which in-process would include the test's.
	Process bool
}

// Server is a running rpi-deployd, in the test's process or a child process.
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

	mu     sync.Mutex
	cmd    *exec.Cmd          // Process: the child; nil when stopped
	cancel context.CancelFunc // in-process: ends the daemon; nil when stopped
	done   chan struct{}      // closed when the running server has ended
	err    error              // in-process: what daemon.Wait returned (after done)
	log    *logBuf
}

// Start runs rpi-deployd and returns when it listens.
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
	if err := s.start(opt.Listen); err != nil {
		t.Fatal(err)
	}
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

// args are the serve flags (without "serve") for listen.
func (s *Server) args(listen string) []string {
	// Every board a test simulates connects from 127.0.0.1: lift the per-source
	// connection cap (a real board has an address of its own). Args may set it again.
	args := []string{"--data", s.DataDir, "--listen", listen, "--http-max-conns-per-source", "4096"}
	if s.opt.DB != "" {
		args = append(args, "--db", s.opt.DB)
	}
	if s.opt.Site != "" {
		args = append(args, "--site", s.opt.Site)
	}
	if s.opt.NoSourceLimits {
		args = append(args, config.NoSourceLimitsFlags...)
	}
	return append(args, s.opt.Args...)
}

// getenv is the environment the server sees: the test's, then the admin token,
// then Options.Env (later entries win, as in a child's environment).
func (s *Server) getenv(key string) string {
	for i := len(s.opt.Env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(s.opt.Env[i], "="); ok && k == key {
			return v
		}
	}
	if key == "RPI_DEPLOY_TOKEN" {
		return s.Token
	}
	return os.Getenv(key)
}

// start runs the server on listen and returns when it listens.
func (s *Server) start(listen string) error {
	if s.opt.Process {
		return s.startProcess(listen)
	}
	opt, err := daemon.Parse(s.args(listen), s.getenv, s.log)
	if err != nil {
		return fmt.Errorf("rpi-deployd serve %q: %w", s.args(listen), err)
	}
	opt.Version, opt.Stderr = "dev", s.log
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.Start(ctx, opt)
	if err != nil {
		cancel()
		return fmt.Errorf("rpi-deployd (in-process) did not start: %w\n%s", err, s.log.tail(40))
	}
	done := make(chan struct{})
	go func() {
		err := d.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(done)
	}()
	s.mu.Lock()
	s.cancel, s.done = cancel, done
	s.mu.Unlock()
	s.started(d.URL, d.AgentURLs, d.Fingerprint)
	return nil
}

// started records the addresses of the first start (a restart keeps them).
// URL and AgentURLs are read by clients without a lock: written on the first start only.
func (s *Server) started(url string, agents []string, fingerprint string) {
	if s.URL == "" {
		s.URL, s.AgentURLs, s.Fingerprint = url, agents, fingerprint
		s.addr = strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
	}
}

// startProcess runs the binary and waits for its "listening on" line.
func (s *Server) startProcess(listen string) error {
	cmd := exec.Command(Binary(s.t), append([]string{"serve"}, s.args(listen)...)...)
	cmd.Env = append(append(os.Environ(), "RPI_DEPLOY_TOKEN="+s.Token), s.opt.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = s.log
	if err := cmd.Start(); err != nil {
		return err
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
			if fp, ok := strings.CutPrefix(line, daemon.LineFingerprint); ok {
				fingerprint = fp
			}
			if u, ok := strings.CutPrefix(line, daemon.LineAgentAPI); ok {
				agents = append(agents, u)
			}
			if u, ok := strings.CutPrefix(line, daemon.LineListening); ok {
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
		s.started(u, agents, fingerprint)
		return nil
	case <-done:
		return fmt.Errorf("rpi-deployd exited before listening:\n%s", s.log.tail(40))
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("rpi-deployd did not print its listening line in 30 s:\n%s", s.log.tail(40))
	}
}

// Kill ends the child process with SIGKILL (no shutdown at all) and waits for it.
// It needs Options.Process.
func (s *Server) Kill() {
	if !s.opt.Process {
		s.t.Fatal("servertest: Kill needs Options.Process (a child process to SIGKILL)")
	}
	s.signal(syscall.SIGKILL)
}

// Stop shuts the server down and waits: in-process, it cancels the daemon's
// context (every listener shut down, the store closed) and reports an error the
// daemon returned; a child gets SIGTERM (SIGKILL after 15 s).
func (s *Server) Stop() {
	if s.opt.Process {
		s.signal(syscall.SIGTERM)
		return
	}
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel = nil
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		s.t.Errorf("rpi-deployd (in-process) ended with: %v", err)
	}
}

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
	// A race-enabled child reports a data race on its stderr (and exits 66); in the
	// test's own process the race detector fails the test by itself.
	if s.log.raced() {
		s.t.Errorf("rpi-deployd (child process) reported a data race:\n%s", s.log.tail(200))
	}
}

// Restart stops the server if it runs and starts it again on the same data
// directory and the same host:port, so clients holding URL reconnect. Should the
// address still be taken, it retries with a growing delay for up to 10 s.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := s.start(s.addr)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("restart on %s: %v", s.addr, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("restart on %s: address still in use after 10 s: %v", s.addr, err)
		case <-time.After(wait):
		}
	}
}

// PID is the running child's process id (0 when it is not running), for tests that
// watch its descriptors and memory in /proc. It needs Options.Process.
func (s *Server) PID() int {
	if !s.opt.Process {
		s.t.Fatal("servertest: PID needs Options.Process (in-process, /proc would show the test's own descriptors too)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns the server's recent log lines.
func (s *Server) Log() string { return s.log.tail(1000) }

// WaitLog blocks until one of the server's recent log lines (see Log) holds text,
// checking again on every new line, or until timeout; it reports whether it came.
func (s *Server) WaitLog(text string, timeout time.Duration) bool {
	return logbuf.Wait(&s.log.mu, &s.log.changed, timeout, func() bool {
		return strings.Contains(s.log.tailLocked(1000), text)
	})
}

// Healthy waits until /healthz answers 200, trying again with a growing delay, or
// the timeout passes.
func (s *Server) Healthy(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	hc := http.DefaultClient
	if s.Client != nil && s.Client.HTTP != nil {
		hc = s.Client.HTTP
	}
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("healthz: %w", err)
		case <-time.After(wait):
		}
	}
}

// Do is a management API call with the admin token (see client.Client.Do).
func (s *Server) Do(ctx context.Context, method, path string, body, out any) error {
	return s.Client.Do(ctx, method, path, nil, body, out)
}

// logBuf keeps the last lines of the server's output.
type logBuf struct {
	mu      sync.Mutex
	lines   []string
	race    bool // a line said "WARNING: DATA RACE"
	changed logbuf.Changes
}

func (l *logBuf) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if strings.Contains(line, "WARNING: DATA RACE") {
		l.race = true
	}
	l.lines = append(l.lines, line)
	l.changed.Notify()
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

func (l *logBuf) raced() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.race
}

func (l *logBuf) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tailLocked(n)
}

func (l *logBuf) tailLocked(n int) string {
	from := max(0, len(l.lines)-n)
	return strings.Join(l.lines[from:], "\n")
}
