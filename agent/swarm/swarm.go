// Package swarm is the agent's side of peer-to-peer image distribution (docs/agent.md
// "Peer-to-peer"): the boards flashing the same image fetch its compressed pieces
// from rpi-deployd's web seed and from each other with BitTorrent
// (github.com/anacrolix/torrent, which nothing else in the agent imports), and serve
// the pieces they hold while they flash and, once their card is verified, for as long
// as the server says.
//
// A Swarm is a flash.Source: the flasher reads the compressed image from it in order,
// decodes each frame and checks the chunk against the manifest's SHA-256 before
// anything is written, exactly as over HTTP. BitTorrent's SHA-1 piece hashes only
// keep corrupt pieces out of the swarm; they are not what a card is trusted on.
//
// Only the deploy network is involved: no DHT, no peer exchange, no trackers, no uTP,
// no WebRTC, no UPnP. Peers come only from the server's answers to this board's
// authenticated announces, and connections from or to any other address are refused.
package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/iplist"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

// Config is one board's membership of its image's swarm.
type Config struct {
	Swarm  agentapi.Swarm // from the hello answer
	Secret string         // the deployment secret (agentapi.HeaderSecret)
	// WebSeed is the image's download URL (the server's BEP 19 web seed).
	WebSeed string
	// CompressedSize is the manifest's compressed_size; a metainfo of another length
	// is refused.
	CompressedSize int64
	// HTTP is used for the metainfo, the announces and the web seed (nil: a default
	// client).
	HTTP *http.Client
	// Keep is how many bytes of completed pieces are kept in RAM to serve the other
	// boards (default 512 MiB); consumed pieces beyond it are dropped, oldest first.
	Keep int64
	// Readahead is how far ahead of the flasher its reader asks for pieces first
	// (default 4 MiB). An image of at most Keep compressed bytes is fetched whole;
	// a larger one only in a window of Window bytes ahead of the flasher.
	Readahead int64
	// Window is how far ahead of the flasher pieces of an image larger than Keep are
	// fetched (default 64 MiB).
	Window int64
	// WebSeedConns is how many requests for pieces (each one whole piece) a board
	// has in flight to the server's image endpoint at most (default 2). A board
	// alone uses them all; in a swarm one of them fetches the board's share and the
	// other only pieces its stalled flasher needs (fetch.go).
	WebSeedConns int
	// Listen is the TCP address BitTorrent listens on (default ":0", any port).
	Listen string
	// Stall: a read that gets no byte for this long fails (the flasher then resumes,
	// and the caller may fall back to HTTP alone). Default 30 s.
	Stall time.Duration
	// SeedFor bounds Seed (default 10 min) whatever the server says.
	SeedFor time.Duration
	// CorruptUploads is for tests only (rpi-agent --p2p-test-corrupt-uploads): the
	// board serves every piece its own flasher has read past with its bytes flipped,
	// as a hostile board would; its own card is written from the good bytes.
	CorruptUploads bool
	// Trace logs, at Info, every piece as it completes and who sent it ("p2p piece":
	// piece, from = "server" or the peers' addresses), and every wait of the flasher
	// for a piece longer than TraceWait ("p2p flasher waited": piece, ms) — for the
	// fleet bench's per-board timelines (rpi-agent --p2p-trace).
	Trace bool
	// Log names peers that sent corrupt pieces, joins and the seeding's end (nil:
	// discard).
	Log *slog.Logger
}

// TraceWait is the shortest wait of the flasher for a piece that Config.Trace logs.
const TraceWait = 20 * time.Millisecond

// Swarm is a running membership. Close it.
type Swarm struct {
	cfg   Config
	log   *slog.Logger
	cl    *torrent.Client
	t     *torrent.Torrent
	store *pieceStore
	allow *allowList
	hc    *http.Client

	fromServer, fromPeers atomic.Int64
	waited                atomic.Int64                        // ns the flasher's reads waited for pieces, in all
	serverRequests        atomic.Int64                        // pieces fetched from the server (fetch.go)
	serverCancels         atomic.Int64                        // fetches from the server cancelled: a peer's copy came first
	serverBusy            atomic.Int64                        // fetches the server answered "busy" (another board is being sent the piece)
	readPos               atomic.Int64                        // the flasher's position in the compressed image
	readAt                atomic.Int64                        // when it last moved (Unix ns)
	share                 atomic.Pointer[agentapi.SwarmShare] // from the last answer; nil: alone
	lastMine, mineSince   atomic.Int64                        // the last share piece's fetch time (ns); when the one in flight began (Unix ns, 0: none)
	done                  atomic.Bool
	pieceLength, total    int64
	numPieces             int
	whole                 bool // the whole image is fetched (it fits in Keep), not a window

	mu           sync.Mutex
	contributors map[int]map[string]bool // piece → peers that sent its bytes
	serials      map[string]string       // "ip:port" and "ip" → serial, from the answers
	bad          map[string]bool         // peers that sent a piece failing its SHA-1
	reported     map[string]bool         // bad peers already told to the server
	seed         bool                    // the last answer's Seed
	fetching     map[int]func()          // pieces being fetched from the server → cancels the fetch
	fetchingMine int                     // of those, share pieces
	busyUntil    map[int]time.Time       // pieces the server said it is sending to another board → left to peers until

	stop     context.CancelFunc
	loopDone chan struct{}
	fetchers sync.WaitGroup
	kick     chan struct{}
}

// ChunkSize is the most bytes asked for in one request to a peer (BitTorrent's usual
// block).
const ChunkSize = 16 << 10

// stealAfter is how long a block request to one peer stays with it before the engine
// may move it to another (third_party/anacrolix-torrent, ClientConfig.RequestStealAfter).
// Upstream moves a request at once from a peer with more requests in flight to one with
// fewer, and a block the first had already sent arrives twice: in the fleet bench the
// boards sent 291 MB to each other for the 215 MB they needed. A peer that does not
// answer still loses its requests, after stealAfter.
const stealAfter = 3 * time.Second

// ErrMetainfo is a metainfo that does not fit the deployment (info hash or length).
var ErrMetainfo = errors.New("swarm metainfo does not fit the deployment")

// Join fetches the image's metainfo, starts the BitTorrent client and the announces.
// The caller reads the image through Open and calls Seed once its card is verified.
func Join(ctx context.Context, cfg Config) (*Swarm, error) {
	cfg = cfg.withDefaults()
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Swarm{cfg: cfg, log: log, allow: newAllowList(), contributors: map[int]map[string]bool{},
		serials: map[string]string{}, bad: map[string]bool{}, reported: map[string]bool{}, fetching: map[int]func(){}, busyUntil: map[int]time.Time{},
		kick: make(chan struct{}, 1)}
	base := cfg.HTTP
	if base == nil {
		base = &http.Client{}
	}
	s.hc = base
	mi, info, err := s.fetchMetainfo(ctx)
	if err != nil {
		return nil, err
	}
	s.pieceLength, s.total, s.numPieces = info.PieceLength, info.TotalLength(), info.NumPieces()
	s.readAt.Store(time.Now().UnixNano())
	s.store = newPieceStore(info, cfg.Keep, s.pieceFailed)
	s.store.onComplete = s.pieceComplete
	s.store.lie = cfg.CorruptUploads
	if cfg.CorruptUploads {
		log.Warn("TEST MODE: this board serves corrupted pieces to its peers")
	}

	cl, err := s.newClient()
	if err != nil {
		return nil, err
	}
	s.cl = cl
	spec, err := torrent.TorrentSpecFromMetaInfoErr(mi)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("%w: %w", ErrMetainfo, err)
	}
	// Requests to peers are for ChunkSize blocks. The engine moves a request from a
	// peer that has many in flight to one that has fewer (cancel, then ask the
	// other; here only after stealAfter), and a cancelled block already on its way
	// is sent anyway: with whole 256 KiB pieces per request (and upstream's moves)
	// the boards of the fleet bench (4 Mbit/s links) uploaded 500 MB and more for
	// 227 MB they needed. The server's pieces are whole pieces all the same
	// (fetch.go).
	spec.ChunkSize = pp.Integer(min(info.PieceLength, ChunkSize))
	t, _, err := cl.AddTorrentSpec(spec)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("add torrent: %w", err)
	}
	s.t = t
	s.whole = info.TotalLength() <= cfg.Keep
	if s.whole {
		t.DownloadAll()
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop, s.loopDone = cancel, make(chan struct{})
	if _, err := s.announce(ctx, false); err != nil {
		log.Warn("first swarm announce failed; the server alone until the next", "err", err)
	}
	go s.loop(lctx)
	if cfg.WebSeed != "" {
		for w := range cfg.WebSeedConns {
			s.fetchers.Go(func() { s.fetcher(lctx, w) })
		}
	}
	log.Info("joined swarm", "info_hash", cfg.Swarm.InfoHash, "pieces", info.NumPieces(), "piece_length", info.PieceLength, "port", cl.LocalPort())
	return s, nil
}

// withDefaults fills in what the caller left zero.
func (cfg Config) withDefaults() Config {
	if cfg.Keep <= 0 {
		cfg.Keep = 512 << 20
	}
	if cfg.Readahead <= 0 {
		cfg.Readahead = 4 << 20
	}
	if cfg.Window <= 0 {
		cfg.Window = 64 << 20
	}
	if cfg.Listen == "" {
		cfg.Listen = ":0"
	}
	if cfg.WebSeedConns <= 0 {
		cfg.WebSeedConns = 2
	}
	if cfg.Stall <= 0 {
		cfg.Stall = 30 * time.Second
	}
	if cfg.SeedFor <= 0 {
		cfg.SeedFor = 10 * time.Minute
	}
	return cfg
}

// newClient starts the BitTorrent client: LAN only (no DHT, PEX, trackers, uTP,
// WebRTC, port mapping or IPv6), only server-listed peers, pieces in s.store. The
// engine fetches from peers only: the server's pieces are fetched by fetch.go.
func (s *Swarm) newClient() (*torrent.Client, error) {
	host, port, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("swarm listen address %q: %w", s.cfg.Listen, err)
	}
	portN, err := strconv.Atoi(port)
	if err != nil || portN < 0 || portN > 65535 {
		return nil, fmt.Errorf("swarm listen address %q: bad port", s.cfg.Listen)
	}
	tc := torrent.NewDefaultClientConfig()
	tc.ListenHost = func(string) string { return host }
	tc.ListenPort = portN
	tc.NoDHT, tc.DisablePEX, tc.DisableTrackers, tc.DisableUTP, tc.DisableWebtorrent = true, true, true, true, true
	tc.NoDefaultPortForwarding = true
	tc.DisableIPv6 = true
	tc.Seed = true
	tc.DefaultStorage = s.store
	tc.IPBlocklist = s.allow
	tc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{} // plain: the deploy network is ours, CPU is not free
	tc.DhtStartingNodes = nil
	tc.Logger = alog.Default.WithFilterLevel(alog.Critical)
	tc.DisableWebseeds = true
	tc.RequestStealAfter = stealAfter
	tc.Callbacks.ReceivedUsefulData = append(tc.Callbacks.ReceivedUsefulData, s.received)
	cl, err := torrent.NewClient(tc)
	if err != nil {
		return nil, fmt.Errorf("start BitTorrent client: %w", err)
	}
	return cl, nil
}

func (s *Swarm) fetchMetainfo(ctx context.Context) (*metainfo.MetaInfo, *metainfo.Info, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.Swarm.TorrentURL, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set(agentapi.HeaderSecret, s.cfg.Secret)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req = req.WithContext(ctx)
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("get swarm metainfo: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("get swarm metainfo %s: %s", s.cfg.Swarm.TorrentURL, resp.Status)
	}
	mi, err := metainfo.Load(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMetainfo, err)
	}
	if got := mi.HashInfoBytes().HexString(); !strings.EqualFold(got, s.cfg.Swarm.InfoHash) {
		return nil, nil, fmt.Errorf("%w: info hash %s, the hello answer says %s", ErrMetainfo, got, s.cfg.Swarm.InfoHash)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMetainfo, err)
	}
	if info.IsDir() || info.TotalLength() != s.cfg.CompressedSize || info.PieceLength < 16<<10 {
		return nil, nil, fmt.Errorf("%w: %d bytes in pieces of %d, the manifest says %d compressed bytes",
			ErrMetainfo, info.TotalLength(), info.PieceLength, s.cfg.CompressedSize)
	}
	mi.Announce, mi.AnnounceList, mi.Nodes = "", nil, nil // the server's announce endpoint only
	mi.UrlList = nil                                      // fetched by fetch.go, with the secret
	return mi, &info, nil
}

// received counts piece data from peers and remembers who sent what.
func (s *Swarm) received(ev torrent.ReceivedUsefulDataEvent) {
	s.fromPeers.Add(int64(len(ev.Message.Piece)))
	addr := ev.Peer.RemoteAddr.String()
	i := int(ev.Message.Index)
	s.mu.Lock()
	if s.contributors[i] == nil {
		s.contributors[i] = map[string]bool{}
	}
	s.contributors[i][addr] = true
	s.mu.Unlock()
}

// traceComplete logs piece i's completion and who sent it (Config.Trace).
func (s *Swarm) traceComplete(i int, viaServer bool) {
	from := "server"
	if !viaServer {
		s.mu.Lock()
		var names []string
		for addr := range s.contributors[i] {
			names = append(names, addr)
		}
		s.mu.Unlock()
		from = strings.Join(names, ",")
	}
	s.log.Info("p2p piece", "piece", i, "from", from)
}

// pieceFailed records that piece i failed its SHA-1 check (its bytes were thrown away
// and it is fetched again) and which peers had sent bytes of it. Who lied is decided
// by the engine: a peer that sent the whole piece, or whose blocks differ from those
// of the piece that finally passed (smart ban), is banned; checkBans names them.
func (s *Swarm) pieceFailed(i int) {
	s.mu.Lock()
	from := s.contributors[i]
	delete(s.contributors, i)
	var names []string
	for addr := range from {
		names = append(names, addr)
	}
	s.mu.Unlock()
	if len(names) > 0 {
		s.log.Info("piece failed its SHA-1 check; fetching it again", "piece", i, "from", strings.Join(names, ","))
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// checkBans logs every peer address the engine banned since the last call, with the
// board serial the server listed at that address.
func (s *Swarm) checkBans() {
	for _, ip := range s.cl.BadPeerIPs() {
		s.mu.Lock()
		known := s.bad[ip]
		s.bad[ip] = true
		s.mu.Unlock()
		if !known {
			s.log.Warn("peer banned: it sent corrupt piece data (failed SHA-1 checks); nothing of it reached the card",
				"peer", ip, "serial", s.serialOf(ip))
		}
	}
}

func (s *Swarm) serialOf(addr string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.serials[addr]; ok {
		return v
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return s.serials[host] // "" when unknown or when several boards share the address
}

// BadPeers lists the addresses of the peers banned for corrupt pieces.
func (s *Swarm) BadPeers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for a := range s.bad {
		out = append(out, a)
	}
	return out
}

// Counts are the compressed bytes received from the server and from other boards,
// and the bytes sent to other boards.
func (s *Swarm) Counts() (fromServer, fromPeers, uploaded int64) {
	st := s.t.Stats()
	return s.fromServer.Load(), s.fromPeers.Load(), st.BytesWrittenData.Int64()
}

// Fetched is every compressed byte received (flash.Stats.Fetched).
func (s *Swarm) Fetched() int64 { return s.fromServer.Load() + s.fromPeers.Load() }

// Held reports the bytes of pieces in RAM now and the most at once.
func (s *Swarm) Held() (now, peak int64) { return s.store.Held() }

// Port is the TCP port the BitTorrent client listens on.
func (s *Swarm) Port() int { return s.cl.LocalPort() }

// Open implements flash.Source: the compressed image from off, in order, as pieces
// arrive from the web seed and the peers.
func (s *Swarm) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	r := s.t.NewReader()
	if s.whole {
		r.SetReadahead(s.cfg.Readahead)
	} else {
		r.SetReadahead(max(s.cfg.Readahead, s.cfg.Window))
	}
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		r.Close()
		return nil, err
	}
	return &reader{s: s, r: r, ctx: ctx, off: off}, nil
}

type reader struct {
	s   *Swarm
	r   torrent.Reader
	ctx context.Context
	off int64
}

// ErrStalled is a swarm read that got nothing for Config.Stall.
var ErrStalled = errors.New("swarm: no piece arrived")

func (r *reader) Read(p []byte) (int, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.s.cfg.Stall)
	defer cancel()
	t0 := time.Now()
	n, err := r.r.ReadContext(ctx, p)
	if d := time.Since(t0); d >= TraceWait {
		r.s.waited.Add(int64(d))
		if r.s.cfg.Trace {
			r.s.log.Info("p2p flasher waited", "piece", r.off/r.s.pieceLength, "ms", d.Milliseconds())
		}
	}
	r.off += int64(n)
	if n > 0 {
		r.s.readPos.Store(r.off)
		r.s.readAt.Store(time.Now().UnixNano())
	}
	r.s.store.consume(r.off)
	if err != nil && n == 0 && errors.Is(err, context.DeadlineExceeded) && r.ctx.Err() == nil {
		err = fmt.Errorf("%w for %v at compressed byte %d", ErrStalled, r.s.cfg.Stall, r.off)
	}
	return n, err
}

func (r *reader) Close() error { return r.r.Close() }

// Seed tells the server this board's card is verified and keeps serving pieces until
// the server's answer says stop (no board of the image still downloading), SeedFor
// passes or ctx ends.
func (s *Swarm) Seed(ctx context.Context) {
	s.done.Store(true)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SeedFor)
	defer cancel()
	start := time.Now()
	for {
		s.checkBans()
		seed, err := s.announce(ctx, false)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("swarm announce failed while seeding", "err", err)
		}
		if err == nil && !seed {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.interval()):
			continue
		}
		break
	}
	fs, fp, up := s.Counts()
	st := s.t.Stats()
	s.log.Info("seeding ended", "took", time.Since(start).Round(time.Millisecond), "uploaded", up,
		"from_server", fs, "from_peers", fp, "server_requests", s.serverRequests.Load(),
		"server_cancels", s.serverCancels.Load(), "server_busy", s.serverBusy.Load(),
		"peer_bytes_wasted", st.BytesReadData.Int64()-st.BytesReadUsefulData.Int64(),
		"flasher_waited", time.Duration(s.waited.Load()).Round(time.Millisecond))
}

func (s *Swarm) interval() time.Duration {
	d := time.Duration(s.cfg.Swarm.IntervalMS) * time.Millisecond
	if d <= 0 {
		d = 2 * time.Second
	}
	return d
}

// joinAnnounces are the waits before the announces that follow the first: boards of
// a batch start within moments of each other, and each learns of the others (and
// lets them connect, and gets its share of the server's pieces among them) only from
// an answer; at the interval (2 s) the first boards would fetch alone meanwhile.
var joinAnnounces = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}

// loop announces every interval while the board flashes (Seed announces itself),
// sooner just after joining (joinAnnounces).
func (s *Swarm) loop(ctx context.Context) {
	defer close(s.loopDone)
	for n := 0; ; n++ {
		wait := s.interval()
		if n < len(joinAnnounces) {
			wait = min(wait, joinAnnounces[n])
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-s.kick:
		}
		s.checkBans()
		if s.done.Load() {
			continue
		}
		if _, err := s.announce(ctx, false); err != nil && ctx.Err() == nil {
			s.log.Warn("swarm announce failed", "err", err)
		}
	}
}

// announce tells the server where this board listens and what it got, and adds the
// peers of the answer (and only those may connect).
func (s *Swarm) announce(ctx context.Context, leaving bool) (seed bool, err error) {
	fs, fp, up := s.Counts()
	s.mu.Lock()
	var bad []string
	for a := range s.bad {
		if !s.reported[a] {
			bad = append(bad, a)
			s.reported[a] = true
		}
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, _ := json.Marshal(agentapi.SwarmAnnounce{Port: s.cl.LocalPort(), FromServer: fs, FromPeers: fp, Uploaded: up,
		Done: s.done.Load(), Leaving: leaving, BadPeers: bad})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.Swarm.AnnounceURL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(agentapi.HeaderSecret, s.cfg.Secret)
	resp, err := s.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("swarm announce: %s", resp.Status)
	}
	var ans agentapi.SwarmAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ans); err != nil {
		return false, fmt.Errorf("swarm announce answer: %w", err)
	}
	if leaving {
		return false, nil
	}
	var peers []torrent.PeerInfo
	s.mu.Lock()
	for _, p := range ans.Peers {
		ip := net.ParseIP(p.IP).To4()
		if ip == nil || p.Port <= 0 || p.Port > 65535 {
			continue
		}
		addr := &net.TCPAddr{IP: ip, Port: p.Port}
		if s.bad[ip.String()] {
			continue
		}
		s.allow.add(ip)
		if old, ok := s.serials[ip.String()]; ok && old != p.Serial {
			s.serials[ip.String()] = "" // several boards behind one address: name by ip:port only
		} else {
			s.serials[ip.String()] = p.Serial
		}
		s.serials[addr.String()] = p.Serial
		peers = append(peers, torrent.PeerInfo{Addr: addr, Source: torrent.PeerSourceTracker, Trusted: false})
	}
	s.seed = ans.Seed
	s.mu.Unlock()
	if sh := ans.Share; sh != nil && sh.Of > 0 && sh.Index >= 0 && sh.Index < sh.Of {
		s.share.Store(sh)
	} else {
		s.share.Store(nil)
	}
	if len(peers) > 0 {
		s.t.AddPeers(peers)
	}
	if ans.IntervalMS > 0 {
		s.cfg.Swarm.IntervalMS = ans.IntervalMS
	}
	return ans.Seed, nil
}

// Close leaves the swarm: one last announce that says so, then the client stops.
func (s *Swarm) Close() error {
	s.stop()
	<-s.loopDone
	s.fetchers.Wait() // before the client closes: a fetched piece's check needs it
	s.checkBans()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.announce(ctx, true); err != nil {
		s.log.Warn("swarm leave not delivered", "err", err)
	}
	if errs := s.cl.Close(); len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// allowList is the client's IP block list turned around: every address is refused
// but those the server listed as peers.
type allowList struct {
	mu sync.RWMutex
	ok map[string]bool
}

func newAllowList() *allowList { return &allowList{ok: map[string]bool{}} }

func (a *allowList) add(ip net.IP) {
	a.mu.Lock()
	a.ok[ip.String()] = true
	a.mu.Unlock()
}

// Lookup implements iplist.Ranger: ok (blocked) unless ip was listed.
func (a *allowList) Lookup(ip net.IP) (iplist.Range, bool) {
	key := ip.String()
	if v4 := ip.To4(); v4 != nil {
		key = v4.String()
	}
	a.mu.RLock()
	allowed := a.ok[key]
	a.mu.RUnlock()
	if allowed {
		return iplist.Range{}, false
	}
	return iplist.Range{First: ip, Last: ip, Description: "not a peer the server listed"}, true
}

// NumRanges implements iplist.Ranger.
func (a *allowList) NumRanges() int { return 1 }
