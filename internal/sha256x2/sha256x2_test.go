package sha256x2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

// paths runs f once per implementation this machine has: the two-lane kernel (when
// the CPU has one) and the separate passes through crypto/sha256 and plain Go.
func paths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	type path struct {
		name        string
		kernel, std bool
	}
	ps := []path{{"separate", false, true}, {"generic", false, false}}
	if useKernel {
		ps = append([]path{{"kernel", true, true}}, ps...)
	} else {
		t.Logf("no two-lane kernel on this CPU/build: testing the fallbacks only")
	}
	for _, p := range ps {
		t.Run(p.name, func(t *testing.T) {
			oldKernel, oldStd := useKernel, stdlibForm
			useKernel, stdlibForm = p.kernel, p.std
			defer func() { useKernel, stdlibForm = oldKernel, oldStd }()
			f(t)
		})
	}
}

// TestFIPSExamples checks the SHA-256 examples of NIST's FIPS 180-4 example file
// (csrc.nist.gov, "SHA256.pdf": "abc" and the 448-bit two-block message) and the
// one-million-'a' message of FIPS 180-2 appendix B.3, each through both lanes.
func TestFIPSExamples(t *testing.T) {
	cases := []struct{ name, msg, want string }{
		{"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"two blocks", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
		{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"million a", strings.Repeat("a", 1_000_000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
	}
	paths(t, func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				a, b := New(), New()
				msg := []byte(c.msg)
				whole := len(msg) &^ (BlockSize - 1)
				Blocks(&a, &b, msg[:whole])
				for lane, s := range []State{a, b} {
					if got := s.Sum(msg[whole:]); hex.EncodeToString(got[:]) != c.want {
						t.Errorf("lane %d: %x, want %s", lane, got, c.want)
					}
				}
			})
		}
	})
}

// check feeds msg to two states that start apart (b has consumed pre first) in whole
// blocks split at the given points, and compares both with crypto/sha256.
func check(t *testing.T, pre, msg []byte, splits []int) {
	t.Helper()
	pre = pre[:len(pre)&^(BlockSize-1)]
	a, b := New(), New()
	b.Block(pre)
	whole := len(msg) &^ (BlockSize - 1)
	last := 0
	for _, s := range splits {
		s &^= BlockSize - 1
		if s < last || s > whole {
			continue
		}
		Blocks(&a, &b, msg[last:s])
		last = s
	}
	Blocks(&a, &b, msg[last:whole])
	wantA := sha256.Sum256(msg)
	wantB := sha256.Sum256(append(append([]byte{}, pre...), msg...))
	if got := a.Sum(msg[whole:]); got != wantA {
		t.Fatalf("lane a, %d bytes split at %v: %x, want %x", len(msg), splits, got, wantA)
	}
	if got := b.Sum(msg[whole:]); got != wantB {
		t.Fatalf("lane b after %d bytes, %d bytes split at %v: %x, want %x", len(pre), len(msg), splits, got, wantB)
	}
	if b.Len != uint64(len(pre)+whole) || a.Len != uint64(whole) {
		t.Fatalf("lengths %d, %d; want %d, %d", a.Len, b.Len, whole, len(pre)+whole)
	}
}

// TestRandom: random messages, lengths and split points, lanes in different states.
func TestRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	paths(t, func(t *testing.T) {
		for range 200 {
			n := r.IntN(len(buf))
			if r.IntN(3) == 0 {
				n = r.IntN(300)
			}
			pre := buf[r.IntN(4096):][:r.IntN(4096)]
			splits := []int{r.IntN(n + 1), r.IntN(n + 1), r.IntN(n + 1)}
			check(t, pre, buf[:n], splits)
		}
	})
}

// TestChainRoundTrip: Chain and Resume are inverse, and a hash resumed from a chain
// value finishes as the uninterrupted one.
func TestChainRoundTrip(t *testing.T) {
	msg := bytes.Repeat([]byte("rpi-deploy"), 1000)
	s := New()
	s.Block(msg[:640])
	r := Resume(s.Chain(), s.Len)
	if r != s {
		t.Fatalf("resumed %+v, want %+v", r, s)
	}
	if got, want := r.Sum(msg[640:]), sha256.Sum256(msg); got != want {
		t.Errorf("resumed sum %x, want %x", got, want)
	}
	init := New()
	if got := init.Chain(); hex.EncodeToString(got[:]) != "6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19" {
		t.Errorf("initial chain %x", got)
	}
}

func TestPartialBlockPanics(t *testing.T) {
	for _, f := range []func(){
		func() { a, b := New(), New(); Blocks(&a, &b, make([]byte, 65)) },
		func() { s := New(); s.Block(make([]byte, 1)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("a partial block did not panic")
				}
			}()
			f()
		}()
	}
}

func TestStdlibForm(t *testing.T) {
	if !stdlibForm {
		t.Error("crypto/sha256's binary form is not the one this package knows: single-lane hashing runs in plain Go (slow)")
	}
}

// FuzzBlocks compares both lanes with crypto/sha256 for any message, prefix of lane b
// and split point.
func FuzzBlocks(f *testing.F) {
	f.Add([]byte("abc"), []byte{}, 0)
	f.Add(bytes.Repeat([]byte{0xff}, 129), bytes.Repeat([]byte{1}, 64), 64)
	f.Add(make([]byte, 4096), []byte("x"), 1000)
	f.Add([]byte(strings.Repeat("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 7)), make([]byte, 192), 128)
	f.Fuzz(func(t *testing.T, msg, pre []byte, split int) {
		if split < 0 {
			split = -split
		}
		check(t, pre, msg, []int{split % (len(msg) + 1)})
	})
}

// BenchmarkTwoHashes: the same 4 MiB into two states, by Blocks (the two-lane kernel
// where there is one) and by two crypto/sha256 passes, and one pass for scale
// (b.SetBytes counts the bytes once).
func BenchmarkTwoHashes(b *testing.B) {
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.Run("sha256x2", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		x, y := New(), New()
		for b.Loop() {
			Blocks(&x, &y, buf)
		}
	})
	b.Run("crypto-sha256-twice", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			sha256.Sum256(buf)
			sha256.Sum256(buf)
		}
	})
	b.Run("crypto-sha256-once", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			sha256.Sum256(buf)
		}
	})
}
