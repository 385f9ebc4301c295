package initenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// envShellGroupHelper makes the test binary the helper of TestShellGroupCtrlC.
const envShellGroupHelper = "RPI_DEPLOY_SHELLGROUP_HELPER"

// TestShellGroupCtrlC pins the rescue shell's Ctrl-C: a helper process stands in for
// the agent as u-root's init starts it (a session leader with a pty as its controlling
// terminal) and runs `sleep` with shellGroup's attributes, as console runs the shell.
// A Ctrl-C typed on the pty must end sleep and leave the helper running. Without its
// own foreground group, sleep shared the helper's, and the Ctrl-C killed the helper
// too (in the initramfs: the agent, and then init and the kernel).
func TestShellGroupCtrlC(t *testing.T) {
	if os.Getenv(envShellGroupHelper) != "" {
		shellGroupHelper()
		return
	}
	master, slave := openPTY(t)
	helper := exec.Command(os.Args[0], "-test.run=^TestShellGroupCtrlC$")
	helper.Env = append(os.Environ(), envShellGroupHelper+"=1")
	helper.Stdin, helper.Stdout, helper.Stderr = slave, slave, slave
	helper.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		helper.Process.Kill()
		helper.Wait()
	})
	lines := make(chan string, 16)
	go func() {
		s := bufio.NewScanner(master)
		for s.Scan() {
			lines <- strings.TrimRight(s.Text(), "\r")
		}
		close(lines)
	}()
	waitLine := func(prefix string) string {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the helper's terminal closed before %q", prefix)
				}
				// The terminal's own echo of ^C may come first on the line.
				if i := strings.Index(l, prefix); i >= 0 {
					return l[i:]
				}
			case <-timeout:
				t.Fatalf("no %q line from the helper (did the Ctrl-C end it?)", prefix)
			}
		}
	}
	waitLine("helper: sleep started")
	if _, err := master.Write([]byte{0x03}); err != nil { // Ctrl-C, as typed
		t.Fatal(err)
	}
	if got, want := waitLine("helper: sleep ended"), "helper: sleep ended: signal: interrupt"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := helper.Wait(); err != nil {
		t.Errorf("helper: %v (the Ctrl-C reached it)", err)
	}
}

// shellGroupHelper runs sleep as console runs the shell and says how it ended.
func shellGroupHelper() {
	sleep := exec.Command("sleep", "30")
	sleep.Stdin, sleep.Stdout, sleep.Stderr = os.Stdin, os.Stdout, os.Stderr
	sleep.SysProcAttr = shellGroup(os.Stdin)
	if err := sleep.Start(); err != nil {
		fmt.Println("helper: start sleep:", err)
		os.Exit(1)
	}
	fmt.Println("helper: sleep started")
	fmt.Println("helper: sleep ended:", sleep.Wait())
	os.Exit(0)
}

// TestShellGroupNoTerminal checks that a shell whose stdin is not this process's
// controlling terminal still starts: in a group of its own, not made the foreground.
func TestShellGroupNoTerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	_, pty := openPTY(t) // a terminal, but not the test's controlling one
	for _, f := range []*os.File{null, pty} {
		attr := shellGroup(f)
		if !attr.Setpgid || attr.Foreground {
			t.Errorf("shellGroup(%s) = %+v, want Setpgid only", f.Name(), attr)
		}
		cmd := exec.Command("true")
		cmd.Stdin, cmd.SysProcAttr = f, attr
		if err := cmd.Run(); err != nil {
			t.Errorf("run with stdin %s: %v", f.Name(), err)
		}
	}
}

// openPTY opens a pty pair: the master (the terminal's side) and the slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}
