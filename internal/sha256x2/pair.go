package sha256x2

import (
	"crypto/sha256"

	"github.com/rpi-deploy/rpi-deploy/image-tools/sha256chain"
)

// SumPair returns the SHA-256 of the concatenation of a's pieces and of b's: two
// messages of any lengths, each given in pieces of any lengths (the data ranges of a
// chunk, say). While both messages have bytes left their blocks go through Pair, two at
// a time; the rest of the longer one through crypto/sha256. A block that spans pieces
// is copied once. Without the two-lane kernel each message goes through crypto/sha256.
func SumPair(a, b [][]byte) (sa, sb [sha256.Size]byte) {
	if !useKernel {
		return Sum(a), Sum(b)
	}
	ca, cb := cursor{pieces: a}, cursor{pieces: b}
	x, y := New(), New()
	for {
		ra, rb := ca.run(), cb.run()
		if ra == nil || rb == nil {
			break
		}
		n := min(len(ra), len(rb))
		Pair(&x, &y, ra[:n], rb[:n])
		ca.advance(n)
		cb.advance(n)
	}
	return ca.finish(&x), cb.finish(&y)
}

// cursor walks a message given in pieces, in runs of whole blocks.
type cursor struct {
	pieces [][]byte // the pieces after cur
	cur    []byte   // what is left of the current piece
	carry  [BlockSize]byte
	n      int // bytes in carry: the start of a block that spans pieces
}

// run returns the next whole blocks that lie one after the other in memory: the rest of
// the current piece rounded down to blocks, or one block gathered in carry from the
// pieces it spans. It returns nil when less than a block is left (then in carry[:n]).
// Calling run again without advance returns the same run.
func (c *cursor) run() []byte {
	for {
		if c.n == BlockSize {
			return c.carry[:]
		}
		if c.n == 0 && len(c.cur) >= BlockSize {
			return c.cur[:len(c.cur)&^(BlockSize-1)]
		}
		if len(c.cur) == 0 {
			if len(c.pieces) == 0 {
				return nil
			}
			c.cur, c.pieces = c.pieces[0], c.pieces[1:]
			continue
		}
		k := copy(c.carry[c.n:], c.cur)
		c.n += k
		c.cur = c.cur[k:]
	}
}

// advance consumes the first n bytes (whole blocks) of the last run.
func (c *cursor) advance(n int) {
	if c.n == BlockSize {
		c.n = 0
		return
	}
	c.cur = c.cur[n:]
}

// finish feeds the rest of the message to s alone and returns the SHA-256: through
// crypto/sha256 resumed from s, unless its state form is unknown (stdlibForm).
func (c *cursor) finish(s *State) [sha256.Size]byte {
	if !stdlibForm {
		for r := c.run(); r != nil; r = c.run() {
			s.Block(r)
			c.advance(len(r))
		}
		return s.Sum(c.carry[:c.n])
	}
	h, err := sha256chain.Resume(s.Chain(), int64(s.Len))
	if err != nil {
		panic("sha256x2: crypto/sha256 refused its own state form: " + err.Error())
	}
	h.Write(c.carry[:c.n])
	h.Write(c.cur)
	for _, p := range c.pieces {
		h.Write(p)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Sum is the SHA-256 of the concatenation of pieces (one lane, crypto/sha256).
func Sum(pieces [][]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range pieces {
		h.Write(p)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
