// Package swarm lets the boards that flash the same image share it with each other
// (BitTorrent, docs/agent.md "Peer-to-peer"). rpi-deployd builds a BitTorrent v1
// metainfo over each ready NAME.img.zst (private, BEP 27: no DHT, no peer exchange),
// names its own image download endpoint as the BEP 19 web seed, and keeps the peer
// lists itself: a board is listed only from its own authenticated announce (its
// deployment secret), at the address its connection came from, one entry per
// deployment. Nothing here trusts the torrent for the image's integrity: the agent
// checks every chunk against the manifest's SHA-256 before it writes it.
//
// The BitTorrent engine (github.com/anacrolix/torrent) stays behind this package and
// agent/swarm; the server uses only its metainfo and bencode code.
package swarm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

// Options configure a Registry. The zero value is the documented defaults.
type Options struct {
	// PieceLength is the BitTorrent piece length in bytes, a power of two ≥ 16 KiB
	// (default 256 KiB).
	PieceLength int64
	// Interval is how often a board announces (default 2 s).
	Interval time.Duration
	// SeedFor is how long a board whose own card is verified keeps serving pieces at
	// most (default 10 min); it stops earlier when no board of its image is still
	// downloading.
	SeedFor time.Duration
	// MaxPeers is the most peers one announce answer lists (default 30).
	MaxPeers int
	// Log receives the swarm's own lines (nil: discard).
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Registry holds the metainfo of each image and the members of each swarm. Safe for
// concurrent use.
type Registry struct {
	opt Options
	log *slog.Logger

	mu      sync.Mutex
	infos   map[string]*built            // by image name
	members map[string]map[int64]*Member // image → deployment → member

	sendMu   sync.Mutex
	sending  map[pieceKey]int         // pieces being sent now → how many requests
	declined map[declineKey]time.Time // requests answered "busy" → when
	swept    time.Time                // when declined was last swept
}

type built struct {
	key   string // path, size and mtime of the file it was built from
	done  chan struct{}
	info  []byte // bencoded info dictionary
	hash  metainfo.Hash
	piece int64
	total int64 // the file's length
	err   error
}

// Member is one board of a swarm as its announces describe it.
type Member struct {
	Deployment int64
	Serial     string
	Image      string
	IP         string
	Port       int
	FromServer int64 // compressed bytes it fetched from the web seed
	FromPeers  int64 // compressed bytes it received from other boards
	Uploaded   int64 // bytes it sent to other boards
	Done       bool  // its card is verified; it only seeds now
	Seeding    bool  // the last answer told it to keep serving
	LastSeen   time.Time
	doneAt     time.Time
}

// New makes a Registry.
func New(opt Options) *Registry {
	if opt.PieceLength <= 0 {
		opt.PieceLength = 256 << 10
	}
	if opt.Interval <= 0 {
		opt.Interval = 2 * time.Second
	}
	if opt.SeedFor <= 0 {
		opt.SeedFor = 10 * time.Minute
	}
	if opt.MaxPeers <= 0 {
		opt.MaxPeers = 30
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{opt: opt, log: log, infos: map[string]*built{}, members: map[string]map[int64]*Member{}}
}

// ErrNotReady is returned while an image's piece hashes are still being computed.
var ErrNotReady = errors.New("swarm: piece hashes of the image are still being computed")

// Prepare starts computing the metainfo of image name from its packed file at path
// (in the background) unless it is done or under way for that file; it returns the
// info hash once it is ready, else ErrNotReady. A changed file (size or mtime) is
// hashed again.
func (r *Registry) Prepare(name, path string) (metainfo.Hash, error) {
	b, err := r.start(name, path)
	if err != nil {
		return metainfo.Hash{}, err
	}
	select {
	case <-b.done:
		return b.hash, b.err
	default:
		return metainfo.Hash{}, ErrNotReady
	}
}

// Wait waits up to d for the metainfo of image name that Prepare started; ErrNotReady
// when it is still being computed then.
func (r *Registry) Wait(ctx context.Context, name string, d time.Duration) (metainfo.Hash, error) {
	r.mu.Lock()
	b := r.infos[name]
	r.mu.Unlock()
	if b == nil {
		return metainfo.Hash{}, ErrNotReady
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.done:
		return b.hash, b.err
	case <-t.C:
	case <-ctx.Done():
	}
	return metainfo.Hash{}, ErrNotReady
}

func (r *Registry) start(name, path string) (*built, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("swarm: image %q: %w", name, err)
	}
	key := fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano())
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.infos[name]; b != nil && b.key == key {
		return b, nil
	}
	b := &built{key: key, done: make(chan struct{}), piece: r.opt.PieceLength}
	r.infos[name] = b
	go func() {
		defer close(b.done)
		start := r.opt.Now()
		info := metainfo.Info{PieceLength: b.piece}
		if err := info.BuildFromFilePath(path); err != nil {
			b.err = fmt.Errorf("swarm: hash pieces of %q: %w", path, err)
			r.log.Error("swarm metainfo", "image", name, "err", b.err)
			return
		}
		info.Name = name + ".img.zst"
		b.total = info.TotalLength()
		private := true // BEP 27: no DHT, no peer exchange, only our announce
		info.Private = &private
		if b.info, b.err = bencode.Marshal(info); b.err != nil {
			return
		}
		b.hash = metainfo.HashBytes(b.info)
		r.log.Info("swarm metainfo ready", "image", name, "pieces", info.NumPieces(), "piece_length", b.piece,
			"info_hash", b.hash.HexString(), "took", r.opt.Now().Sub(start).Round(time.Millisecond))
	}()
	return b, nil
}

// Torrent returns the bencoded metainfo of image name (computing it first if needed)
// with webSeed as its BEP 19 url-list.
func (r *Registry) Torrent(name, path, webSeed string) ([]byte, error) {
	b, err := r.start(name, path)
	if err != nil {
		return nil, err
	}
	<-b.done
	if b.err != nil {
		return nil, b.err
	}
	mi := metainfo.MetaInfo{InfoBytes: b.info, UrlList: metainfo.UrlList{webSeed}, CreatedBy: "rpi-deployd"}
	var buf bytes.Buffer
	if err := mi.Write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Accuse logs that the board of deployment from received pieces failing their SHA-1
// check from the peers at addrs (IP addresses), naming the boards listed there. It only
// logs: one board's word is no reason to drop another from the swarm (a hostile board
// could accuse anyone), and the accuser already banned them itself.
func (r *Registry) Accuse(image string, from Member, addrs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range addrs {
		serial, deployment := "", int64(0)
		for _, o := range r.members[image] {
			if o.IP == a || fmt.Sprintf("%s:%d", o.IP, o.Port) == a {
				serial, deployment = o.Serial, o.Deployment
			}
		}
		r.log.Warn("board received corrupt pieces from a peer", "image", image, "reporter", from.Serial,
			"reporter_deployment", from.Deployment, "peer", a, "peer_serial", serial, "peer_deployment", deployment)
	}
}

// Announce records one board's announce and returns the peers it may connect to:
// the other boards of the same image heard from recently, never itself, at most
// MaxPeers of them chosen at random. m.IP must be the address the announce came
// from. Seed in the answer says whether a board that is Done keeps serving.
func (r *Registry) Announce(m Member) agentapi.SwarmAnswer {
	now := r.opt.Now()
	stale := r.staleAfter()
	r.mu.Lock()
	defer r.mu.Unlock()
	swarm := r.members[m.Image]
	if swarm == nil {
		swarm = map[int64]*Member{}
		r.members[m.Image] = swarm
	}
	old := swarm[m.Deployment]
	m.LastSeen = now
	if m.Done {
		m.doneAt = now
		if old != nil && old.Done {
			m.doneAt = old.doneAt
		}
	}
	if old == nil {
		r.log.Info("swarm join", "image", m.Image, "deployment", m.Deployment, "serial", m.Serial, "peer", fmt.Sprintf("%s:%d", m.IP, m.Port))
	}
	ans := agentapi.SwarmAnswer{IntervalMS: r.opt.Interval.Milliseconds()}
	leechers, below := 0, 0 // boards still downloading besides m; of those, with lower IDs
	var others []*Member
	for id, o := range swarm {
		if now.Sub(o.LastSeen) > stale {
			delete(swarm, id)
			continue
		}
		if id == m.Deployment {
			continue
		}
		if !o.Done {
			leechers++
			if id < m.Deployment {
				below++
			}
		}
		if o.Port > 0 && !(o.Done && !o.Seeding) {
			others = append(others, o)
		}
	}
	m.Seeding = !m.Done || (leechers > 0 && now.Sub(m.doneAt) < r.opt.SeedFor)
	ans.Seed = m.Seeding
	swarm[m.Deployment] = &m
	if !m.Done {
		// m's part of the pieces among the boards still downloading: its rank among
		// them by deployment ID. Boards that start together thus ask the server for
		// different pieces (every piece is one board's) instead of each for the same,
		// and a board that joins or finishes shifts the split at everyone's next announce.
		ans.Share = &agentapi.SwarmShare{Index: below, Of: leechers + 1}
	}
	sort.Slice(others, func(i, j int) bool { return others[i].Deployment < others[j].Deployment })
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	for _, o := range others[:min(len(others), r.opt.MaxPeers)] {
		ans.Peers = append(ans.Peers, agentapi.SwarmPeer{IP: o.IP, Port: o.Port, Serial: o.Serial})
	}
	return ans
}

// Leave removes a deployment from its image's swarm (the board said it stopped).
func (r *Registry) Leave(image string, deployment int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.members[image], deployment)
}

func (r *Registry) staleAfter() time.Duration { return 3*r.opt.Interval + 5*time.Second }

// Members lists every board heard from recently, by image then deployment.
func (r *Registry) Members() []Member {
	now, stale := r.opt.Now(), r.staleAfter()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Member
	for _, swarm := range r.members {
		for _, m := range swarm {
			if now.Sub(m.LastSeen) <= stale {
				out = append(out, *m)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Image != out[j].Image {
			return out[i].Image < out[j].Image
		}
		return out[i].Deployment < out[j].Deployment
	})
	return out
}

// SentToOthers is how many bytes the boards of image's swarm other than deployment
// say they uploaded, in all (their last announces, stale members included): the most
// a board of that swarm can truly have received from peers.
func (r *Registry) SentToOthers(image string, deployment int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for id, m := range r.members[image] {
		if id != deployment {
			n += m.Uploaded
		}
	}
	return n
}

// Interval is the announce interval given to boards.
func (r *Registry) Interval() time.Duration { return r.opt.Interval }
