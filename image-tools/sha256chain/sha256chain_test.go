package sha256chain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// FIPS 180-4 section 5.3.3: the initial hash value of SHA-256.
var fipsH0 = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

func TestInitialIsFIPSH0(t *testing.T) {
	st := Initial()
	for i, w := range fipsH0 {
		if got := binary.BigEndian.Uint32(st[4*i:]); got != w {
			t.Fatalf("word %d: %#08x, want %#08x", i, got, w)
		}
	}
}

// Hashing data in pieces split at 64-byte boundaries, each resumed from the previous
// piece's state, gives the sequential SHA-256.
func TestSplitEqualsSequential(t *testing.T) {
	data := make([]byte, 5*4096+17)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	want := sha256.Sum256(data)
	cuts := []int64{0, 64, 4096, 3 * 4096, 5 * 4096, int64(len(data))}
	st := Initial()
	for k := 0; k+1 < len(cuts); k++ {
		h, err := Resume(st, cuts[k])
		if err != nil {
			t.Fatal(err)
		}
		h.Write(data[cuts[k]:cuts[k+1]])
		if k+2 == len(cuts) {
			if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
				t.Fatalf("resumed sum %x, want %x", got, want)
			}
			break
		}
		if st, err = State(h, cuts[k+1]); err != nil {
			t.Fatal(err)
		}
		// independent: the sequential hash's state at the same point
		seq := sha256.New()
		seq.Write(data[:cuts[k+1]])
		if s2, err := State(seq, cuts[k+1]); err != nil || s2 != st {
			t.Fatalf("cut %d: state %x, sequential %x (%v)", cuts[k+1], st, s2, err)
		}
	}
}

func TestRefusesNonBoundary(t *testing.T) {
	h := sha256.New()
	h.Write(make([]byte, 100))
	if _, err := State(h, 100); !errors.Is(err, ErrFormat) {
		t.Fatalf("State at 100 bytes: %v, want ErrFormat", err)
	}
	if _, err := State(h, 64); !errors.Is(err, ErrFormat) {
		t.Fatalf("State with the wrong count: %v, want ErrFormat", err)
	}
	if _, err := Resume(Initial(), 65); !errors.Is(err, ErrFormat) {
		t.Fatalf("Resume at 65: %v, want ErrFormat", err)
	}
	if _, err := State(sha256.New224(), 0); !errors.Is(err, ErrFormat) {
		t.Fatalf("State of SHA-224: %v, want ErrFormat", err)
	}
}

func TestParseHex(t *testing.T) {
	st := Initial()
	back, err := Parse(Hex(st))
	if err != nil || back != st {
		t.Fatalf("Parse(Hex) = %x, %v", back, err)
	}
	for _, bad := range []string{"", "zz", Hex(st)[:62]} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}
