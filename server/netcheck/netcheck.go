// Package netcheck helps rpi-deployd's start-up checks say who holds a port.
package netcheck

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Holder is a process holding a socket.
type Holder struct {
	PID  int
	Comm string // /proc/PID/comm
}

// UDPHolders returns the processes that hold a UDP socket bound to local port, as far
// as /proc/net/udp{,6} and /proc/*/fd tell (other users' processes need root).
func UDPHolders(port int) []Holder {
	inodes := map[string]bool{}
	// thread-self: the network namespace of the calling thread (tests enter namespaces
	// per thread); /proc/net is the process's.
	dir := "/proc/thread-self/net"
	if _, err := os.Stat(dir + "/udp"); err != nil {
		dir = "/proc/net"
	}
	for _, f := range []string{dir + "/udp", dir + "/udp6"} {
		for _, ino := range socketInodes(f, port) {
			inodes[ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	var hs []Holder
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(p + "/fd")
		for _, fd := range fds {
			l, err := os.Readlink(p + "/fd/" + fd.Name())
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
				comm, _ := os.ReadFile(p + "/comm")
				hs = append(hs, Holder{PID: pid, Comm: strings.TrimSpace(string(comm))})
				break
			}
		}
	}
	return hs
}

// UDPPortHolder is UDPHolders as a phrase for an error message: " by dnsmasq (pid 42)",
// or "" when nobody can be named.
func UDPPortHolder(port int) string {
	hs := UDPHolders(port)
	if len(hs) == 0 {
		return ""
	}
	var parts []string
	for _, h := range hs {
		parts = append(parts, fmt.Sprintf("%s (pid %d)", h.Comm, h.PID))
	}
	return " by " + strings.Join(parts, ", ")
}

// socketInodes reads a /proc/net/udp-style table and returns the inodes of sockets
// whose local port is port.
func socketInodes(table string, port int) []string {
	f, err := os.Open(table)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 {
			continue
		}
		i := strings.LastIndexByte(fs[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(fs[1][i+1:], 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		out = append(out, fs[9])
	}
	return out
}
