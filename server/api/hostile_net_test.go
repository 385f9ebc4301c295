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
	// A child process: its descriptors are counted in /proc, apart from the attackers'.
	srv := servertest.Start(t, servertest.Options{Process: true, Args: []string{
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
	if !srv.WaitLog("http: connections refused", 3*time.Second) {
		t.Errorf("no WARN about refused connections in the log")
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `rpideploy_http_connections_refused_total{reason="per_source"} `) ||
		strings.Contains(string(metrics), `rpideploy_http_connections_refused_total{reason="per_source"} 0`+"\n") {
		t.Errorf("/metrics does not count the refused connections:\n%s", metrics)
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// bigImage packs a 24 MiB image of random bytes (incompressible): more than the
// socket buffers hold, so a reader that stops reading stalls the server's writes.
func bigImage(t *testing.T) string {
	t.Helper()
	return servertest.PackedImage(t, t.TempDir(), "kxp2-big", 24<<20, 1<<20)
}

// TestDownloadDeadlinesMoveWithTheBytes: with read and write timeouts of 2 s, a board that
// reads the 24 MiB image slowly but steadily (6 s in all) gets all of it, byte-exact
// (the deadline moves on with every 1 MiB), while a reader that stops for 6 s is cut:
// its connection and descriptor do not stay with the server.
func TestDownloadDeadlinesMoveWithTheBytes(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--http-write-timeout", "2s", "--http-read-timeout", "2s"}})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 5, Image: bigImage(t)})
	url := srv.URL + "/images/" + fleet.ImageName + ".img.zst"
	size := fleet.Manifest.CompressedSize

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // slow but moving: 256 KiB every 64 ms, about 4 MiB/s
		defer wg.Done()
		resp, err := http.Get(url)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		h := sha256.New()
		start := time.Now()
		for {
			n, err := io.CopyN(h, resp.Body, 256<<10)
			if err != nil || n == 0 {
				break
			}
			time.Sleep(64 * time.Millisecond)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != fleet.Manifest.CompressedSHA256 {
			t.Errorf("slow reader: sha256 %s after %v, want the image's %s", got, time.Since(start), fleet.Manifest.CompressedSHA256)
		} else {
			t.Logf("slow reader: %d bytes in %v with a 2 s write timeout", size, time.Since(start).Round(time.Millisecond))
		}
	}()

	c, err := dialFrom("127.0.0.2", srv.URL, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /images/%s.img.zst HTTP/1.1\r\nHost: x\r\n\r\n", fleet.ImageName)
	if _, err := io.CopyN(io.Discard, c, 64<<10); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second) // stalled: the server's writes block, then time out
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if n+64<<10 >= size {
		t.Errorf("a reader stalled for 6 s got all %d bytes; the write timeout (2 s) should have cut it", size)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the stalled reader's connection was still open 20 s later")
	}
	t.Logf("stalled reader: cut after %d of %d bytes (%v)", n+64<<10, size, err)
	wg.Wait()
}

// TestTooManyRangesRefused pins the range amplification of issue 13 (a 40 000-range
// request built a 5.7 MB answer): such a header is past the 64 KiB header limit (431),
// and past 16 ranges the answer is a short 416 with a JSON error that says why; 2
// ranges still get their multipart answer, one range its bytes.
func TestTooManyRangesRefused(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 5, Image: testImage(t)})
	url := srv.URL + "/images/" + fleet.ImageName + ".img.zst"
	get := func(rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Range", rng)
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	var many []string
	for i := range 40000 {
		many = append(many, fmt.Sprintf("%d-%d", i*7, i*7))
	}
	// 40 000 ranges (about 400 KB of header) are past the 64 KiB header limit now.
	if resp, body := get("bytes=" + strings.Join(many, ",")); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("40 000 ranges: %d %.100q, want 431", resp.StatusCode, body)
	}
	// 4000 ranges fit in 64 KiB of header; net/http's ServeContent would build a
	// multipart answer with 4000 parts.
	resp, body := get("bytes=" + strings.Join(many[:4000], ","))
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || !strings.Contains(string(body), "at most 16") ||
		len(body) > 200 {
		t.Errorf("4000 ranges: %d, %d bytes %.200q; want a short 416 naming the limit", resp.StatusCode, len(body), body)
	}
	if cr := resp.Header.Get("Content-Range"); cr != "bytes */"+strconv.FormatInt(fleet.Manifest.CompressedSize, 10) {
		t.Errorf("Content-Range %q", cr)
	}
	resp, body = get("bytes=0-9,100-109")
	if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") {
		t.Errorf("2 ranges: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, body = get("bytes=1048576-")
	if resp.StatusCode != http.StatusPartialContent || int64(len(body)) != fleet.Manifest.CompressedSize-1048576 {
		t.Errorf("resume from 1 MiB: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestSymlinksInImagesDirNotServed pins issue 13's "symlinks in the images directory
// are served without a DB row": a symlink to a file outside, named like an image, and
// a ready image whose file was swapped for a symlink (to a copy inside the directory)
// are both 404, while the real image is served.
func TestSymlinksInImagesDirNotServed(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	fleet := srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "KXP2", Count: 5, Image: testImage(t)})
	imgs := srv.DataDir + "/images"
	secret := t.TempDir() + "/secret"
	os.WriteFile(secret, []byte("root:secret-hash\n"), 0o600)
	for _, n := range []string{"evil.img.zst", "evil.manifest.json"} {
		if err := os.Symlink(secret, imgs+"/"+n); err != nil {
			t.Fatal(err)
		}
	}
	status := func(name string) (int, string) {
		resp, err := httpc.Get(srv.URL + "/images/" + name)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	real := fleet.ImageName + ".img.zst"
	if code, _ := status(real); code != 200 {
		t.Fatalf("the real image: %d", code)
	}
	for _, n := range []string{"evil.img.zst", "evil.manifest.json"} {
		if code, body := status(n); code != 404 || strings.Contains(body, "secret") {
			t.Errorf("%s (symlink out, no row): %d %q", n, code, body)
		}
	}
	// The ready image's file becomes a symlink to a copy of itself in the same directory.
	b, err := os.ReadFile(imgs + "/" + real)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(imgs+"/copy.bin", b, 0o600)
	os.Remove(imgs + "/" + real)
	if err := os.Symlink("copy.bin", imgs+"/"+real); err != nil {
		t.Fatal(err)
	}
	if code, body := status(real); code != 404 {
		t.Errorf("a ready image whose file is a symlink: %d %.100q, want 404", code, body)
	}
	if !srv.WaitLog("image download refused", 3*time.Second) {
		t.Errorf("the refused symlink was not logged")
	}
}

// TestEventStreamsCappedAndStalledOnesCut pins the event-stream finding of issue 13
// (2000 stalled clients held 350 MB): past --max-event-streams a stream gets a clear
// 503; streams whose clients stop reading are cut by the write timeout once their
// buffers fill, which frees their places; a stream that is read all along outlives
// the read and write timeouts; boards are served all along.
func TestEventStreamsCappedAndStalledOnesCut(t *testing.T) {
	const streams = 8
	// A child process (its descriptors and memory are counted in /proc); 40 boards say
	// hello from 127.0.0.1: the per-address deployment limits are off.
	srv := servertest.Start(t, servertest.Options{Process: true, NoSourceLimits: true, Args: []string{"--max-event-streams", strconv.Itoa(streams),
		"--http-write-timeout", "2s", "--http-read-timeout", "2s"}})
	srv.Setup(t, servertest.Fleet{Venue: "CORO", Product: "RXP2", Count: 0, Image: testImage(t)})
	// A dashboard that reads its stream all along: it must outlive the read and write
	// timeouts (2 s: they are per request and per write, not per connection) and see
	// the last board's hello at the end.
	live, err := dialFrom("127.0.0.3", srv.URL, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	fmt.Fprintf(live, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", srv.Token)
	lastSerial := serialOf(999)
	sawLast := make(chan struct{})
	go func() {
		br := bufio.NewReader(live)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.Contains(line, lastSerial) && strings.Contains(line, "deployment.created") {
				close(sawLast)
				io.Copy(io.Discard, br)
				return
			}
		}
	}()
	open := func() (net.Conn, string) {
		t.Helper()
		c, err := dialFrom("127.0.0.2", srv.URL, 4096)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", srv.Token)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.SetReadDeadline(time.Time{})
		return c, line
	}
	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for i := range streams - 1 { // the live stream holds one place
		c, line := open()
		if !strings.Contains(line, " 200 ") {
			t.Fatalf("stream %d: %q", i, line)
		}
		stalled = append(stalled, c) // never read again
	}
	if c, line := open(); !strings.Contains(line, " 503 ") {
		t.Errorf("stream %d of %d: %q, want 503", streams+1, streams, line)
	} else {
		c.Close()
	}
	fds0, rss0 := procStats(t, srv.PID())
	// Boards say hello and report progress: each event goes to every stream.
	start := time.Now()
	var deps []*agentapi.Deployment
	for i := range 40 {
		r := hello(t, srv, helloOf(100+i))
		deps = append(deps, r.Deployment)
	}
	// Events until the stalled streams are cut (socket buffers full, then the bus's
	// buffer full → reset, the write blocked → cut by the write timeout) and a new
	// stream gets a place: bounded by 200 rounds of 40 events (about 5 MB per stream,
	// more than the 4 MiB a socket's send buffer grows to here).
	var line string
	sent := 0
	for round := 0; round < 200 && !strings.Contains(line, " 200 "); round++ {
		for _, d := range deps {
			if code := event(t, srv, d, agentapi.Event{Phase: "streaming", Bytes: int64(round) << 20, Total: 3 << 20, RateBps: 1e8}); code != 200 {
				t.Fatalf("event: %d", code)
			}
			sent++
		}
		if round%10 == 9 {
			c, l := open()
			c.Close()
			line = l
		}
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(line, " 200 ") && time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		c, l := open()
		c.Close()
		line = l
	}
	t.Logf("40 boards, %d events in %v while %d streams stalled", sent, time.Since(start).Round(time.Millisecond), len(stalled))
	if !strings.Contains(line, " 200 ") {
		t.Errorf("a new stream after the stalled ones should have been cut: %q", line)
	}
	fds1, rss1 := procStats(t, srv.PID())
	t.Logf("server: %d descriptors, RSS %d KiB with %d stalled streams; %d, %d KiB after they were cut", fds0, rss0, len(stalled), fds1, rss1)
	if time.Since(start) < 3*time.Second {
		time.Sleep(3*time.Second - time.Since(start))
	}
	hello(t, srv, helloOf(999))
	select {
	case <-sawLast:
	case <-time.After(10 * time.Second):
		t.Errorf("the stream read all along did not get the last hello's event (alive for %v; read and write timeouts 2 s)", time.Since(start))
	}
}

// slowReader hands out its bytes piece by piece with a pause before each, and can
// stop for a while after a given offset.
type slowReader struct {
	b           []byte
	off, piece  int
	pause       time.Duration
	stallAt     int
	stall       time.Duration
	stalledOnce bool
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	if !r.stalledOnce && r.stall > 0 && r.off >= r.stallAt {
		r.stalledOnce = true
		time.Sleep(r.stall)
	}
	time.Sleep(r.pause)
	n := copy(p[:min(len(p), r.piece)], r.b[r.off:])
	r.off += n
	return n, nil
}

// TestUploadDeadlineMovesWithTheBytes: with a read timeout of 2 s, an image upload
// whose bytes keep coming for several seconds (a piece every 150 ms) is accepted whole
// (its read deadline moves on with the bytes), while one that stops for 5 s is cut
// with 408 and resumes from where the server stands.
func TestUploadDeadlineMovesWithTheBytes(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Args: []string{"--http-read-timeout", "2s"}})
	img := testImage(t)
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile(strings.TrimSuffix(img, ".img.zst") + ".manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(img[strings.LastIndex(img, "/")+1:], ".img.zst")
	put := func(path string, body io.Reader, size int64, rng string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/api/v1/images/"+name+path, body)
		req.ContentLength = size
		req.Header.Set("Authorization", "Bearer "+srv.Token)
		if rng != "" {
			req.Header.Set("Content-Range", rng)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	size := int64(len(raw))
	all := fmt.Sprintf("bytes 0-%d/%d", size-1, size)

	// Stalled: 1 MiB, then nothing for 5 s.
	if code, body := put("/manifest?allow_no_first_boot=true", bytes.NewReader(man), int64(len(man)), ""); code != 200 {
		t.Fatalf("manifest: %d %s", code, body)
	}
	start := time.Now()
	code, body := put("/data", &slowReader{b: raw, piece: 64 << 10, stallAt: 1 << 20, stall: 5 * time.Second}, size, all)
	if code != http.StatusRequestTimeout || !strings.Contains(body, "timeout") {
		t.Errorf("an upload that stopped for 5 s with a 2 s read timeout: %d %s, want 408", code, body)
	}
	t.Logf("stalled upload: %d %.120s after %v", code, body, time.Since(start).Round(time.Millisecond))

	// Slow but moving: a piece (what the client's copy buffer asks for, at most 128
	// KiB) every 150 ms, resumed from the server's offset.
	var st struct {
		Offset int64  `json:"offset"`
		State  string `json:"state"`
	}
	if err := srv.Do(t.Context(), http.MethodGet, "/api/v1/images/"+name+"/upload", nil, &st); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	code, body = put("/data", &slowReader{b: raw[st.Offset:], piece: 128 << 10, pause: 150 * time.Millisecond}, size-st.Offset,
		fmt.Sprintf("bytes %d-%d/%d", st.Offset, size-1, size))
	if code != 200 || !strings.Contains(body, `"ready"`) {
		t.Fatalf("slow upload from offset %d: %d %s", st.Offset, code, body)
	}
	t.Logf("slow upload from offset %d: ready after %v with a 2 s read timeout", st.Offset, time.Since(start).Round(time.Millisecond))
}
