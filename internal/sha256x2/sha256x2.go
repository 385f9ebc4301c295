// Package sha256x2 computes SHA-256 (FIPS 180-4) of the same bytes into two states at
// once: for example one chunk of an image into the hash of that chunk and into the hash
// of the whole image, which has consumed the chunks before it.
//
// With the SHA instructions one SHA-256 is bound by the latency of its chain of
// dependent round instructions, not by the core's throughput: on amd64 with SHA-NI and
// on arm64 with the Armv8 Cryptography Extension (SHA256H, SHA256H2; the Cortex-A76 of
// a Raspberry Pi 5 has it), Blocks expands each 64-byte block's message schedule once
// and interleaves the rounds of both states, so the two hashes cost little more than
// one. Elsewhere (other architectures, CPUs without those instructions, -tags purego)
// it feeds the bytes to crypto/sha256 twice, which gives the same results at the cost
// of two passes.
//
// Pair and SumPair do the same for two different messages: each block of one and of
// the other run through the same kernel, each message with its own schedule, so that
// two SHA-256 cost little more than one (for example two chunks read back from a card).
//
// A State stops at a 64-byte boundary; Sum finishes it with any tail. States are plain
// values: copy one to fork a hash.
package sha256x2

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// BlockSize is SHA-256's block size: Blocks takes whole blocks.
const BlockSize = 64

// State is a SHA-256 computation that has consumed a multiple of BlockSize bytes: the
// eight state words H0…H7 and the byte count. The zero State is not a valid start;
// use New.
type State struct {
	H   [8]uint32
	Len uint64
}

// initial is H(0) of FIPS 180-4 §5.3.3.
var initial = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

// New returns the state of a fresh SHA-256.
func New() State { return State{H: initial} }

// Resume returns the state whose chaining value (the state words big-endian, the form
// of a manifest's chain) is chain, after n bytes.
func Resume(chain [32]byte, n uint64) State {
	var s State
	for i := range s.H {
		s.H[i] = binary.BigEndian.Uint32(chain[4*i:])
	}
	s.Len = n
	return s
}

// Chain returns the chaining value of s: its state words big-endian.
func (s *State) Chain() [32]byte {
	var c [32]byte
	for i, h := range s.H {
		binary.BigEndian.PutUint32(c[4*i:], h)
	}
	return c
}

// Blocks feeds p to both a and b, as if each had consumed p alone. len(p) must be a
// multiple of BlockSize; a and b may differ, and must not be the same State.
func Blocks(a, b *State, p []byte) {
	if len(p)%BlockSize != 0 {
		panic(fmt.Sprintf("sha256x2: %d bytes is not a whole number of blocks", len(p)))
	}
	if len(p) == 0 {
		return
	}
	blocks2(a, b, p)
	a.Len += uint64(len(p))
	b.Len += uint64(len(p))
}

// Pair feeds pa to a and pb to b: two different messages of the same length, whole
// blocks each, in one pass. a and b must not be the same State.
func Pair(a, b *State, pa, pb []byte) {
	if len(pa) != len(pb) || len(pa)%BlockSize != 0 {
		panic(fmt.Sprintf("sha256x2: pair of %d and %d bytes is not the same whole number of blocks", len(pa), len(pb)))
	}
	if len(pa) == 0 {
		return
	}
	pair(a, b, pa, pb)
	a.Len += uint64(len(pa))
	b.Len += uint64(len(pb))
}

// BlocksAnd feeds p to both a and b, as Blocks, and q to c, in one pass: q is another
// message as long as p (whole blocks). a, b and c must be three different States.
func BlocksAnd(a, b *State, p []byte, c *State, q []byte) {
	if len(p) != len(q) || len(p)%BlockSize != 0 {
		panic(fmt.Sprintf("sha256x2: %d and %d bytes are not the same whole number of blocks", len(p), len(q)))
	}
	if len(p) == 0 {
		return
	}
	triple(a, b, p, c, q)
	a.Len += uint64(len(p))
	b.Len += uint64(len(p))
	c.Len += uint64(len(q))
}

// Block feeds p to s alone. len(p) must be a multiple of BlockSize.
func (s *State) Block(p []byte) {
	if len(p)%BlockSize != 0 {
		panic(fmt.Sprintf("sha256x2: %d bytes is not a whole number of blocks", len(p)))
	}
	blocks1(s, p)
	s.Len += uint64(len(p))
}

// Sum returns the SHA-256 of what s has consumed followed by tail (of any length).
// s is not changed.
func (s *State) Sum(tail []byte) [sha256.Size]byte {
	t := *s
	whole := len(tail) &^ (BlockSize - 1)
	t.Block(tail[:whole])
	tail = tail[whole:]
	// FIPS 180-4 §5.1.1: 0x80, zeros up to 56 mod 64, the length in bits.
	var pad [2 * BlockSize]byte
	n := copy(pad[:], tail)
	pad[n] = 0x80
	end := BlockSize
	if n >= BlockSize-8 {
		end = 2 * BlockSize
	}
	binary.BigEndian.PutUint64(pad[end-8:], (t.Len+uint64(n))*8)
	t.Block(pad[:end])
	return t.Chain()
}

// TwoLanes reports whether this CPU and build have the two-lane kernel: then Blocks,
// Pair and SumPair cost little more than one SHA-256; otherwise they take two passes
// through crypto/sha256.
func TwoLanes() bool { return useKernel }
