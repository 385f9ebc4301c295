package dhcp

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/netnstest"
)

// slowLeases is a LeaseStore whose PutLease waits until release is closed (or its
// context ends), like a database that has stopped answering; entered is closed when
// the first write waits, left when a write gives up on its context.
type slowLeases struct {
	memLeases
	entered, release, left chan struct{}
	once, leftOnce         sync.Once
}

func newSlowLeases() *slowLeases {
	return &slowLeases{entered: make(chan struct{}), release: make(chan struct{}), left: make(chan struct{})}
}

func (s *slowLeases) PutLease(ctx context.Context, l Lease) error {
	s.once.Do(func() { close(s.entered) })
	select {
	case <-s.release:
	case <-ctx.Done():
		s.leftOnce.Do(func() { close(s.left) })
		return ctx.Err()
	}
	return s.memLeases.PutLease(ctx, l)
}

// piExchange runs testdata/pi_dora.py (steps "discover" or "dora") in the client
// namespace with option 97 = opt97 and returns its replies by step.
func piExchange(e *env, opt97 []byte, steps string) (map[string]scapyReply, error) {
	script, _ := filepath.Abs("testdata/pi_dora.py")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.link.Client.Run(ctx, "/usr/bin/python3", script, e.link.ClientIf, hex.EncodeToString(opt97), steps)
	replies := map[string]scapyReply{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r scapyReply
		if json.Unmarshal([]byte(line), &r) == nil && r.Step != "" {
			replies[r.Step] = r
		}
	}
	return replies, err
}

// TestSlowStoreDelaysOnlyItsRequest: the read loop answers DISCOVERs itself but hands
// each request that writes the lease store to a goroutine of its own, so a REQUEST
// stuck in a database that does not answer holds up no one else's offer.
func TestSlowStoreDelaysOnlyItsRequest(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	need(t, "/usr/bin/python3")
	store := newSlowLeases()
	e := startServerWith(t, ModeFull, func(o *Options) { o.Leases = store })
	released := false
	release := func() {
		if !released {
			released = true
			close(store.release)
		}
	}
	t.Cleanup(release) // before the server stops (cleanups run last first)

	opt97 := capturedOption97(t)
	dora := make(chan map[string]scapyReply, 1)
	go func() {
		r, _ := piExchange(e, opt97, "dora")
		dora <- r
	}()
	select {
	case <-store.entered:
	case r := <-dora:
		t.Fatalf("the exchange ended before its REQUEST reached the store: %+v", r)
	case <-time.After(30 * time.Second):
		t.Fatal("no REQUEST reached the store in 30 s")
	}

	got, err := piExchange(e, opt97, "discover")
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := got["offer"]; !ok || r.Timeout || r.Options["53"] != "02" {
		t.Fatalf("DISCOVER while a REQUEST waits for the store: %+v, want an OFFER", got)
	}
	select {
	case <-dora:
		t.Fatal("the first exchange ended while its REQUEST still waited for the store")
	default:
	}
	release()
	<-dora // its ACK may or may not have come within the script's 5 s; the point was the OFFER above
}

// TestMalformedPacketsKeepTheLoop: datagrams that are not DHCP (too short, garbage)
// are dropped by the read loop, which goes on answering the next real client.
func TestMalformedPacketsKeepTheLoop(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	need(t, "/usr/bin/python3")
	e := startServer(t, ModeFull)
	e.link.Client.MustRun(t, "ip", "addr", "add", "10.77.0.2/24", "dev", e.link.ClientIf)
	e.link.Client.MustDo(t, func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 67})
		if err != nil {
			return err
		}
		defer c.Close()
		for _, b := range [][]byte{{1}, []byte("not a DHCP message"), make([]byte, 100), make([]byte, 3000)} {
			if _, err := c.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := piExchange(e, capturedOption97(t), "dora")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"offer", "ack"} {
		if r, ok := got[step]; !ok || r.Timeout {
			t.Errorf("%s after malformed packets: %+v", step, got)
		}
	}
}

// TestShutdownEndsRequestsInFlight: Serve returns only after the requests it handed
// to goroutines have ended, and those see its context cancelled: a REQUEST stuck in a
// store that never answers gives up, and nothing outlives the server.
func TestShutdownEndsRequestsInFlight(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	need(t, "/usr/bin/python3")
	store := newSlowLeases()
	e, cancel, done := startServerCtx(t, ModeFull, func(o *Options) { o.Leases = store })
	defer cancel()
	opt97 := capturedOption97(t)
	dora := make(chan struct{})
	go func() {
		piExchange(e, opt97, "dora")
		close(dora)
	}()
	defer func() { <-dora }()
	select {
	case <-store.entered:
	case <-dora:
		t.Fatal("the exchange ended before its REQUEST reached the store")
	case <-time.After(30 * time.Second):
		t.Fatal("no REQUEST reached the store in 30 s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still runs 10 s after its context ended")
	}
	select {
	case <-store.left:
	default:
		t.Fatal("Serve returned while a REQUEST still waited for the store")
	}
}

// gateLeases is a LeaseStore that takes writes until hang is set, and from then on
// waits in PutLease (like slowLeases) until its context ends; puts counts the calls.
type gateLeases struct {
	memLeases
	hang atomic.Bool
	puts atomic.Int32
}

func (s *gateLeases) PutLease(ctx context.Context, l Lease) error {
	s.puts.Add(1)
	if s.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.memLeases.PutLease(ctx, l)
}

// TestReusedLeaseAnsweredWhileStoreHangs: a Pi that runs its exchange again, as the
// agent and the installed system do after the bootloader, gets its ACK from the
// stored lease while the database does not answer at all: no write, and the lease
// time left of the stored lease (option 51).
func TestReusedLeaseAnsweredWhileStoreHangs(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	need(t, "/usr/bin/python3")
	store := &gateLeases{}
	e := startServerWith(t, ModeFull, func(o *Options) { o.Leases = store })
	opt97 := capturedOption97(t)
	first, err := piExchange(e, opt97, "dora")
	if err != nil || first["ack"].Options["53"] != "05" || store.puts.Load() != 1 {
		t.Fatalf("first exchange: %+v, %v, %d writes; want an ACK after one write", first, err, store.puts.Load())
	}
	store.hang.Store(true)
	again, err := piExchange(e, opt97, "dora")
	if err != nil {
		t.Fatal(err)
	}
	ack := again["ack"]
	if ack.Timeout || ack.Options["53"] != "05" || ack.YIAddr != first["ack"].YIAddr {
		t.Fatalf("second exchange while the store hangs: %+v; want an ACK for %s", again, first["ack"].YIAddr)
	}
	if n := store.puts.Load(); n != 1 {
		t.Errorf("%d lease writes, want 1 (the second exchange reuses the stored lease)", n)
	}
	secs, err := strconv.ParseUint(ack.Options["51"], 16, 32)
	if err != nil || secs >= 600 || secs < 590 {
		t.Errorf("option 51 = %q (%d s), want what is left of the stored 10 minutes", ack.Options["51"], secs)
	}
}
