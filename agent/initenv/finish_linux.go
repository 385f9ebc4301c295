package initenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"golang.org/x/sys/unix"
)

// Shells the rescue shell may be, in order of preference. The initramfs build links
// u-root's gosh as /bin/sh and /bin/defaultsh.
var shells = []string{"/bin/sh", "/bin/defaultsh", "/bbin/gosh", "/bin/busybox"}

// Finish syncs the file systems and ends the run as action says: agentapi.AfterReboot
// (also ""), agentapi.AfterPoweroff, or agentapi.AfterWait (a shell on the console, the
// machine stays up). It returns only on error: an unknown action, or a reboot the
// kernel refused.
func Finish(action string) error {
	unix.Sync()
	switch action {
	case "", agentapi.AfterReboot:
		fmt.Fprintln(os.Stderr, "rpi-agent: rebooting")
		return reboot(unix.LINUX_REBOOT_CMD_RESTART)
	case agentapi.AfterPoweroff:
		fmt.Fprintln(os.Stderr, "rpi-agent: powering off")
		return reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	case agentapi.AfterWait:
		return console("rpi-agent: done; waiting as asked (a shell follows; `shutdown reboot` or `poweroff` ends it)")
	default:
		return fmt.Errorf("finish: unknown action %q (want %q, %q or %q)", action, agentapi.AfterReboot, agentapi.AfterPoweroff, agentapi.AfterWait)
	}
}

func reboot(cmd int) error {
	if err := unix.Reboot(cmd); err != nil {
		return fmt.Errorf("reboot(%#x): %w", cmd, err)
	}
	// Power-off may return before the machine stops.
	select {}
}

// Rescue prints why the agent gave up and gives the technician a shell on the console.
// When the shell exits, a new one starts. It returns only when no shell can be run.
func Rescue(reason string) error {
	unix.Sync()
	return console(fmt.Sprintf("rpi-agent: RESCUE: %s\nrpi-agent: a shell follows; look around, then `shutdown reboot` or `poweroff`", reason))
}

func console(msg string) error {
	fmt.Fprintln(os.Stderr, msg)
	sh := findShell()
	if sh == "" {
		fmt.Fprintln(os.Stderr, "rpi-agent: no shell in the initramfs; waiting forever")
		select {}
	}
	fails := 0
	for {
		cmd := exec.Command(sh)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), "PS1=rescue# ")
		cmd.SysProcAttr = shellGroup(os.Stdin)
		start := time.Now()
		err := cmd.Run()
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) || time.Since(start) < time.Second {
			fails++
		} else {
			fails = 0
		}
		if fails >= 5 {
			return fmt.Errorf("rescue shell %q keeps failing: %v", sh, err)
		}
		fmt.Fprintf(os.Stderr, "rpi-agent: shell ended (%v); starting another\n", err)
		time.Sleep(500 * time.Millisecond)
	}
}

// shellGroup puts the shell in a process group of its own, in the foreground of the
// console when stdin is one. u-root's init makes the agent a session leader with the
// console as its controlling terminal, so the agent's group is the console's
// foreground group: a Ctrl-C typed while a command of the shell runs sent SIGINT to
// the agent too, the agent died, init ran out of commands and the kernel panicked.
// Now Ctrl-C stops the command only (gosh itself ignores SIGINT). When stdin is not
// this process's controlling terminal (TIOCGPGRP fails), the shell gets its own group
// only.
func shellGroup(stdin *os.File) *unix.SysProcAttr {
	if _, err := unix.IoctlGetInt(int(stdin.Fd()), unix.TIOCGPGRP); err != nil {
		return &unix.SysProcAttr{Setpgid: true}
	}
	return &unix.SysProcAttr{Setpgid: true, Foreground: true, Ctty: int(stdin.Fd())}
}

func findShell() string {
	for _, s := range shells {
		if fi, err := os.Stat(s); err == nil && !fi.IsDir() {
			return s
		}
	}
	return ""
}
