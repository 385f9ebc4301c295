// Package pgtest runs a real PostgreSQL 15 server for tests: Debian's postgresql-15
// binaries, a cluster made by initdb in a temporary directory, owned by and run as
// the unprivileged user nobody when the test runs as root (initdb and postgres refuse
// to run as root), listening on a Unix socket in that directory only. Nothing is
// shared with a system cluster, and nothing listens on the network.
//
// Start gives a test its own cluster (it may stop, restart or kill it); DB gives a
// test a fresh database on one cluster shared by the test binary, which the
// package's TestMain starts and stops through Main.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BinDir is where Debian's postgresql-15 package puts the server's programs.
const BinDir = "/usr/lib/postgresql/15/bin"

// Port names the socket file (.s.PGSQL.5432); nothing listens on TCP.
const Port = 5432

// Server is one PostgreSQL cluster of a test.
type Server struct {
	Dir    string // the temporary directory: data/ and the socket
	Socket string // the directory of the Unix socket (DSN host)
	data   string
	cred   *syscall.Credential // nil when the test does not run as root
	dbs    atomic.Int64
}

// Start creates and starts a cluster that belongs to t: it is stopped and removed
// when t ends, even if t fails.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.remove)
	return s
}

func start() (*Server, error) {
	if _, err := os.Stat(filepath.Join(BinDir, "postgres")); err != nil {
		return nil, fmt.Errorf("PostgreSQL 15 is not installed (%v): run `make deps` (Debian package postgresql-15)", err)
	}
	// Not t.TempDir: its parent directories are the test user's only, and the
	// server runs as nobody, which must reach the socket and data directories.
	sweepOnce.Do(sweepOrphans)
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	if err := writeOwner(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := serverIn(dir)
	if err := s.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// serverIn is the cluster in directory dir: its data directory and socket there.
func serverIn(dir string) *Server {
	return &Server{Dir: dir, Socket: dir, data: filepath.Join(dir, "data")}
}

// ownerFile names the process a cluster belongs to: its PID and its start time
// (field 22 of /proc/PID/stat), so a reused PID is not taken for the owner.
const ownerFile = "owner"

var sweepOnce sync.Once

func writeOwner(dir string) error {
	id, err := procID(os.Getpid())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(id+"\n"), 0o644)
}

// procID is "PID STARTTIME" of a running process.
func procID(pid int) (string, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	return fmt.Sprintf("%d %s", pid, f[19]), nil
}

// sweepOrphans stops and removes the clusters of test processes that died without
// cleaning up (a SIGKILL or a crash skips t.Cleanup and TestMain's end): their
// postmaster would otherwise run until stopped by hand. Clusters of live test
// processes, and directories without an owner file, are left alone.
func sweepOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		owner, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		id := strings.TrimSpace(string(owner))
		pid, _ := strconv.Atoi(strings.Fields(id + " x")[0])
		if now, err := procID(pid); err == nil && now == id {
			continue // the owner still runs
		}
		s := serverIn(dir)
		if !s.postmasterOfData() {
			os.RemoveAll(dir)
			continue
		}
		if s.Kill() == nil || !s.postmasterOfData() {
			os.RemoveAll(dir)
		}
	}
}

// postmasterOfData reports whether the PID in postmaster.pid is a postgres serving
// this cluster's data directory (and not a process that reused the PID).
func (s *Server) postmasterOfData() bool {
	pid, err := s.postmasterPID()
	if err != nil {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmdline, []byte(s.data))
}

// postmasterPID is the first line of postmaster.pid.
func (s *Server) postmasterPID() (int, error) {
	pidFile, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pidFile), "\n", 2)[0]))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	return pid, nil
}

// init runs initdb as the unprivileged user.
func (s *Server) init() error {
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(s.data, 0o700); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return fmt.Errorf("look up the user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, p := range []string{s.Dir, s.data} {
			if err := os.Chown(p, uid, gid); err != nil {
				return err
			}
		}
	}
	// trust: the socket's directory is the only way in. No fsync tuning: the tests
	// restart and kill this server and count on what it acknowledged.
	return s.run("initdb", "-D", s.data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
}

// run runs one of the server's programs as the cluster's owner and returns its
// output in the error when it fails.
func (s *Server) run(prog string, args ...string) error {
	cmd := exec.Command(filepath.Join(BinDir, prog), args...)
	cmd.Dir = s.Dir
	cmd.Env = []string{"PATH=" + BinDir + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + s.Dir}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", prog, err, out.Bytes())
	}
	return nil
}

// Start starts the server (again, after Stop or Kill) and returns once it accepts
// connections.
func (s *Server) Start() error {
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories=%s -p %d -c max_connections=300",
		s.Socket, Port)
	return s.run("pg_ctl", "start", "-w", "-t", "60", "-D", s.data,
		"-l", filepath.Join(s.Dir, "postgres.log"), "-o", opts)
}

// Stop shuts the server down cleanly (fast mode: sessions are ended, committed work
// is kept).
func (s *Server) Stop() error {
	return s.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", s.data)
}

// Kill sends SIGKILL to the postmaster and its backends, as a crash would, and waits
// until they are gone. The next Start recovers from the write-ahead log.
func (s *Server) Kill() error {
	pid, err := s.postmasterPID()
	if errors.Is(err, os.ErrNotExist) {
		return ErrNotRunning
	}
	if err != nil {
		return err
	}
	if syscall.Kill(pid, 0) != nil {
		return ErrNotRunning // the file of a server killed before
	}
	// The backends are the postmaster's children; killing the postmaster alone
	// leaves them serving their sessions until they notice.
	kids, _ := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output()
	pids := []int{pid}
	for _, f := range strings.Fields(string(kids)) {
		if k, err := strconv.Atoi(f); err == nil {
			pids = append(pids, k)
		}
	}
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range pids {
		for syscall.Kill(p, 0) == nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d still alive 30 s after SIGKILL", p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// Log is the server's log so far (for a failing test's message).
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "postgres.log"))
	return string(b)
}

// DSN is the URL of database db on this server, as pgx and psql read it.
func (s *Server) DSN(db string) string {
	q := url.Values{"host": {s.Socket}, "port": {strconv.Itoa(Port)}}
	return "postgres://postgres@/" + url.PathEscape(db) + "?" + q.Encode()
}

// CreateDB creates a new, empty database and returns its DSN.
func (s *Server) CreateDB(t testing.TB) string {
	t.Helper()
	dsn, err := s.createDB()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

func (s *Server) createDB() (string, error) {
	name := fmt.Sprintf("test%d", s.dbs.Add(1))
	if err := s.run("createdb", "-h", s.Socket, "-p", strconv.Itoa(Port), "-U", "postgres", name); err != nil {
		return "", err
	}
	return s.DSN(name), nil
}

// Psql runs one SQL text with psql on database db and returns its unaligned output.
func (s *Server) Psql(ctx context.Context, db, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(BinDir, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", s.Socket, "-p", strconv.Itoa(Port), "-U", "postgres", "-d", db, "-c", sql)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql: %v: %s", err, errb.Bytes())
	}
	return strings.TrimSpace(out.String()), nil
}

// remove stops the server if it runs and deletes its directory.
func (s *Server) remove() {
	if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); err == nil {
		if s.Stop() != nil {
			s.Kill()
		}
	}
	os.RemoveAll(s.Dir)
}

var shared struct {
	sync.Mutex
	main bool // Main runs this test binary
	srv  *Server
	err  error
}

// Main runs the package's tests and then stops the cluster DB started. Use it as
// the package's TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.srv != nil {
		shared.srv.remove()
	}
	shared.Unlock()
	os.Exit(code)
}

// DB returns the DSN of a fresh database on the cluster shared by this test binary,
// starting the cluster on first use. The package's TestMain must be Main.
func DB(t testing.TB) string {
	t.Helper()
	shared.Lock()
	if !shared.main {
		shared.Unlock()
		t.Fatal("pgtest.DB needs the package's TestMain to be pgtest.Main (it stops the shared cluster)")
	}
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = start()
	}
	srv, err := shared.srv, shared.err
	shared.Unlock()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	dsn, err := srv.createDB()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// Shared is the cluster DB uses (nil before the first DB call).
func Shared() *Server {
	shared.Lock()
	defer shared.Unlock()
	return shared.srv
}

// ErrNotRunning is returned by Kill when no server runs.
var ErrNotRunning = errors.New("postgres is not running")
