package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/RoaringBitmap/roaring"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

// The server's pieces. The server's one link is the fleet's ceiling, so a board asks
// it only for pieces that no connected peer has, and of those only its share (the
// server splits the pieces among the boards still downloading: every piece is one
// board's) or the ones its flasher has waited shareWait for. Boards that start
// together thus fetch different pieces from the server, in the order the flashers
// need them, and trade them; a board alone fetches every piece in order.
//
// This is done here, not by the engine's BEP 19 web seed: the engine hands a
// declined web seed request back and rests that requester for a random 0–10 s, so a
// web seed that may only serve some pieces stalls when it is needed. A fetched piece
// goes into the piece store and the engine checks it (SHA-1) like a peer's piece,
// then announces it to the peers.

// shareWait is how long the flasher waits at one place at least before the pieces it
// needs next are fetched from the server whoever's share they are, if no connected
// peer has them; peerWait is how long at least before they are fetched from the
// server even if a peer says it has them (it may be slow, or claim pieces it never
// sends). Both grow with the time a piece from the server takes this board
// (waits): while every board fetches its share, the server's link is split among
// them all, and a piece whose owner is still fetching it is not late.
const (
	shareWait = 2 * time.Second
	peerWait  = 5 * time.Second
)

// waits are the share rule's waits now: shareWait and peerWait, or 2 and 4 times
// what a share piece from the server takes (the last one, or the one in flight if it
// has taken longer), whichever is longer; and the stagger step: what a share piece
// takes, at least minStep.
func (s *Swarm) waits() (share, peer, step time.Duration) {
	d := time.Duration(s.lastMine.Load())
	if t0 := s.mineSince.Load(); t0 != 0 {
		d = max(d, time.Since(time.Unix(0, t0)))
	}
	return max(shareWait, 2*d), max(peerWait, 4*d), max(minStep, d)
}

// The boards stalled at one piece that its owner has not spread yet all pass their
// waits at about the same moment, and each fetched it from the server (the fleet
// bench saw one piece fetched nine times within 3 s: 0.6 MB of the server's link while
// it still had pieces nobody held). So the waits are staggered by share: the board
// whose share comes right after the piece's owner's goes first, the next one step
// later, and so on (at most maxStagger later), and the others get the piece from the
// first ones as they wait. A piece is thus still fetched from the server when peers
// cannot or will not give it: a board is delayed, never stalled.
const (
	minStep    = 250 * time.Millisecond
	maxStagger = 8 * time.Second
)

// fetchPoll is how often an idle fetcher looks again for a piece to fetch.
const fetchPoll = 100 * time.Millisecond

// share is what the share rule decides on for one piece.
type share struct {
	piece, pieceLength int64
	index, of          int64         // this board's share: pieces with piece % of == index (of ≤ 1: all)
	readPos, readahead int64         // the flasher's position and how far ahead it reads
	stalled            time.Duration // how long the flasher has not moved
	wait               time.Duration // how long it may wait before pieces it needs are taken (waits)
	step               time.Duration // the stagger between boards, by share (waits)
}

// stagger is how much longer than the wait this board waits before it takes the
// piece: step times how many boards' shares come between the piece's owner's and its
// own (none for the next board, and for the owner, whose share it is anyway).
func (x share) stagger() time.Duration {
	if x.of <= 1 {
		return 0
	}
	between := max(((x.index-x.piece%x.of)%x.of+x.of)%x.of-1, 0)
	return min(time.Duration(between)*x.step, maxStagger)
}

// mine reports whether the piece is this board's share.
func (x share) mine() bool { return x.of <= 1 || x.piece%x.of == x.index }

// needed reports whether the flasher has waited x.wait (and its stagger) within
// readahead before the piece.
func (x share) needed() bool {
	off := x.piece * x.pieceLength
	return x.stalled > x.wait+x.stagger() && off+x.pieceLength > x.readPos && off < x.readPos+x.readahead
}

// leaveToPeers is the share rule: a piece that no connected peer has is left to the
// other boards unless it is this board's share, or the flasher has waited x.wait
// within readahead before it. A piece whose board left, or is slow, is thus fetched
// by whoever's flasher needs it.
func leaveToPeers(x share) bool { return !x.mine() && !x.needed() }

// fetcher is requester w of the board's pieces from the server until ctx ends.
// Requester 0 fetches the share and needed pieces; the others only needed pieces,
// unless the board is alone: one share request per board keeps the boards' requests
// to the server in step, so the first pieces of every share arrive first.
func (s *Swarm) fetcher(ctx context.Context, w int) {
	failures := 0
	for ctx.Err() == nil {
		pctx, cancel := context.WithCancelCause(ctx)
		i, mine, ok := s.pick(w == 0, func() { cancel(errFromPeer) })
		if !ok {
			cancel(nil)
			select {
			case <-ctx.Done():
			case <-time.After(fetchPoll):
			}
			continue
		}
		t0 := time.Now()
		if mine {
			s.mineSince.Store(t0.UnixNano())
		}
		err := s.fetchPiece(pctx, i)
		if errors.Is(context.Cause(pctx), errFromPeer) && ctx.Err() == nil {
			s.serverCancels.Add(1)
			err = errFromPeer // whatever the fetch made of it: the piece is here
		}
		cancel(nil)
		if mine {
			s.mineSince.Store(0)
			if err == nil {
				s.lastMine.Store(int64(time.Since(t0)))
			}
		}
		var busy *busyError
		isBusy := errors.As(err, &busy)
		s.mu.Lock()
		delete(s.fetching, i)
		if mine {
			s.fetchingMine--
		}
		if isBusy {
			s.busyUntil[i] = time.Now().Add(busy.after)
		}
		s.mu.Unlock()
		if isBusy {
			s.serverBusy.Add(1)
		}
		if err == nil || err == errFromPeer || isBusy {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		if failures == 1 || failures%30 == 0 {
			s.log.Warn("piece from the server failed", "piece", i, "failures", failures, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// busyError is the server's answer that it is sending the piece to another board now
// (503, Retry-After): the piece is left to the peers for that long (at most maxBusy),
// then asked for again, which the server then serves (docs/api.md "Swarm").
type busyError struct{ after time.Duration }

func (e *busyError) Error() string {
	return fmt.Sprintf("server busy with this piece; again after %v", e.after)
}

// maxBusy bounds what a busy answer makes the board wait.
const maxBusy = 5 * time.Second

// errFromPeer ends a fetch from the server whose piece a peer's copy completed
// meanwhile (pieceComplete): the rest of it would take the server's link from pieces
// that no board has yet. Closing the request stops the server's sendfile, and what
// its socket had not sent yet is dropped with the connection.
var errFromPeer = errors.New("piece completed from a peer")

// pieceComplete is called by the store as piece i completes: a fetch of it from the
// server still in flight is cancelled if the bytes came from peers.
func (s *Swarm) pieceComplete(i int, viaServer bool) {
	if !viaServer {
		s.mu.Lock()
		if cancel := s.fetching[i]; cancel != nil {
			cancel()
		}
		s.mu.Unlock()
	}
	if s.cfg.Trace {
		s.traceComplete(i, viaServer)
	}
}

// pick chooses the next piece to fetch from the server and marks it in flight: the
// lowest one from the flasher's on (up to the window's end) that is not held, not in
// flight, that no connected peer has, and that the share rule gives this board; or,
// once the flasher has waited peerWait, one it needs next even if a peer has it.
// Share pieces are taken only when shares is set, or by any requester when alone.
// cancel ends the fetch if a peer's copy completes the piece first (pieceComplete):
// the piece's completion is checked and cancel registered under s.mu, which
// pieceComplete takes after the store has marked the piece complete, so the one or
// the other sees it.
func (s *Swarm) pick(shares bool, cancel func()) (piece int, mine, ok bool) {
	pos := s.readPos.Load()
	x := share{pieceLength: s.pieceLength, readPos: pos, readahead: s.cfg.Readahead,
		stalled: time.Since(time.Unix(0, s.readAt.Load()))}
	var lateAfter time.Duration
	x.wait, lateAfter, x.step = s.waits()
	if sh := s.share.Load(); sh != nil {
		x.index, x.of = int64(sh.Index), int64(sh.Of)
	}
	alone := x.of <= 1
	first, last := int(pos/s.pieceLength), s.numPieces
	if !s.whole {
		last = min(last, int((pos+s.cfg.Window+s.pieceLength-1)/s.pieceLength))
	}
	now := time.Now()
	take := func(i int) (bool, bool) { // take, mine
		if s.fetching[i] != nil || now.Before(s.busyUntil[i]) || s.store.isComplete(i) {
			return false, false
		}
		x.piece = int64(i)
		if x.needed() {
			return true, false
		}
		return x.mine() && (alone || shares && s.fetchingMine == 0), true
	}

	// Candidates first, then what the peers have (the engine's lock is taken while
	// s.mu is not held: the engine calls into s with its lock held).
	var cands []int
	s.mu.Lock()
	for i := first; i < last && len(cands) < 64; i++ {
		if ok, _ := take(i); ok {
			cands = append(cands, i)
		}
	}
	s.mu.Unlock()
	if len(cands) == 0 {
		return 0, false, false
	}
	peers := s.peersHave()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range cands {
		ok, mine := take(i)
		x.piece = int64(i)
		late := x.stalled > lateAfter+x.stagger() // needed next, whoever has it
		if !ok || peers.Contains(uint32(i)) && !(late && !mine) {
			continue
		}
		s.fetching[i] = cancel
		if mine {
			s.fetchingMine++
		}
		return i, mine, true
	}
	return 0, false, false
}

// peersHave is the union of the pieces the connected peers say they have.
func (s *Swarm) peersHave() *roaring.Bitmap {
	all := roaring.New()
	for _, pc := range s.t.PeerConns() {
		all.Or(pc.PeerPieces())
	}
	return all
}

// errPieceFailed is a piece from the server that failed its SHA-1 check.
var errPieceFailed = errors.New("piece from the server failed its SHA-1 check")

// fetchPiece fetches piece i from the server (a ranged GET of the image download with
// the deployment secret), puts it in the store and has the engine check it, which
// then announces it to the peers. A piece a peer completed meanwhile is dropped.
func (s *Swarm) fetchPiece(ctx context.Context, i int) error {
	off := int64(i) * s.pieceLength
	n := min(s.pieceLength, s.total-off)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Stall)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.WebSeed, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	req.Header.Set(agentapi.HeaderSecret, s.cfg.Secret)
	req.Header.Set(agentapi.HeaderSwarmPiece, strconv.Itoa(i))
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
			return &busyError{after: min(time.Duration(secs)*time.Second, maxBusy)}
		}
	}
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("get %s bytes %d-%d: %s", s.cfg.WebSeed, off, off+n-1, resp.Status)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		return fmt.Errorf("get %s bytes %d-%d: %w", s.cfg.WebSeed, off, off+n-1, err)
	}
	s.fromServer.Add(n)
	s.serverRequests.Add(1)
	verdict := s.store.put(i, b)
	if verdict == nil {
		return nil // a peer's copy got there first
	}
	if ctx.Err() != nil {
		return ctx.Err() // the check needs the client, which Close stops after the fetchers
	}
	// VerifyData returns once the piece is hashed; the engine marks it complete (or
	// not) in the store just after. Until then the piece stays in flight, so that no
	// other requester fetches it again.
	s.t.Piece(i).VerifyData()
	select {
	case ok := <-verdict:
		if !ok {
			return fmt.Errorf("piece %d: %w", i, errPieceFailed)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
