package sha256x2

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"math/bits"
)

// The binary form of crypto/sha256's digest (encoding.BinaryMarshaler): "sha\x03", the
// eight state words big-endian, the 64-byte block buffer, the byte count as a
// big-endian uint64. blocks1 hands states to crypto/sha256 (which uses the CPU's SHA
// instructions where it has them) in this form; stdlibForm says at start-up whether
// crypto/sha256 still reads and writes it, and if not, blockGeneric does the work.
const (
	magic      = "sha\x03"
	stateBytes = len(magic) + 32 + BlockSize + 8
)

var stdlibForm = checkStdlibForm()

// checkStdlibForm reports whether a fresh crypto/sha256 marshals to the form above and
// one restored from that form after 64 bytes gives the SHA-256 it should.
func checkStdlibForm() bool {
	b, err := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil || len(b) != stateBytes || string(b[:len(magic)]) != magic {
		return false
	}
	if s := unmarshal(b); s == nil || s.H != initial || s.Len != 0 {
		return false
	}
	// One zero block through blockGeneric, restored into crypto/sha256 and finished
	// there, must be the SHA-256 of 64 zero bytes.
	var block [BlockSize]byte
	s := New()
	blockGeneric(&s, block[:])
	s.Len = BlockSize
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(marshal(&s)); err != nil {
		return false
	}
	want := sha256.Sum256(block[:])
	return string(h.Sum(nil)) == string(want[:])
}

func marshal(s *State) []byte {
	b := make([]byte, 0, stateBytes)
	b = append(b, magic...)
	for _, h := range s.H {
		b = binary.BigEndian.AppendUint32(b, h)
	}
	b = append(b, make([]byte, BlockSize)...)
	return binary.BigEndian.AppendUint64(b, s.Len)
}

// unmarshal reads the form; nil if b is not in it.
func unmarshal(b []byte) *State {
	if len(b) != stateBytes || string(b[:len(magic)]) != magic {
		return nil
	}
	var s State
	for i := range s.H {
		s.H[i] = binary.BigEndian.Uint32(b[len(magic)+4*i:])
	}
	s.Len = binary.BigEndian.Uint64(b[stateBytes-8:])
	return &s
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
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(marshal(s)); err != nil {
		panic("sha256x2: crypto/sha256 refused its own state form: " + err.Error())
	}
	h.Write(p)
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	t := unmarshal(b)
	if err != nil || t == nil {
		panic("sha256x2: crypto/sha256 changed its state form mid-run")
	}
	s.H = t.H
}

// blocks2Separate feeds p to a and b one after the other: Blocks where there is no
// two-lane kernel.
func blocks2Separate(a, b *State, p []byte) {
	blocks1(a, p)
	blocks1(b, p)
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
