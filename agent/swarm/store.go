package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// errDropped is what a read of a piece that the store no longer holds returns.
var errDropped = errors.New("piece dropped from the serving window")

// pieceStore is the torrent's storage (anacrolix storage.ClientImpl): pieces of the
// compressed image live in RAM only. A completed piece is kept, to serve the other
// boards, until more than keep bytes of completed pieces are held; then the pieces
// that the board's own reader has already consumed go first, lowest offset first,
// and say they are no longer complete. Pieces ahead of the reader are never dropped
// (the reader's readahead bounds them). Nothing here decides what reaches the card:
// the flasher checks every decoded chunk against the manifest.
type pieceStore struct {
	pieceLen, total int64
	keep            int64
	consumed        atomic.Int64 // compressed bytes the reader has read past
	onFailed        func(piece int)
	onComplete      func(piece int, viaServer bool) // nil: none; called without s.mu held
	lie             bool                            // test only: serve consumed pieces corrupted (Config.CorruptUploads)

	mu        sync.Mutex
	data      [][]byte
	complete  []bool
	held      int64 // bytes of complete pieces held
	peak      int64 // most bytes of pieces (complete or not) held at once
	inRAM     int64
	dropFrom  int               // no complete piece below this index is held any more
	viaServer map[int]bool      // pieces whose bytes were put from the server, until complete
	verdicts  map[int]chan bool // put pieces awaiting their check: true complete, false failed
}

func newPieceStore(info *metainfo.Info, keep int64, onFailed func(int)) *pieceStore {
	n := info.NumPieces()
	return &pieceStore{pieceLen: info.PieceLength, total: info.TotalLength(), keep: keep, onFailed: onFailed,
		data: make([][]byte, n), complete: make([]bool, n)}
}

// OpenTorrent implements storage.ClientImpl.
func (s *pieceStore) OpenTorrent(_ context.Context, info *metainfo.Info, _ metainfo.Hash) (storage.TorrentImpl, error) {
	if info.NumPieces() != len(s.data) || info.PieceLength != s.pieceLen {
		return storage.TorrentImpl{}, fmt.Errorf("swarm store: made for %d pieces of %d bytes, torrent has %d of %d",
			len(s.data), s.pieceLen, info.NumPieces(), info.PieceLength)
	}
	return storage.TorrentImpl{
		PieceWithHash: func(p metainfo.Piece, _ g.Option[[]byte]) storage.PieceImpl {
			return &piece{s: s, i: p.Index(), n: p.Length()}
		},
		Close: func() error { return nil },
	}, nil
}

// Held reports the bytes of pieces held now and the most ever held at once.
func (s *pieceStore) Held() (now, peak int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inRAM, s.peak
}

// consume records that the reader has read up to off, and drops what it may.
func (s *pieceStore) consume(off int64) {
	for {
		old := s.consumed.Load()
		if off <= old || s.consumed.CompareAndSwap(old, off) {
			break
		}
	}
	s.mu.Lock()
	s.evict()
	s.mu.Unlock()
}

// evict drops consumed complete pieces while more than keep bytes are held.
func (s *pieceStore) evict() {
	consumed := s.consumed.Load()
	for s.held > s.keep && s.dropFrom < len(s.data) {
		i := s.dropFrom
		end := min(int64(i+1)*s.pieceLen, s.total)
		if end > consumed {
			return
		}
		if s.complete[i] {
			n := int64(len(s.data[i]))
			s.held -= n
			s.inRAM -= n
			s.data[i], s.complete[i] = nil, false
		}
		s.dropFrom++
	}
}

// put stores the bytes of piece i fetched from the server, unless the piece is
// complete already (nil). The engine then checks it like a piece from a peer; the
// channel says how that ended (true: complete), once the engine has marked it.
func (s *pieceStore) put(i int, b []byte) <-chan bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.complete[i] || int64(len(b)) != min(s.pieceLen, s.total-int64(i)*s.pieceLen) {
		return nil
	}
	if s.viaServer == nil {
		s.viaServer = map[int]bool{}
	}
	s.viaServer[i] = true
	if s.data[i] == nil {
		s.data[i] = b
		s.inRAM += int64(len(b))
		s.peak = max(s.peak, s.inRAM)
	} else {
		copy(s.data[i], b)
	}
	if s.verdicts == nil {
		s.verdicts = map[int]chan bool{}
	}
	ch := s.verdicts[i]
	if ch == nil {
		ch = make(chan bool, 1)
		s.verdicts[i] = ch
	}
	return ch
}

// verdict tells a put piece's waiter how its check ended. s.mu is held.
func (s *pieceStore) verdict(i int, complete bool) {
	if ch := s.verdicts[i]; ch != nil {
		delete(s.verdicts, i)
		ch <- complete
	}
}

// isComplete reports whether piece i is held and passed its check.
func (s *pieceStore) isComplete(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.complete[i]
}

type piece struct {
	s *pieceStore
	i int
	n int64
}

func (p *piece) ReadAt(b []byte, off int64) (int, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	d := p.s.data[p.i]
	if d == nil {
		return 0, fmt.Errorf("piece %d: %w", p.i, errDropped)
	}
	if off >= int64(len(d)) {
		return 0, io.EOF
	}
	n := copy(b, d[off:])
	if p.s.lie && min(int64(p.i+1)*p.s.pieceLen, p.s.total) <= p.s.consumed.Load() {
		for j := range b[:n] {
			b[j] ^= 0x5a // only the other boards read pieces the reader has passed
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// WriteTo writes the piece to w one block (ChunkSize) per call: the engine hashes
// pieces through it (SHA-1 and its smart-ban block check side by side), which
// otherwise reads them in 32 KiB steps into a buffer that grows, and is cleared, three
// times per piece. The smart-ban check collects what it is given in a buffer of its own
// until a block is full: given a block at a time, that buffer is one block, allocated
// once per piece, where a whole piece per call made it grow to the piece (its
// allocation and clearing were 5 % of the fleet bench's CPU). The store is locked
// meanwhile, so no write lands in the piece while it is hashed.
func (p *piece) WriteTo(w io.Writer) (int64, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	d := p.s.data[p.i]
	if d == nil {
		return 0, fmt.Errorf("piece %d: %w", p.i, errDropped)
	}
	var n int64
	for len(d) > 0 {
		b := d[:min(len(d), ChunkSize)]
		m, err := w.Write(b)
		n += int64(m)
		if err != nil {
			return n, err
		}
		d = d[len(b):]
	}
	return n, nil
}

func (p *piece) WriteAt(b []byte, off int64) (int, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if off < 0 || off+int64(len(b)) > p.n {
		return 0, fmt.Errorf("piece %d: write [%d,+%d) past its %d bytes", p.i, off, len(b), p.n)
	}
	if p.s.data[p.i] == nil {
		p.s.data[p.i] = make([]byte, p.n)
		p.s.inRAM += p.n
		p.s.peak = max(p.s.peak, p.s.inRAM)
	}
	return copy(p.s.data[p.i][off:], b), nil
}

func (p *piece) MarkComplete() error {
	p.s.mu.Lock()
	if p.s.data[p.i] == nil {
		p.s.mu.Unlock()
		return fmt.Errorf("piece %d: %w", p.i, errDropped)
	}
	was := p.s.complete[p.i]
	if !was {
		p.s.complete[p.i] = true
		p.s.held += p.n
	}
	viaServer := p.s.viaServer[p.i]
	delete(p.s.viaServer, p.i)
	p.s.verdict(p.i, true)
	p.s.evict()
	p.s.mu.Unlock()
	if !was && p.s.onComplete != nil {
		p.s.onComplete(p.i, viaServer)
	}
	return nil
}

// MarkNotComplete is called when the piece failed its SHA-1 check (and when a
// dropped piece is found missing): its bytes are thrown away.
func (p *piece) MarkNotComplete() error {
	p.s.mu.Lock()
	was := p.s.complete[p.i]
	if was {
		p.s.held -= p.n
	}
	if p.s.data[p.i] != nil {
		p.s.inRAM -= p.n
	}
	p.s.data[p.i], p.s.complete[p.i] = nil, false
	delete(p.s.viaServer, p.i)
	p.s.verdict(p.i, false)
	p.s.mu.Unlock()
	if !was && p.s.onFailed != nil {
		p.s.onFailed(p.i)
	}
	return nil
}

func (p *piece) Completion() storage.Completion {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return storage.Completion{Complete: p.s.complete[p.i], Ok: true}
}
