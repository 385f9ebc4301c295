// Package sha256chain splits one SHA-256 computation at 64-byte boundaries: State
// reads the chaining value (the eight 32-bit state words) of a hash that has consumed
// a multiple of 64 bytes, Resume builds a hash that continues from such a value. A
// packed image's manifest records the chaining value at every chunk boundary
// (manifest.Chunk.Chain), so that the chunks of one whole-image SHA-256 can be hashed
// in parallel and each checked on its own.
//
// It relies on the binary form of crypto/sha256's digest (encoding.BinaryMarshaler):
// "sha\x03", the eight state words big-endian, the 64-byte block buffer, the byte count
// as a big-endian uint64. Both directions check that form and fail with ErrFormat
// rather than compute something else should it ever change.
package sha256chain

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
)

// Size is the length of a chaining value in bytes.
const Size = 32

const (
	magic         = "sha\x03"
	marshaledSize = len(magic) + Size + sha256.BlockSize + 8
)

// ErrFormat reports that crypto/sha256's binary state is not the form this package
// knows, or that a state was asked for where there is none (not at a 64-byte boundary).
var ErrFormat = errors.New("sha256chain: unexpected sha256 state")

// State returns the chaining value of h, a crypto/sha256 hash that has consumed n
// bytes, n a multiple of 64.
func State(h hash.Hash, n int64) ([Size]byte, error) {
	var st [Size]byte
	if n < 0 || n%sha256.BlockSize != 0 {
		return st, fmt.Errorf("%w: %d bytes is not a multiple of %d", ErrFormat, n, sha256.BlockSize)
	}
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return st, fmt.Errorf("%w: %T cannot marshal its state", ErrFormat, h)
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return st, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if len(b) != marshaledSize || string(b[:len(magic)]) != magic {
		return st, fmt.Errorf("%w: %d bytes starting %q, want %d starting %q", ErrFormat, len(b), b[:min(len(b), len(magic))], marshaledSize, magic)
	}
	if got := binary.BigEndian.Uint64(b[marshaledSize-8:]); got != uint64(n) {
		return st, fmt.Errorf("%w: the hash has consumed %d bytes, want %d", ErrFormat, got, n)
	}
	copy(st[:], b[len(magic):])
	return st, nil
}

// Resume returns a SHA-256 hash that continues from chaining value st after n bytes
// (n a multiple of 64): writing the bytes that followed and calling Sum gives the
// SHA-256 of the whole. n = 0 with the initial state is a fresh hash.
func Resume(st [Size]byte, n int64) (hash.Hash, error) {
	if n < 0 || n%sha256.BlockSize != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a multiple of %d", ErrFormat, n, sha256.BlockSize)
	}
	b := make([]byte, 0, marshaledSize)
	b = append(b, magic...)
	b = append(b, st[:]...)
	b = append(b, make([]byte, sha256.BlockSize)...)
	b = binary.BigEndian.AppendUint64(b, uint64(n))
	h := sha256.New()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, fmt.Errorf("%w: %T cannot unmarshal a state", ErrFormat, h)
	}
	if err := u.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	// Guard the form both ways: the restored hash must marshal back to what we built.
	if back, err := State(h, n); err != nil || back != st {
		return nil, fmt.Errorf("%w: restored state does not read back (%v)", ErrFormat, err)
	}
	return h, nil
}

// Initial is the chaining value of a fresh SHA-256 (FIPS 180-4 H(0)).
func Initial() [Size]byte {
	st, err := State(sha256.New(), 0)
	if err != nil {
		panic(err) // crypto/sha256 changed its binary form; State says how
	}
	return st
}

// Hex is st as 64 lower-case hex digits (the manifest's form).
func Hex(st [Size]byte) string { return hex.EncodeToString(st[:]) }

// Parse reads 64 hex digits.
func Parse(s string) ([Size]byte, error) {
	var st [Size]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != Size {
		return st, fmt.Errorf("chain value %q is not %d hex digits", s, 2*Size)
	}
	copy(st[:], b)
	return st, nil
}
