package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestShellSlowConsole pins the rescue shell hang: gosh (the initramfs's /bin/sh, built
// here for this machine from the versions go.mod pins) runs on a real pty whose output
// drains slowly, as a serial console's does, and must run every command typed.
//
// With bubbletea v0.24.1 the shell hung after Enter: the renderer's stop held its lock
// while it waited for the render loop, and a render tick that had come while the
// console was not taking output had the loop waiting for that lock. Its last bytes
// were the line clear (ESC[2K), then nothing. Here the pty's output buffer is filled
// before each Enter and drained 100 ms later; v0.24.1 hung on the first command in
// three tries out of four, on the 13th in the fourth.
func TestShellSlowConsole(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	gosh := filepath.Join(t.TempDir(), "gosh")
	build := exec.Command("go", "build", "-o", gosh, "github.com/u-root/u-root/cmds/core/gosh")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build gosh: %v\n%s", err, out)
	}

	c := openConsole(t)
	sh := exec.Command(gosh)
	sh.Stdin, sh.Stdout, sh.Stderr = c.slave, c.slave, c.slave
	// gosh keeps its history in $TMPDIR.
	sh.Env = append(os.Environ(), "TERM=vt100", "TMPDIR="+t.TempDir())
	sh.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sh.Process.Kill()
		sh.Wait()
	})

	const prompt = "M-? toggle key help" // drawn with each new prompt
	if err := c.waitFor(prompt, 30*time.Second); err != nil {
		t.Fatalf("no first prompt: %v", err)
	}
	for i := range 30 {
		mark := fmt.Sprintf("mark%dend", i)
		if _, err := c.master.WriteString("echo " + mark); err != nil {
			t.Fatal(err)
		}
		if err := c.waitFor(mark, 10*time.Second); err != nil {
			t.Fatalf("command %d: the line editor does not echo: %v", i, err)
		}
		filled := c.fill(t)
		if _, err := c.master.WriteString("\r"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the console takes nothing meanwhile
		c.seen.Reset()
		if err := c.waitFor(mark+"\r\n", 10*time.Second); err != nil {
			sh.Process.Signal(unix.SIGQUIT) // gosh prints its goroutines
			c.seen.Reset()
			c.waitFor("never", 3*time.Second)
			t.Fatalf("command %d (console output held back by %d bytes): the shell hung: %v\ngoroutines:\n%s", i, filled, err, c.seen.String())
		}
		if err := c.waitFor(prompt, 10*time.Second); err != nil {
			t.Fatalf("command %d: no prompt after it: %v", i, err)
		}
	}
}

// console is a pty: the test holds the master (the terminal's side) and gives the
// slave to the shell. Its output is read only while the test waits for something.
type console struct {
	master, slave *os.File
	filler        int // the slave again, non-blocking: fills the output buffer
	seen          bytes.Buffer
}

func openConsole(t *testing.T) *console {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	slave, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	filler, err := unix.Open(name, unix.O_WRONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(filler) })
	return &console{master: master, slave: slave, filler: filler}
}

// fill writes to the slave until the pty takes no more: the shell's next write blocks
// until the test reads. It returns the bytes written.
func (c *console) fill(t *testing.T) int {
	t.Helper()
	block := make([]byte, 4096)
	total := 0
	for {
		n, err := unix.Write(c.filler, block)
		total += max(n, 0)
		if errors.Is(err, unix.EAGAIN) {
			return total
		}
		if err != nil {
			t.Fatalf("fill the console: %v", err)
		}
	}
}

// waitFor reads the console until what it has read since the last reset (c.seen)
// holds sub, then drops what came up to and including sub.
func (c *console) waitFor(sub string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	buf := make([]byte, 64<<10)
	for {
		if i := bytes.Index(c.seen.Bytes(), []byte(sub)); i >= 0 {
			c.seen.Next(i + len(sub))
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			tail := c.seen.Bytes()[max(0, c.seen.Len()-60):]
			return fmt.Errorf("no %q within %v; last bytes %q", sub, limit, tail)
		}
		fds := []unix.PollFd{{Fd: int32(c.master.Fd()), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(min(left, 100*time.Millisecond)/time.Millisecond)); err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if fds[0].Revents&unix.POLLIN == 0 {
			continue
		}
		n, err := c.master.Read(buf)
		if err != nil {
			return err
		}
		c.seen.Write(buf[:n])
	}
}
