package daemon_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/internal/logbuf"
	"github.com/rpi-deploy/rpi-deploy/server/daemon"
)

// TestListenersSendNoKeepAliveProbes: the connections of the HTTP listeners (the main
// one and an --agent-listen one) have SO_KEEPALIVE off — Go turns it on for every
// accepted connection unless told not to, four setsockopt calls each, 3 % of a
// hello's CPU — and what probes could find is still closed by the deadlines: a
// connection idle after its request after http_idle_timeout, one whose header never
// ends after http_read_header_timeout (both 1 s here; the test allows 10 s for a
// loaded machine).
func TestListenersSendNoKeepAliveProbes(t *testing.T) {
	for _, addr := range httpListeners(t, "--http-idle-timeout", "1s", "--http-read-header-timeout", "1s") {
		t.Run("no probes "+addr, func(t *testing.T) {
			// A hello whose body never comes: the server holds the connection
			// (http_read_timeout, 1 m) while its socket is looked at.
			c := dial(t, addr)
			defer c.Close()
			fmt.Fprintf(c, "POST /api/v1/agent/hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
			if on := serverKeepAlive(t, c); on {
				t.Errorf("the server's end of the connection from %s has SO_KEEPALIVE on", c.LocalAddr())
			}
		})
		t.Run("idle after a request "+addr, func(t *testing.T) {
			c := dial(t, addr)
			defer c.Close()
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			r := bufio.NewReader(c)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK || resp.Close {
				t.Fatalf("healthz: %d, close %v: want 200 and the connection kept", resp.StatusCode, resp.Close)
			}
			closedWithin(t, c, r, 10*time.Second)
		})
		t.Run("header never ends "+addr, func(t *testing.T) {
			c := dial(t, addr)
			defer c.Close()
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
			closedWithin(t, c, bufio.NewReader(c), 10*time.Second)
		})
	}
}

// httpListeners starts a daemon with its main HTTP listener and an --agent-listen one
// on loopback (args added to its flags), stopped when the test ends, and returns
// their addresses.
func httpListeners(t *testing.T, args ...string) []string {
	t.Helper()
	var log logbuf.Buffer
	opt, err := daemon.Parse(append([]string{"--data", t.TempDir(), "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0",
		"--token", "t0k3n-0123456789abcdef"}, args...), env(nil), &log)
	if err != nil {
		t.Fatal(err)
	}
	opt.Stderr, opt.Version = &log, "test"
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.Start(ctx, opt)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		d.Wait()
	})
	return []string{strings.TrimPrefix(d.URL, "http://"), strings.TrimPrefix(d.AgentURLs[0], "http://")}
}

// dial connects to addr without keep-alive of its own.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := (&net.Dialer{KeepAlive: -1, Timeout: 5 * time.Second}).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// closedWithin fails unless the server closes c (EOF or a reset, after whatever it
// still sends) within d.
func closedWithin(t *testing.T, c net.Conn, r *bufio.Reader, d time.Duration) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
	t.Logf("closed by the server after %v (%v)", time.Since(start).Round(10*time.Millisecond), err)
}

// serverKeepAlive is SO_KEEPALIVE of the server's end of c: the daemon runs in this
// process, so its socket is found in /proc/net/tcp (local and remote ports swapped)
// and, by inode, among this process's descriptors. Until the server accepts it, the
// socket has no descriptor (inode 0): it looks again for a while.
func serverKeepAlive(t *testing.T, c net.Conn) bool {
	t.Helper()
	client, server := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if fd, ok := socketFD(t, server.Port, client.Port); ok {
			v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
			if err != nil {
				t.Fatal(err)
			}
			return v != 0
		}
	}
	t.Fatalf("no descriptor of this process is the socket %v -> %v", server, client)
	return false
}

// socketFD is this process's descriptor of the TCP socket from local port to remote
// port, if it has one.
func socketFD(t *testing.T, local, remote int) (int, bool) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	inode := ""
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", local)) && strings.HasSuffix(f[2], fmt.Sprintf(":%04X", remote)) {
			inode = f[9]
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); inode != "" && l == "socket:["+inode+"]" {
			fd, _ := strconv.Atoi(e.Name())
			return fd, true
		}
	}
	return 0, false
}
