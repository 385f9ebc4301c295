package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/agent/flash"
	"github.com/rpi-deploy/rpi-deploy/agent/retry"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
	"github.com/rpi-deploy/rpi-deploy/server/servertest"
)

// origin stands in for a server that hands out a metainfo and web seeds a file: the
// torrent, the announce (no peers) and the web seed, all checking the secret.
type origin struct {
	*httptest.Server
	mu        sync.Mutex
	announces []agentapi.SwarmAnnounce
	served    int64                // image bytes the handlers wrote, counted as each request ends
	serving   int                  // image requests whose handler has not returned yet
	peers     []agentapi.SwarmPeer // listed in every answer
	share     *agentapi.SwarmShare // given in every answer
	// stall: a ranged image request gets its headers and 1 KiB, then nothing more
	// until the client ends it (or the test does); stalled counts those requests,
	// stalledOpen the ones not ended yet.
	stall                bool
	stalled, stalledOpen int
	release              chan struct{}
	busy                 bool           // answer each marked piece request 503 once (Retry-After: 1)
	declined             map[string]int // Range → busy answers
}

const testSecret = "s3cret-of-the-deployment"

func newOrigin(t *testing.T, file string, pieceLen int64) (*origin, metainfo.Hash) {
	t.Helper()
	info := metainfo.Info{PieceLength: pieceLen}
	if err := info.BuildFromFilePath(file); err != nil {
		t.Fatal(err)
	}
	info.Name = "img.img.zst"
	ib, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var tb bytes.Buffer
	if err := (&metainfo.MetaInfo{InfoBytes: ib}).Write(&tb); err != nil {
		t.Fatal(err)
	}
	o := &origin{}
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(agentapi.HeaderSecret) != testSecret {
				http.Error(w, "no secret", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /torrent", auth(func(w http.ResponseWriter, r *http.Request) { w.Write(tb.Bytes()) }))
	mux.HandleFunc("POST /announce", auth(func(w http.ResponseWriter, r *http.Request) {
		var a agentapi.SwarmAnnounce
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		o.announces = append(o.announces, a)
		ans := agentapi.SwarmAnswer{IntervalMS: 200, Peers: o.peers, Share: o.share}
		o.mu.Unlock()
		json.NewEncoder(w).Encode(ans)
	}))
	o.release = make(chan struct{})
	t.Cleanup(func() { close(o.release) })
	mux.HandleFunc("GET /img.img.zst", auth(func(w http.ResponseWriter, r *http.Request) {
		var first, last int64
		o.mu.Lock()
		o.serving++
		stall := o.stall
		o.mu.Unlock()
		cw := &countWriter{ResponseWriter: w}
		defer func() {
			o.mu.Lock()
			o.serving--
			o.served += cw.n
			o.mu.Unlock()
		}()
		o.mu.Lock()
		rng := r.Header.Get("Range")
		decline := o.busy && r.Header.Get(agentapi.HeaderSwarmPiece) != "" && o.declined[rng] == 0
		if decline {
			if o.declined == nil {
				o.declined = map[string]int{}
			}
			o.declined[rng]++
		}
		o.mu.Unlock()
		if decline {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &first, &last); stall && err == nil {
			o.mu.Lock()
			o.stalled++
			o.stalledOpen++
			o.mu.Unlock()
			w.Header().Set("Content-Length", strconv.FormatInt(last-first+1, 10))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(make([]byte, 1024))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-o.release:
			}
			o.mu.Lock()
			o.stalledOpen--
			o.mu.Unlock()
			return
		}
		http.ServeFile(cw, r, file)
	}))
	o.Server = httptest.NewServer(mux)
	t.Cleanup(o.Close)
	return o, metainfo.HashBytes(ib)
}

// until polls cond, called with o.mu held, until it holds (true) or ctx ends (false).
func (o *origin) until(ctx context.Context, cond func() bool) bool {
	for {
		o.mu.Lock()
		ok := cond()
		o.mu.Unlock()
		if ok {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settledServed is o.served once every image request has ended: a client may have
// read a response's last bytes before its handler has returned and counted them.
func (o *origin) settledServed(ctx context.Context, t *testing.T) int64 {
	t.Helper()
	var n int64
	if !o.until(ctx, func() bool { n = o.served; return o.serving == 0 }) {
		t.Fatal("image requests still open")
	}
	return n
}

// readImage is everything sw's reader gives from the start.
func readImage(ctx context.Context, t *testing.T, sw *Swarm) []byte {
	t.Helper()
	rc, err := sw.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type countWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (o *origin) config(hash metainfo.Hash, m *manifest.Manifest, log *slog.Logger) Config {
	return Config{Swarm: agentapi.Swarm{InfoHash: hash.HexString(), TorrentURL: o.URL + "/torrent", AnnounceURL: o.URL + "/announce", IntervalMS: 200},
		Secret: testSecret, WebSeed: o.URL + "/img.img.zst", CompressedSize: m.CompressedSize, Listen: "127.0.0.1:0",
		Stall: 20 * time.Second, Log: log}
}

func packed(t *testing.T, name string, size int64) (string, *manifest.Manifest) {
	t.Helper()
	zst := servertest.PackedImage(t, t.TempDir(), name, size, 1<<20)
	m, err := manifest.Load(manifest.PathFor(zst))
	if err != nil {
		t.Fatal(err)
	}
	return zst, m
}

// joinAndOpen joins the swarm of an origin seeding file (64 KiB pieces) and opens a
// card image file to flash m onto; all three end with the test (2 minutes at most).
func joinAndOpen(t *testing.T, file string, m *manifest.Manifest) (context.Context, *Swarm, *flash.Flasher, string) {
	t.Helper()
	o, hash := newOrigin(t, file, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	sw, err := Join(ctx, o.config(hash, m, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	target := filepath.Join(t.TempDir(), "card.img")
	fl, err := flash.Open(target, m, flash.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close() })
	return ctx, sw, fl, target
}

// TestFlashFromWebSeed: one board alone in its swarm gets every piece from the web
// seed through the BitTorrent client and the card verifies; every byte came from the
// server, none from peers.
func TestFlashFromWebSeed(t *testing.T) {
	zst, m := packed(t, "alone", 6<<20)
	ctx, sw, fl, _ := joinAndOpen(t, zst, m)
	if err := fl.Stream(ctx, sw); err != nil {
		t.Fatal(err)
	}
	if _, err := fl.Verify(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := fl.Commit(); err != nil {
		t.Fatal(err)
	}
	fs, fp, _ := sw.Counts()
	if fs != m.CompressedSize || fp != 0 {
		t.Errorf("from server %d, from peers %d; want %d and 0", fs, fp, m.CompressedSize)
	}
	if st := fl.Stats(); st.SHA256 != m.SHA256 {
		t.Errorf("stream sha256 %s, manifest %s", st.SHA256, m.SHA256)
	}
}

// TestServerOnlyForWhatPeersLack: a board whose share of the pieces is only the
// first one, beside a peer that holds the whole image, asks the server for that one
// piece at most and gets every other from the peer; the bytes it reads are the image.
func TestServerOnlyForWhatPeersLack(t *testing.T) {
	zst, m := packed(t, "share", 6<<20)
	o, hash := newOrigin(t, zst, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want, err := os.ReadFile(zst)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Join(ctx, o.config(hash, m, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !bytes.Equal(readImage(ctx, t, a), want) {
		t.Fatal("board a read other bytes than the image")
	}
	o.mu.Lock()
	o.peers = []agentapi.SwarmPeer{{IP: "127.0.0.1", Port: a.Port(), Serial: "a"}}
	o.share = &agentapi.SwarmShare{Index: 0, Of: 1000}
	o.mu.Unlock()
	served := o.settledServed(ctx, t) // board a's last piece may still be counting
	// a's next announce allows the peers' address; until then it refuses b.
	for _, blocked := a.allow.Lookup(net.ParseIP("127.0.0.1")); blocked; _, blocked = a.allow.Lookup(net.ParseIP("127.0.0.1")) {
		if ctx.Err() != nil {
			t.Fatal("board a never allowed its listed peers' address")
		}
		time.Sleep(20 * time.Millisecond)
	}

	b, err := Join(ctx, o.config(hash, m, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t.Cleanup(func() {
		if t.Failed() {
			fs, fp, up := b.Counts()
			_, _, aup := a.Counts()
			t.Logf("board b: from server %d, from peers %d, sent %d, %d peer connections; board a sent %d", fs, fp, up, len(b.t.PeerConns()), aup)
			t.Logf("the engine's counters (both boards): %s", expvar.Get("torrent"))
		}
	})
	if !bytes.Equal(readImage(ctx, t, b), want) {
		t.Fatal("board b read other bytes than the image")
	}
	fs, fp, _ := b.Counts()
	served = o.settledServed(ctx, t) - served
	const piece = 64 << 10
	if fs > piece || served > piece || fp < m.CompressedSize-piece {
		t.Errorf("board b: %d bytes from the server (server sent %d), %d from the peer; want at most its one piece of %d from the server, the rest of %d from the peer",
			fs, served, fp, piece, m.CompressedSize)
	}
	if _, _, up := a.Counts(); up < m.CompressedSize-piece {
		t.Errorf("board a sent %d bytes to its peer", up)
	}
}

// TestFetchEndsWhenPeerCompletes: a board's fetches of pieces from the server that
// hang (the server sends 1 KiB of each, then nothing) end as soon as its peer's copies
// complete those pieces: the server sees each request closed while the board is
// still running, long before the board's stall timeout, and the board reads the
// whole image from its peer.
func TestFetchEndsWhenPeerCompletes(t *testing.T) {
	zst, m := packed(t, "cancel", 6<<20)
	o, hash := newOrigin(t, zst, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want, err := os.ReadFile(zst)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Join(ctx, o.config(hash, m, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !bytes.Equal(readImage(ctx, t, a), want) {
		t.Fatal("board a read other bytes than the image")
	}

	o.mu.Lock()
	o.stall = true
	o.mu.Unlock()
	cfg := o.config(hash, m, nil)
	cfg.Stall = time.Minute // a hanging fetch would otherwise end after a minute
	b, err := Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Board b, alone so far, fetches its first pieces from the server: they hang.
	var n int
	if !o.until(ctx, func() bool { n = o.stalledOpen; return n == cfg.withDefaults().WebSeedConns }) {
		t.Fatalf("%d of board b's fetches reached the server", n)
	}
	// Now the server lists a: b's next announce connects them, and a's copies
	// complete the pieces that b's hanging fetches are for.
	o.mu.Lock()
	o.peers = []agentapi.SwarmPeer{{IP: "127.0.0.1", Port: a.Port(), Serial: "a"}}
	o.mu.Unlock()
	if !bytes.Equal(readImage(ctx, t, b), want) {
		t.Fatal("board b read other bytes than the image")
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	var open, stalled int
	if !o.until(wctx, func() bool { open, stalled = o.stalledOpen, o.stalled; return open == 0 }) {
		t.Fatalf("%d of %d requests to the server still open 10 s after board b had every piece from its peer", open, stalled)
	}
	if got := b.serverCancels.Load(); got != int64(stalled) {
		t.Errorf("board b counted %d cancelled fetches; the server saw %d requests end", got, stalled)
	}
	if fs, fp, _ := b.Counts(); fs != 0 || fp != m.CompressedSize {
		t.Errorf("board b: %d bytes from the server, %d from the peer; want 0 and %d", fs, fp, m.CompressedSize)
	}
}

// TestServerBusyIsRetried: a board alone whose server answers every piece request
// "busy, again after 1 s" once gets every piece on the next request, each after the
// wait, and the whole image arrives intact from the server.
func TestServerBusyIsRetried(t *testing.T) {
	zst, m := packed(t, "busy", 1<<20)
	o, hash := newOrigin(t, zst, 64<<10)
	o.busy = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want, err := os.ReadFile(zst)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := Join(ctx, o.config(hash, m, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	if !bytes.Equal(readImage(ctx, t, sw), want) {
		t.Fatal("the board read other bytes than the image")
	}
	pieces := int((m.CompressedSize + 64<<10 - 1) / (64 << 10))
	o.mu.Lock()
	declined := len(o.declined)
	o.mu.Unlock()
	if declined != pieces || sw.serverBusy.Load() != int64(pieces) || sw.serverRequests.Load() != int64(pieces) {
		t.Errorf("%d pieces: the server declined %d once each, the board counted %d busy answers and %d pieces fetched",
			pieces, declined, sw.serverBusy.Load(), sw.serverRequests.Load())
	}
}

// TestLyingMetainfo is the layer below BitTorrent's SHA-1: the server (or whoever
// answers as it) hands out a metainfo built over corrupted image bytes and seeds those
// bytes, so every piece passes its SHA-1 check. The manifest's SHA-256 must still stop
// the chunk: the stream fails naming it, and nothing of it or after it is on the card.
func TestLyingMetainfo(t *testing.T) {
	zst, m := packed(t, "liar", 6<<20)
	bad := 3
	b, err := os.ReadFile(zst)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Chunks[bad]
	b[c.Frame+c.FrameSize/2] ^= 0x40 // inside frame 3's compressed data
	lie := filepath.Join(t.TempDir(), "img.img.zst")
	if err := os.WriteFile(lie, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, sw, fl, target := joinAndOpen(t, lie, m)
	err = fl.Stream(ctx, sw)
	var ce *readback.ChunkError
	if !errors.As(err, &ce) || ce.Chunk != bad {
		t.Fatalf("Stream = %v; want a ChunkError naming chunk %d", err, bad)
	}
	if !strings.Contains(err.Error(), "chunk 3") {
		t.Errorf("error does not name the chunk: %v", err)
	}
	if err := fl.Commit(); err == nil {
		t.Fatal("Commit of an unverified card succeeded")
	}
	card, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	r := m.ChunkRange(bad)
	for i, v := range card[r.Offset:] {
		if v != 0 {
			t.Fatalf("byte %d (chunk %d or later) reached the card", r.Offset+int64(i), bad)
		}
	}
	for i, v := range card[:4096] {
		if v != 0 {
			t.Fatalf("first block byte %d is not zero: the card could boot", i)
		}
	}
}

// TestMetainfoMustFit: a metainfo whose info hash is not the one the hello answer
// named, or whose length is not the manifest's compressed size, is refused.
func TestMetainfoMustFit(t *testing.T) {
	zst, m := packed(t, "fit", 2<<20)
	o, hash := newOrigin(t, zst, 64<<10)
	ctx := context.Background()
	cfg := o.config(hash, m, nil)
	cfg.Swarm.InfoHash = strings.Repeat("ab", 20)
	if _, err := Join(ctx, cfg); !errors.Is(err, ErrMetainfo) {
		t.Errorf("wrong info hash: Join = %v; want ErrMetainfo", err)
	}
	cfg = o.config(hash, m, nil)
	cfg.CompressedSize++
	if _, err := Join(ctx, cfg); !errors.Is(err, ErrMetainfo) {
		t.Errorf("wrong length: Join = %v; want ErrMetainfo", err)
	}
	cfg = o.config(hash, m, nil)
	cfg.Secret = "wrong"
	if _, err := Join(ctx, cfg); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong secret: Join = %v; want the server's 401", err)
	}
}

// TestStoreDropsConsumedPieces: past Keep bytes, the store drops pieces the reader has
// consumed (lowest first) and never one ahead of it; a dropped piece reads as an
// error and says it is no longer complete.
func TestStoreDropsConsumedPieces(t *testing.T) {
	info := &metainfo.Info{PieceLength: 16, Length: 100, Pieces: make([]byte, 7*20)} // 7 pieces, the last of 4 bytes
	s := newPieceStore(info, 40, nil)
	ti, err := s.OpenTorrent(context.Background(), info, metainfo.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	pieces := make([]*piece, info.NumPieces())
	for i := range pieces {
		pieces[i] = ti.PieceWithHash(info.Piece(i), g0()).(*piece)
		data := bytes.Repeat([]byte{byte(i + 1)}, int(pieces[i].n))
		if _, err := pieces[i].WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		if err := pieces[i].MarkComplete(); err != nil {
			t.Fatal(err)
		}
	}
	if now, _ := s.Held(); now != 100 {
		t.Fatalf("held %d bytes before anything was consumed; nothing may be dropped ahead of the reader", now)
	}
	s.consume(50) // pieces 0, 1 and 2 (bytes 0–47) are behind the reader
	if now, _ := s.Held(); now != 52 {
		t.Fatalf("held %d bytes after consuming 50 with keep 40; want 52 (pieces 3–6)", now)
	}
	for i, want := range []bool{false, false, false, true, true, true, true} {
		if got := pieces[i].Completion().Complete; got != want {
			t.Errorf("piece %d complete = %v, want %v", i, got, want)
		}
	}
	buf := make([]byte, 4)
	if _, err := pieces[0].ReadAt(buf, 0); !errors.Is(err, errDropped) {
		t.Errorf("read of a dropped piece = %v; want errDropped", err)
	}
	if n, err := pieces[6].ReadAt(buf, 0); n != 4 || err != nil || buf[0] != 7 {
		t.Errorf("read of the last piece = %d, %v, %v", n, err, buf)
	}
	if n, err := pieces[6].ReadAt(buf, 2); n != 2 || err != io.EOF {
		t.Errorf("read past the 4-byte last piece = %d, %v; want 2, EOF", n, err)
	}
}

func g0() g.Option[[]byte] { return g.None[[]byte]() }

// TestFallbackToHTTP: the web seed answers nothing but errors and there is no peer: the
// swarm read stalls, and Fallback fetches the rest over plain HTTP; the card verifies.
func TestFallbackToHTTP(t *testing.T) {
	zst, m := packed(t, "fallback", 3<<20)
	o, hash := newOrigin(t, zst, 64<<10)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, zst) }))
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := o.config(hash, m, nil)
	cfg.WebSeed = o.URL + "/no-such-file" // 404 for every piece
	cfg.Stall = 2 * time.Second
	sw, err := Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	src := &Fallback{Swarm: sw, HTTP: &flash.HTTPSource{URL: plain.URL, Size: m.CompressedSize}}
	fl, err := flash.Open(filepath.Join(t.TempDir(), "card.img"), m, flash.Options{Retry: retry.Policy{Budget: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if err := fl.Stream(ctx, src); err != nil {
		t.Fatal(err)
	}
	if _, err := fl.Verify(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !src.OverHTTP() || src.HTTP.Fetched() != m.CompressedSize {
		t.Errorf("over HTTP %v, fetched %d over HTTP; want true and %d", src.OverHTTP(), src.HTTP.Fetched(), m.CompressedSize)
	}
}
