package api_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// procStats reads a process's open descriptors and resident memory (KiB) from /proc.
func procStats(t testing.TB, pid int) (fds, rssKiB int) {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKiB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return len(ents), rssKiB
}

// fdList lists a process's descriptors, for failure messages.
func fdList(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		fmt.Fprintf(&b, "%s -> %s\n", e.Name(), l)
	}
	return b.String()
}

// dialFrom connects to the server from the loopback address src (127.0.0.0/8 is all
// ours), with a receive buffer of rcvbuf bytes when rcvbuf > 0.
func dialFrom(src, url string, rcvbuf int) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
			return serr
		}
	}
	return d.Dial("tcp", strings.TrimPrefix(url, "http://"))
}

// clientFrom is an HTTP client whose connections come from the loopback address src.
func clientFrom(src string) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext}}
}

// board is what a real board does over HTTP: hello, then the whole image, checked
// against the manifest's compressed SHA256.
func board(t testing.TB, c *http.Client, srv *servertest.Server, i int, wantSHA string) error {
	t.Helper()
	var r agentapi.HelloResponse
	b, _ := jsonMarshal(helloOf(i))
	resp, err := c.Post(srv.URL+agentapi.PathHello, "application/json", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("hello: %d %s", resp.StatusCode, body)
	}
	if err := jsonUnmarshal(body, &r); err != nil || r.Action != agentapi.ActionDeploy {
		return fmt.Errorf("hello: %v %s", err, body)
	}
	resp, err = c.Get(r.Deployment.Image.URL)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); resp.StatusCode != 200 || got != wantSHA {
		return fmt.Errorf("image: %d, sha256 %s, want %s", resp.StatusCode, got, wantSHA)
	}
	return nil
}

// TestHTTPConnectionFloodLeavesBoardsServed pins the HTTP descriptor exhaustion of
// issue 13 (slow bodies and idle keep-alive connections never closed: 20 000
// connections, 20 000 descriptors, /healthz and hello timing out). One host opens 600
// connections: idle keep-alive, headers never finished, bodies never finished; twelve
// more hosts open 30 idle keep-alive connections each, past the global cap. The real
// rpi-deployd keeps one host to its per-source cap (429 for the rest), reclaims idle
// connections to stay under the global cap, a board on another address gets its
// hello and its whole image meanwhile, and the timeouts close every attacking
// connection: the descriptors come back to where they were.
func TestHTTPConnectionFloodLeavesBoardsServed(t *testing.T) {
	const maxConns, perSource = 300, 32
	srv := servertest.Start(t, servertest.Options{Args: []string{
		"--http-max-conns", strconv.Itoa(maxConns), "--http-max-conns-per-source", strconv.Itoa(perSource),
		"--http-read-header-timeout", "2s", "--http-read-timeout", "3s", "--http-idle-timeout", "3s"}})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 5, Image: testImage(t)})
	if err := board(t, clientFrom("127.0.0.1"), srv, 1, fleet.Manifest.CompressedSHA256); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	fds0, rss0 := procStats(t, srv.PID())

	requests := []string{
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",    // then stays idle
		"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow:", // headers never end
		"POST " + agentapi.PathHello + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", // body never ends
	}
	type attack struct {
		c    net.Conn
		kind int
	}
	var mu sync.Mutex
	var conns []attack
	var refused, dialErrs int
	open := func(src string, n int, kinds []int) {
		for i := range n {
			c, err := dialFrom(src, srv.URL, 0)
			if err != nil {
				dialErrs++
				continue
			}
			k := kinds[i%len(kinds)]
			c.Write([]byte(requests[k]))
			mu.Lock()
			conns = append(conns, attack{c, k})
			mu.Unlock()
		}
	}
	defer func() {
		for _, a := range conns {
			a.c.Close()
		}
	}()
	open("127.0.0.2", 600, []int{0, 1, 2})
	for h := range 12 {
		open(fmt.Sprintf("127.0.1.%d", h+1), 30, []int{0})
	}
	// Read what each connection got within a second: a 200 (kept open), a 429/503
	// and the close (refused), only the close (refused while 64 refusals were being
	// answered already), or nothing yet (kept, waiting for the rest of the request).
	var wg sync.WaitGroup
	gone := make([]bool, len(conns))
	for i, a := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.c.SetReadDeadline(time.Now().Add(time.Second))
			line, err := bufio.NewReader(a.c).ReadString('\n')
			var ne net.Error
			gone[i] = strings.Contains(line, " 429 ") || strings.Contains(line, " 503 ") ||
				(line == "" && err != nil && !(errors.As(err, &ne) && ne.Timeout()))
			a.c.SetReadDeadline(time.Time{})
		}()
	}
	wg.Wait()
	for _, g := range gone {
		if g {
			refused++
		}
	}
	fdsAttack, rssAttack := procStats(t, srv.PID())

	// A board on its own address is served while every attacking connection is open.
	bc, hc := clientFrom("127.0.0.1"), clientFrom("127.0.0.3")
	if err := board(t, bc, srv, 2, fleet.Manifest.CompressedSHA256); err != nil {
		t.Errorf("board during the flood: %v", err)
	}
	if resp, err := hc.Get(srv.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz during the flood: %v", err)
	} else {
		resp.Body.Close()
	}
	bc.CloseIdleConnections()
	hc.CloseIdleConnections()
	if fdsAttack > fds0+maxConns+16 {
		t.Errorf("%d descriptors during the flood (%d before): the cap of %d connections did not hold", fdsAttack, fds0, maxConns)
	}
	if want := len(conns) - perSource - 12*30; refused < want {
		t.Errorf("%d of %d connections refused with 429/503; want at least %d (one host past its cap of %d)", refused, len(conns), want, perSource)
	}

	// The timeouts close every attacking connection the server kept: reading ends
	// with EOF or a reset, not with our own (longer) deadline.
	for i, a := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := io.Copy(io.Discard, a.c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("attacking connection %d (%q) still open after 10 s", i, requests[a.kind])
			}
		}()
	}
	wg.Wait()
	fdsAfter, rssAfter := procStats(t, srv.PID())
	for deadline := time.Now().Add(5 * time.Second); fdsAfter > fds0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		fdsAfter, rssAfter = procStats(t, srv.PID())
	}
	t.Logf("%d attacking connections (%d dial errors), %d refused at once; server descriptors %d before, %d during, %d after; RSS %d / %d / %d KiB",
		len(conns), dialErrs, refused, fds0, fdsAttack, fdsAfter, rss0, rssAttack, rssAfter)
	// The store may have opened another SQLite connection or two for the hellos
	// (database, WAL and shared-memory files each); attacking connections would be
	// hundreds.
	if fdsAfter > fds0+6 {
		t.Errorf("%d descriptors after the timeouts; %d before:\n%s", fdsAfter, fds0, fdList(srv.PID()))
	}
	if !strings.Contains(srv.Log(), "http: connections refused") {
		t.Errorf("no WARN about refused connections in the log")
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
