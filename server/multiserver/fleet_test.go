package multiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

// board is one simulated Raspberry Pi 5: what it says in its hello.
type board struct {
	serial, mac string
}

// boards makes n boards with serials and MACs of their own, told apart by tag.
func boards(tag byte, n int) []board {
	bs := make([]board, n)
	for i := range bs {
		bs[i] = board{serial: fmt.Sprintf("%02x00%012x", tag, i), mac: fmt.Sprintf("2c:cf:67:%02x:%02x:%02x", tag, i>>8&0xff, i&0xff)}
	}
	return bs
}

// outcome is what one board ended with.
type outcome struct {
	hostname string // "" when the board got no name
	id       int64  // its deployment
	server   int    // index of the server whose answer named it
	moved    int    // times it moved to another server after a failed connection
}

// fleetRun says the boards' hellos to servers, each board starting at server
// i % len(urls), as an agent does: a deploy answer ends the board's run; a retry
// answer makes it wait retry_after_ms and ask again, until names boards of the
// fleet have been acknowledged a name (the batch is full: nothing more to wait
// for); a connection that fails (the server is gone) sends it to the next server.
type fleetRun struct {
	urls   []string
	names  int           // the batch's size
	spread time.Duration // board i starts at i*spread (0: all released at once)
	onAck  func()        // after each acknowledged name (acked and ackedBy counted); may block its board

	acked   atomic.Int64
	ackedBy []atomic.Int64 // names acknowledged per server
	retries atomic.Int64   // retry answers
	mu      sync.Mutex
	bad     []string // answers that are neither 200 nor a failed connection
	odd     []string // 200 answers that are neither deploy nor retry
	connErr []int    // failed connections per server
}

func (f *fleetRun) run(ctx context.Context, bs []board) []outcome {
	f.connErr = make([]int, len(f.urls))
	f.ackedBy = make([]atomic.Int64, len(f.urls))
	tr := &http.Transport{MaxIdleConnsPerHost: len(bs), MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	out := make([]outcome, len(bs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if f.spread > 0 {
				select {
				case <-time.After(time.Duration(i) * f.spread):
				case <-ctx.Done():
				}
			}
			out[i] = f.board(ctx, hc, b, i%len(f.urls))
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// board runs one board's hellos, starting at server srv.
func (f *fleetRun) board(ctx context.Context, hc *http.Client, b board, srv int) outcome {
	var o outcome
	for ctx.Err() == nil {
		resp, status, body, err := hello(ctx, hc, f.urls[srv], b)
		switch {
		case err != nil:
			f.mu.Lock()
			f.connErr[srv]++
			f.mu.Unlock()
			srv, o.moved = (srv+1)%len(f.urls), o.moved+1
			sleep(ctx, 20*time.Millisecond)
			continue
		case status != http.StatusOK:
			f.mu.Lock()
			f.bad = append(f.bad, fmt.Sprintf("server %d, board %s: HTTP %d: %s", srv, b.serial, status, body))
			f.mu.Unlock()
			sleep(ctx, 100*time.Millisecond)
			continue
		case resp.Action == agentapi.ActionDeploy && resp.Deployment != nil:
			o.hostname, o.id, o.server = resp.Deployment.Hostname, resp.Deployment.ID, srv
			f.ackedBy[srv].Add(1)
			f.acked.Add(1)
			if f.onAck != nil {
				f.onAck()
			}
			return o
		case resp.Action == agentapi.ActionRetry:
			f.retries.Add(1)
			if f.acked.Load() >= int64(f.names) {
				return o
			}
			sleep(ctx, time.Duration(resp.RetryAfterMS)*time.Millisecond)
		default:
			f.mu.Lock()
			f.odd = append(f.odd, fmt.Sprintf("server %d, board %s: %s (%s)", srv, b.serial, resp.Action, resp.Reason))
			f.mu.Unlock()
			return o
		}
	}
	return o
}

// hello posts b's hello to the server at url. err is a failed connection (or a
// body cut off); status and body are the answer's otherwise.
func hello(ctx context.Context, hc *http.Client, url string, b board) (resp agentapi.HelloResponse, status int, body string, err error) {
	req, _ := json.Marshal(agentapi.Hello{Serial: b.serial, MAC: b.mac, Model: "Raspberry Pi 5 Model B Rev 1.0",
		Revision: "d04170", AgentVersion: "multiserver-test",
		Disk: agentapi.Disk{Device: "/dev/mmcblk0", SizeBytes: 32 << 30, CID: "0353445345333247"}})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url+agentapi.PathHello, bytes.NewReader(req))
	if err != nil {
		return resp, 0, "", err
	}
	r.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(r)
	if err != nil {
		return resp, 0, "", err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return resp, 0, "", err
	}
	if res.StatusCode != http.StatusOK {
		return resp, res.StatusCode, string(raw), nil
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return resp, res.StatusCode, string(raw), fmt.Errorf("decode hello answer: %w", err)
	}
	return resp, res.StatusCode, "", nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// named checks the outcomes hold exactly want names, none acknowledged to two
// boards, and returns them by hostname (the board's serial).
func named(t *testing.T, bs []board, out []outcome, want int) map[string]string {
	t.Helper()
	byName := map[string]string{}
	for i, o := range out {
		if o.hostname == "" {
			continue
		}
		if other, ok := byName[o.hostname]; ok {
			t.Errorf("name %s acknowledged to two boards: %s and %s", o.hostname, other, bs[i].serial)
		}
		byName[o.hostname] = bs[i].serial
	}
	if len(byName) != want {
		t.Errorf("%d distinct names acknowledged, want exactly %d", len(byName), want)
	}
	return byName
}

// rehello says every board's hello again at server srv(i) (64 at a time) and
// checks that a named board gets its name and deployment back and that a board
// without a name gets none.
func rehello(t *testing.T, urls []string, bs []board, out []outcome, srv func(i int) int) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			s := srv(i)
			resp, status, body, err := hello(context.Background(), hc, urls[s], b)
			if err != nil || status != http.StatusOK {
				t.Errorf("re-hello of %s at server %d: %v HTTP %d %s", b.serial, s, err, status, body)
				return
			}
			var got outcome
			if resp.Deployment != nil {
				got.hostname, got.id = resp.Deployment.Hostname, resp.Deployment.ID
			}
			if want := out[i]; got.hostname != want.hostname || got.id != want.id {
				t.Errorf("re-hello of %s at server %d: %s %q deployment %d, want %q deployment %d (%s)",
					b.serial, s, resp.Action, got.hostname, got.id, want.hostname, want.id, resp.Reason)
			}
		}()
	}
	wg.Wait()
}

// perServer is the names acknowledged per server so far.
func (f *fleetRun) perServer() []int64 {
	n := make([]int64, len(f.ackedBy))
	for i := range f.ackedBy {
		n[i] = f.ackedBy[i].Load()
	}
	return n
}
