package sha256x2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPairFIPSExamples hashes two different FIPS 180-4 example messages side by side
// (each padded and finished by Sum), in both orders, through each implementation.
func TestPairFIPSExamples(t *testing.T) {
	msgs := []struct{ msg, want string }{
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
		{strings.Repeat("a", 1_000_000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}
	paths(t, func(t *testing.T) {
		for i, x := range msgs {
			for j, y := range msgs {
				a, b := []byte(x.msg), []byte(y.msg)
				sa, sb := SumPair([][]byte{a}, [][]byte{b})
				if got := hex.EncodeToString(sa[:]); got != x.want {
					t.Errorf("messages %d and %d: lane a %s, want %s", i, j, got, x.want)
				}
				if got := hex.EncodeToString(sb[:]); got != y.want {
					t.Errorf("messages %d and %d: lane b %s, want %s", i, j, got, y.want)
				}
			}
		}
	})
}

// TestPairStates: Pair on states that have consumed different prefixes gives, for
// each, what crypto/sha256 gives for prefix and message.
func TestPairStates(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	paths(t, func(t *testing.T) {
		for range 50 {
			preA := buf[:r.IntN(64)*BlockSize]
			preB := buf[r.IntN(1024):][:r.IntN(32)*BlockSize]
			n := r.IntN(256) * BlockSize
			ma, mb := buf[r.IntN(len(buf)-n):][:n], buf[r.IntN(len(buf)-n):][:n]
			a, b := New(), New()
			a.Block(preA)
			b.Block(preB)
			Pair(&a, &b, ma, mb)
			if got, want := a.Sum(nil), sha256.Sum256(cat(preA, ma)); got != want {
				t.Fatalf("lane a (%d + %d bytes): %x, want %x", len(preA), n, got, want)
			}
			if got, want := b.Sum(nil), sha256.Sum256(cat(preB, mb)); got != want {
				t.Fatalf("lane b (%d + %d bytes): %x, want %x", len(preB), n, got, want)
			}
		}
	})
}

// TestSumPairPieces: two messages cut into random pieces (empty ones, pieces shorter
// than a block, blocks spanning pieces) give crypto/sha256's sums of the joined bytes.
func TestSumPairPieces(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	cut := func(msg []byte) [][]byte {
		var ps [][]byte
		for len(msg) > 0 || r.IntN(4) == 0 {
			n := min(len(msg), r.IntN(3*BlockSize))
			if r.IntN(4) == 0 {
				n = min(len(msg), r.IntN(64<<10))
			}
			ps = append(ps, msg[:n])
			msg = msg[n:]
			if len(msg) == 0 && r.IntN(2) == 0 {
				break
			}
		}
		return ps
	}
	paths(t, func(t *testing.T) {
		for range 300 {
			na, nb := r.IntN(len(buf)/2), r.IntN(len(buf)/2)
			if r.IntN(3) == 0 {
				na = r.IntN(200)
			}
			ma, mb := buf[r.IntN(len(buf)-na):][:na], buf[r.IntN(len(buf)-nb):][:nb]
			pa, pb := cut(ma), cut(mb)
			sa, sb := SumPair(pa, pb)
			if want := sha256.Sum256(ma); sa != want {
				t.Fatalf("lane a, %d bytes in %d pieces: %x, want %x", na, len(pa), sa, want)
			}
			if want := sha256.Sum256(mb); sb != want {
				t.Fatalf("lane b, %d bytes in %d pieces: %x, want %x", nb, len(pb), sb, want)
			}
		}
	})
}

func TestPairUnevenPanics(t *testing.T) {
	for _, c := range []struct{ a, b int }{{64, 128}, {65, 65}, {0, 64}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Pair of %d and %d bytes did not panic", c.a, c.b)
				}
			}()
			a, b := New(), New()
			Pair(&a, &b, make([]byte, c.a), make([]byte, c.b))
		}()
	}
}

// FuzzSumPair compares SumPair with crypto/sha256 for any two messages, each cut in
// two at any point.
func FuzzSumPair(f *testing.F) {
	f.Add([]byte("abc"), []byte{}, 1, 0)
	f.Add(bytes.Repeat([]byte{0xff}, 200), bytes.Repeat([]byte{1}, 64), 70, 64)
	f.Add(make([]byte, 4096), []byte("x"), 1000, 1)
	f.Fuzz(func(t *testing.T, a, b []byte, cutA, cutB int) {
		cutA, cutB = abs(cutA)%(len(a)+1), abs(cutB)%(len(b)+1)
		sa, sb := SumPair([][]byte{a[:cutA], a[cutA:]}, [][]byte{b[:cutB], nil, b[cutB:]})
		if want := sha256.Sum256(a); sa != want {
			t.Errorf("lane a: %x, want %x", sa, want)
		}
		if want := sha256.Sum256(b); sb != want {
			t.Errorf("lane b: %x, want %x", sb, want)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func cat(a, b []byte) []byte { return append(append([]byte{}, a...), b...) }

// BenchmarkPair: two different 4 MiB messages, by Pair (the two-lane kernel where
// there is one) and by two crypto/sha256 passes (b.SetBytes counts both messages).
func BenchmarkPair(b *testing.B) {
	buf := make([]byte, 8<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	x, y := buf[:4<<20], buf[4<<20:]
	b.Run("pair", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			SumPair([][]byte{x}, [][]byte{y})
		}
	})
	b.Run("crypto-sha256-twice", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			sha256.Sum256(x)
			sha256.Sum256(y)
		}
	})
}

// TestBlocksAnd: BlocksAnd on three states that have consumed different prefixes gives
// what crypto/sha256 gives for a's and b's prefix followed by p, and c's followed by q.
func TestBlocksAnd(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	paths(t, func(t *testing.T) {
		for range 50 {
			pre := [3][]byte{buf[:r.IntN(64)*BlockSize], buf[r.IntN(1024):][:r.IntN(32)*BlockSize], buf[r.IntN(2048):][:r.IntN(16)*BlockSize]}
			n := r.IntN(256) * BlockSize
			p, q := buf[r.IntN(len(buf)-n):][:n], buf[r.IntN(len(buf)-n):][:n]
			var s [3]State
			for k := range s {
				s[k] = New()
				s[k].Block(pre[k])
			}
			BlocksAnd(&s[0], &s[1], p, &s[2], q)
			for k, msg := range [][]byte{p, p, q} {
				if got, want := s[k].Sum(nil), sha256.Sum256(cat(pre[k], msg)); got != want {
					t.Fatalf("lane %d (%d + %d bytes): %x, want %x", k, len(pre[k]), n, got, want)
				}
			}
		}
	})
	defer func() {
		if recover() == nil {
			t.Error("BlocksAnd of 64 and 128 bytes did not panic")
		}
	}()
	a, b, c := New(), New(), New()
	BlocksAnd(&a, &b, make([]byte, 64), &c, make([]byte, 128))
}

// BenchmarkBlocksAnd: 4 MiB into two states and another 4 MiB into a third, by
// BlocksAnd and by Blocks plus crypto/sha256 (b.SetBytes counts the 8 MiB).
func BenchmarkBlocksAnd(b *testing.B) {
	buf := make([]byte, 8<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	p, q := buf[:4<<20], buf[4<<20:]
	b.Run("blocks-and", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		x, y, z := New(), New(), New()
		for b.Loop() {
			BlocksAnd(&x, &y, p, &z, q)
		}
	})
	b.Run("blocks-then-crypto-sha256", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		x, y := New(), New()
		for b.Loop() {
			Blocks(&x, &y, p)
			sha256.Sum256(q)
		}
	})
	b.Run("blocks-alone", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		x, y := New(), New()
		for b.Loop() {
			Blocks(&x, &y, p)
		}
	})
}
