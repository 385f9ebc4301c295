package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// A committed row survives a clean restart and a SIGKILL of every server process;
// the server listens on its socket only.
func TestRestartKeepsCommitted(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	if _, err := s.Psql(ctx, "postgres", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Psql(ctx, "postgres", "SHOW listen_addresses"); err != nil || got != "" {
		t.Errorf("listen_addresses = %q (%v), want '' (socket only)", got, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Psql(ctx, "postgres", "SELECT 1"); err == nil {
		t.Error("psql answered while the server was stopped")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Psql(ctx, "postgres", "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("second Kill: %v, want ErrNotRunning", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("start after SIGKILL: %v\n%s", err, s.Log())
	}
	got, err := s.Psql(ctx, "postgres", "SELECT string_agg(v::text, ',' ORDER BY v) FROM t")
	if err != nil || got != "1,2" {
		t.Errorf("rows after kill and recovery: %q (%v), want 1,2", got, err)
	}
}

// Each DB call gives an empty database of its own on the shared cluster.
func TestDBIsFreshAndShared(t *testing.T) {
	ctx := context.Background()
	a, b := DB(t), DB(t)
	if a == b {
		t.Fatalf("two DB calls gave the same DSN %q", a)
	}
	srv := Shared()
	name := func(dsn string) string {
		return strings.TrimPrefix(strings.SplitN(dsn, "?", 2)[0], "postgres://postgres@/")
	}
	if _, err := srv.Psql(ctx, name(a), "CREATE TABLE only_in_a (v int)"); err != nil {
		t.Fatal(err)
	}
	got, err := srv.Psql(ctx, name(b), "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'")
	if err != nil || got != "0" {
		t.Errorf("table of database a seen in b: %q (%v)", got, err)
	}
	if !strings.Contains(a, "host=") || strings.Contains(a, "127.0.0.1") {
		t.Errorf("DSN %q: want a Unix socket host", a)
	}
}

// A cluster whose test process was killed (no cleanup ran) is stopped and removed by
// the next start; a cluster whose owner still runs is left alone.
func TestSweepsOrphanedCluster(t *testing.T) {
	if os.Getenv("PGTEST_ORPHAN") == "1" {
		s, err := start()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("cluster:", s.Dir)
		time.Sleep(time.Hour) // killed by the parent
		return
	}
	live := Start(t)
	child := exec.Command(os.Args[0], "-test.run=^TestSweepsOrphanedCluster$", "-test.v")
	child.Env = append(os.Environ(), "PGTEST_ORPHAN=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	var dir string
	sc := bufio.NewScanner(out)
	for dir == "" && sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "cluster: "); ok {
			dir = d
		}
	}
	if dir == "" {
		t.Fatalf("the child printed no cluster: %v", sc.Err())
	}
	orphan := serverIn(dir)
	t.Cleanup(orphan.remove)
	child.Process.Kill()
	child.Wait()
	pid, err := orphan.postmasterPID()
	if err != nil || !orphan.postmasterOfData() {
		t.Fatalf("the orphan's postmaster is not running after its owner died (pid %d, %v)", pid, err)
	}

	sweepOrphans()
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("postmaster %d of the orphaned cluster still runs after the sweep", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the orphaned cluster's directory is still there: %v", err)
	}
	if _, err := live.Psql(context.Background(), "postgres", "SELECT 1"); err != nil {
		t.Errorf("the sweep touched a cluster whose owner runs: %v", err)
	}
}
