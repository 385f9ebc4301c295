package sha256x2

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"

	"github.com/rpi-deploy/rpi-deploy/image-tools/sha256chain"
)

// blocks1 hands states to crypto/sha256 (which uses the CPU's SHA instructions where
// it has them) through package sha256chain, which reads and writes crypto/sha256's
// binary state form; stdlibForm says at start-up whether that still works, and if
// not, blockGeneric does the work.
var stdlibForm = checkStdlibForm()

// checkStdlibForm reports whether sha256chain reads a fresh crypto/sha256 as the
// initial state and one restored after 64 bytes gives the SHA-256 it should.
func checkStdlibForm() bool {
	st, err := sha256chain.State(sha256.New(), 0)
	if err != nil || Resume(st, 0).H != initial {
		return false
	}
	// One zero block through blockGeneric, restored into crypto/sha256 and finished
	// there, must be the SHA-256 of 64 zero bytes.
	var block [BlockSize]byte
	s := New()
	blockGeneric(&s, block[:])
	h, err := sha256chain.Resume(s.Chain(), BlockSize)
	if err != nil {
		return false
	}
	want := sha256.Sum256(block[:])
	return string(h.Sum(nil)) == string(want[:])
}

// blocks1 feeds whole blocks p to s's state words (not its Len).
func blocks1(s *State, p []byte) {
	if len(p) == 0 {
		return
	}
	if !stdlibForm {
		blockGeneric(s, p)
		return
	}
	h, err := sha256chain.Resume(s.Chain(), int64(s.Len))
	if err != nil {
		panic("sha256x2: crypto/sha256 refused its own state form: " + err.Error())
	}
	h.Write(p)
	st, err := sha256chain.State(h, int64(s.Len)+int64(len(p)))
	if err != nil {
		panic("sha256x2: crypto/sha256 changed its state form mid-run: " + err.Error())
	}
	s.H = Resume(st, 0).H
}

// blocks2Separate feeds p to a and b one after the other: Blocks where there is no
// two-lane kernel.
func blocks2Separate(a, b *State, p []byte) {
	blocks1(a, p)
	blocks1(b, p)
}

// pairSeparate feeds pa to a and pb to b one after the other: Pair where there is no
// two-lane kernel.
func pairSeparate(a, b *State, pa, pb []byte) {
	blocks1(a, pa)
	blocks1(b, pb)
}

// k holds the 64 round constants of FIPS 180-4 §4.2.2.
var k = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// blockGeneric is FIPS 180-4 §6.2.2 in plain Go, one block at a time.
func blockGeneric(s *State, p []byte) {
	var w [64]uint32
	for ; len(p) >= BlockSize; p = p[BlockSize:] {
		for t := range 16 {
			w[t] = binary.BigEndian.Uint32(p[4*t:])
		}
		for t := 16; t < 64; t++ {
			s0 := bits.RotateLeft32(w[t-15], -7) ^ bits.RotateLeft32(w[t-15], -18) ^ w[t-15]>>3
			s1 := bits.RotateLeft32(w[t-2], -17) ^ bits.RotateLeft32(w[t-2], -19) ^ w[t-2]>>10
			w[t] = s1 + w[t-7] + s0 + w[t-16]
		}
		a, b, c, d, e, f, g, h := s.H[0], s.H[1], s.H[2], s.H[3], s.H[4], s.H[5], s.H[6], s.H[7]
		for t := range 64 {
			S1 := bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)
			ch := e&f ^ ^e&g
			t1 := h + S1 + ch + k[t] + w[t]
			S0 := bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)
			maj := a&b ^ a&c ^ b&c
			h, g, f, e, d, c, b, a = g, f, e, d+t1, c, b, a, t1+S0+maj
		}
		s.H[0] += a
		s.H[1] += b
		s.H[2] += c
		s.H[3] += d
		s.H[4] += e
		s.H[5] += f
		s.H[6] += g
		s.H[7] += h
	}
}
