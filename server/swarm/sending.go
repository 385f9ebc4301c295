package swarm

import (
	"time"
)

// The server's link is the fleet's ceiling, and a piece it sends twice at once (two
// boards asked for it before either had it) costs the link a piece that no board has
// yet. So a board's request for one whole piece that the server is sending to another
// board right now may be answered "busy, ask again after Busy" once: the board then
// takes it from that board, which announces it as soon as it is checked, and asks the
// server again only if no peer has it after the wait. A board's request after a
// decline is always served, so a board is delayed by Busy at most per
// piece, never denied: a hostile board that keeps a piece in flight (or asks for it
// over and over) can hold back each other board by one Busy per request it is then
// served, no more.

// Busy is how long a declined board waits before it asks for the piece again.
const Busy = time.Second

// declineMemory is how long a decline is remembered (a board's later request for the
// piece within it is served); old ones are swept at most every declineMemory.
const declineMemory = time.Minute

type pieceKey struct {
	image string
	piece int
}

type declineKey struct {
	pieceKey
	deployment int64
}

// PieceRange returns the byte range [off, off+n) of piece i of image name, if its
// metainfo is ready and it has that piece.
func (r *Registry) PieceRange(name string, i int) (off, n int64, ok bool) {
	r.mu.Lock()
	b := r.infos[name]
	r.mu.Unlock()
	if b == nil || i < 0 {
		return 0, 0, false
	}
	select {
	case <-b.done:
	default:
		return 0, 0, false
	}
	if b.err != nil {
		return 0, 0, false
	}
	off = int64(i) * b.piece
	if off >= b.total {
		return 0, 0, false
	}
	return off, min(b.piece, b.total-off), true
}

// SendTurn is asked before piece i of image is sent to deployment. It returns done
// (call it once the answer is over) when the piece is to be sent now; nil when it is
// being sent to another board and this deployment has not been declined that piece
// yet (answer "busy", Busy).
func (r *Registry) SendTurn(image string, deployment int64, i int) (done func()) {
	pk := pieceKey{image, i}
	dk := declineKey{pk, deployment}
	now := r.opt.Now()
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	if r.sending == nil {
		r.sending, r.declined = map[pieceKey]int{}, map[declineKey]time.Time{}
	}
	if now.Sub(r.swept) > declineMemory {
		for k, at := range r.declined {
			if now.Sub(at) > declineMemory {
				delete(r.declined, k)
			}
		}
		r.swept = now
	}
	if at, ok := r.declined[dk]; r.sending[pk] > 0 && (!ok || now.Sub(at) > declineMemory) {
		r.declined[dk] = now
		return nil
	}
	delete(r.declined, dk)
	r.sending[pk]++
	return func() {
		r.sendMu.Lock()
		defer r.sendMu.Unlock()
		if r.sending[pk]--; r.sending[pk] <= 0 {
			delete(r.sending, pk)
		}
	}
}
