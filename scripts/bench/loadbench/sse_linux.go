package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// sse opens n event streams and reads them until stop is called. It returns once
// all n are open (the server has answered each with 200). acceptEncoding is the
// streams' Accept-Encoding ("": none, a plain stream).
//
// The readers share the server's CPUs here, so they must cost as little as a
// dashboard's browser costs the server, which runs elsewhere: the streams are plain
// sockets outside Go's runtime, one goroutine waits for all of them in one epoll set
// and drains each readable one with a single read(2) into one 1 MiB buffer, and the
// bytes are only scanned for the blank lines that end SSE messages. No HTTP client,
// no chunk decoding, no goroutine or buffer per stream. A compressed stream cannot be
// scanned: the events of one in sampleEvery are counted at stop, from the bytes it
// received, kept and decoded then.
func sse(url, token, acceptEncoding string, n int) (stop func(), err error) {
	addr := strings.TrimPrefix(url, "http://")
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, err
	}
	sa := &unix.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	ae := ""
	if acceptEncoding != "" {
		ae = "\r\nAccept-Encoding: " + acceptEncoding
	}
	req := []byte("GET /api/v1/events HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + token +
		"\r\nAccept: text/event-stream" + ae + "\r\nConnection: close\r\n\r\n") // a stream the server ends (reset) reads EOF
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	r := &streamReader{ep: ep, kept: map[int]*bytes.Buffer{}}
	for i := range n {
		fd, gz, body, err := openStream(sa, req)
		if gz && i%sampleEvery == 0 {
			r.kept[fd] = bytes.NewBuffer(body)
		}
		r.gzip = r.gzip || gz
		if err == nil {
			err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
		}
		if err != nil {
			r.closeAll()
			return nil, err
		}
		r.fds = append(r.fds, fd)
	}
	r.lastNL = make([]bool, slices.Max(r.fds)+1)
	r.wg.Add(1)
	go r.run()
	return func() {
		r.stop.Store(true)
		r.wg.Wait()
		r.closeAll()
		if !r.gzip {
			fmt.Fprintf(os.Stderr, "loadbench: %d subscribers received %d events, %d bytes; %d streams ended early\n",
				n, r.events, r.bytes, r.ended)
			return
		}
		events, plain, resets := 0, 0, 0
		for _, b := range r.kept {
			e, p, reset := decodeGzipStream(b)
			events, plain = events+e, plain+p
			if reset {
				resets++
			}
		}
		fmt.Fprintf(os.Stderr, "loadbench: %d subscribers received %d bytes gzip (%d streams decoded: %.0f events, %.0f bytes each; %.1f× compressed; %d reset); %d streams ended early\n",
			n, r.bytes, len(r.kept), float64(events)/float64(len(r.kept)), float64(plain)/float64(len(r.kept)),
			float64(plain)*float64(n)/float64(len(r.kept))/float64(r.bytes), resets, r.ended)
	}, nil
}

// sampleEvery: of compressed streams, one in sampleEvery is kept and decoded at stop.
const sampleEvery = 100

// decodeGzipStream decodes the body of a gzip-compressed event stream as received so
// far and returns its events (SSE messages) and its length decoded. The server sends
// it close-delimited over HTTP/1.1, or chunked (which net/http's writer does): the
// body then starts with a chunk size, not gzip's magic number.
func decodeGzipStream(body *bytes.Buffer) (events, n int, reset bool) {
	var r io.Reader = body
	if !bytes.HasPrefix(body.Bytes(), []byte{0x1f, 0x8b}) {
		r = httputil.NewChunkedReader(body)
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return 0, 0, false
	}
	br := bufio.NewReader(zr)
	blank := false
	for {
		line, err := br.ReadSlice('\n')
		n += len(line)
		if len(line) == 1 && line[0] == '\n' && !blank {
			events++
		}
		blank = len(line) == 1
		reset = reset || string(line) == "event: reset\n"
		if err == io.EOF || (err != nil && err != bufio.ErrBufferFull) {
			return events, n, reset
		}
	}
}

// openStream connects a blocking socket to sa, sends req and reads the response
// head; it returns the socket, now non-blocking, once the head says 200, and whether
// the body is gzip-compressed, and the body's bytes read with the head.
func openStream(sa *unix.SockaddrInet4, req []byte) (fd int, gz bool, body []byte, err error) {
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, false, nil, fmt.Errorf("socket: %w", err)
	}
	fail := func(err error) (int, bool, []byte, error) { unix.Close(fd); return -1, false, nil, err }
	if err := unix.Connect(fd, sa); err != nil {
		return fail(fmt.Errorf("connect: %w", err))
	}
	if _, err := unix.Write(fd, req); err != nil {
		return fail(fmt.Errorf("send request: %w", err))
	}
	var head []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(head, []byte("\r\n\r\n")) {
		k, err := unix.Read(fd, buf)
		if err != nil || k == 0 {
			return fail(fmt.Errorf("read response head: %v (got %q)", err, head))
		}
		head = append(head, buf[:k]...)
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) {
		return fail(fmt.Errorf("GET /api/v1/events: %q", head[:bytes.IndexByte(head, '\r')]))
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(err)
	}
	head, body, _ = bytes.Cut(head, []byte("\r\n\r\n"))
	return fd, bytes.Contains(bytes.ToLower(head), []byte("\r\ncontent-encoding: gzip")), body, nil
}

// streamReader drains the streams registered in its epoll set.
type streamReader struct {
	ep     int
	fds    []int
	lastNL []bool                // by fd: the last byte read was '\n' (a message's blank line may span reads)
	gzip   bool                  // the streams are compressed: events are not counted as read
	kept   map[int]*bytes.Buffer // by fd: what sampled compressed streams received
	stop   atomic.Bool
	wg     sync.WaitGroup
	// Read by stop after wg.Wait.
	events, bytes, ended int64
}

func (r *streamReader) run() {
	defer r.wg.Done()
	buf := make([]byte, 1<<20)
	evs := make([]unix.EpollEvent, 512)
	for !r.stop.Load() {
		k, err := unix.EpollWait(r.ep, evs, 100)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadbench: epoll_wait:", err)
			return
		}
		for _, e := range evs[:k] {
			r.drain(int(e.Fd), buf)
		}
	}
}

// drain reads once from fd (level-triggered: what is left wakes the next wait).
func (r *streamReader) drain(fd int, buf []byte) {
	k, err := unix.Read(fd, buf)
	if errors.Is(err, unix.EAGAIN) {
		return
	}
	if err != nil || k == 0 {
		unix.EpollCtl(r.ep, unix.EPOLL_CTL_DEL, fd, nil)
		r.ended++
		return
	}
	b := buf[:k]
	r.bytes += int64(k)
	if r.gzip {
		if kb := r.kept[fd]; kb != nil {
			kb.Write(b)
		}
		return
	}
	if r.lastNL[fd] && b[0] == '\n' {
		r.events++
	}
	r.events += int64(bytes.Count(b, []byte("\n\n")))
	r.lastNL[fd] = b[k-1] == '\n'
}

func (r *streamReader) closeAll() {
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	unix.Close(r.ep)
}
