package daemon_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// mustPort is addr's port.
func mustPort(t *testing.T, addr string) int {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a.Port
}

// TestListenersDeferAccept: the HTTP listeners (the main one and an --agent-listen
// one) have TCP_DEFER_ACCEPT set, so a connection whose client has sent nothing yet
// is not accepted (the server has no descriptor for it a few hundred milliseconds
// after the handshake; the kernel keeps it for about a second) and its request,
// once sent, is answered as any other.
func TestListenersDeferAccept(t *testing.T) {
	for _, addr := range httpListeners(t) {
		t.Run(addr, func(t *testing.T) {
			port := mustPort(t, addr)
			lfd, ok := socketFD(t, port, 0)
			if !ok {
				t.Fatalf("no descriptor of this process is the listening socket of %s", addr)
			}
			if v, err := syscall.GetsockoptInt(lfd, syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT); err != nil || v <= 0 {
				t.Errorf("listener %s: TCP_DEFER_ACCEPT %d (%v), want it set", addr, v, err)
			}
			// Looked at 300 ms after the handshake, well within the kernel's deferral
			// (about a second); again with a new connection when a loaded machine made
			// the look end later than 800 ms after it.
			var c net.Conn
			for try := 0; ; try++ {
				c = dial(t, addr)
				start := time.Now()
				time.Sleep(300 * time.Millisecond)
				_, accepted := socketFD(t, port, c.LocalAddr().(*net.TCPAddr).Port)
				if time.Since(start) < 800*time.Millisecond {
					if accepted {
						t.Errorf("listener %s: a connection that has sent nothing was accepted", addr)
					}
					break
				}
				c.Close()
				if try == 10 {
					t.Fatal("could not look at the server's descriptors within 800 ms of a handshake")
				}
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("listener %s: healthz %d once the request was sent", addr, resp.StatusCode)
			}
		})
	}
}
